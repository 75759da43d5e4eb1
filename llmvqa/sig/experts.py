"""Expert scorers: one 0–1 quality score per SIG dimension (and maybe "overall") per video.

Score2Instruct scores each dimension with a specialised expert model. Here the experts
sit behind a small registry (:func:`get_expert`):

- ``"stats"`` (default for dimensions): the encoders' interpretable statistics
  (``llmvqa.statistics``) calibrated to 0–1 and averaged per dimension (which statistics
  feed which dimension is listed in ``prompts/v1/dimensions.yaml``).
- ``"mos"``: the human mean opinion score as the *overall* score, rescaled to 0–1 over the
  dataset-wide [min, max] MOS (so equal-width levels on it equal Q-Align's levels on raw MOS).
- ``"synth"``: the known-degradation targets of a synth manifest (``llmvqa sig synth``).
- ``"csv:<path>"``: scores from another tool, a CSV with columns ``video, <dimension>..., overall``
  (0–1 values; ``video`` as stored in the records, i.e. relative to the root).

Later experts in a chain override earlier ones, dimension by dimension.

Calibration of a statistic to 0–1 (``StatsExpert``):

- ``"anchors"`` (default, needs no dataset): a clipped linear map between two fixed anchors,
  the value scoring 0 and the value scoring 1. The anchors are the statistic's ``typical``
  range in ``llmvqa.statistics``, oriented by ``higher_is_better``. The two statistics with no
  good end get their own rule: ``brightness`` scores 1 at mid-gray falling to 0 at 0.1 / 0.9
  (``1 − |v − 0.5| / 0.4``); ``dynamic_degree`` scores 0 for a static video rising to 1 at
  ``DYNAMIC_FULL`` (too little motion is bad; shake is ``jitter``'s business).
- ``"percentile"``: fitted on the dataset — the score is the mid-rank of the (anchor-mapped)
  value among all videos of the dataset, i.e. its empirical CDF. Use it to spread a dataset
  whose statistics all fall in a narrow band.

A dimension's score is the mean of its statistics' calibrated scores.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from llmvqa.dimensions import Dimension, DimensionSpec, load_dimensions  # noqa: F401 (re-exported)
from llmvqa.errors import ConfigError, DataError
from llmvqa.statistics import STAT_BY_NAME

DYNAMIC_FULL = 0.05
"""dynamic_degree (fraction of the diagonal per second) at and above which motion scores 1."""

CALIBRATIONS = ("anchors", "percentile")




def calibrate_anchor(name: str, value: float) -> float:
    """Fixed-anchor 0–1 quality score of one statistic (see the module docstring)."""
    v = float(value)
    if name == "brightness":
        return float(np.clip(1.0 - abs(v - 0.5) / 0.4, 0.0, 1.0))
    if name == "dynamic_degree":
        return float(np.clip(v / DYNAMIC_FULL, 0.0, 1.0))
    stat = STAT_BY_NAME[name]
    lo, hi = stat.typical
    frac = (v - lo) / (hi - lo)
    if stat.higher_is_better is False:
        frac = 1.0 - frac
    return float(np.clip(frac, 0.0, 1.0))


class Expert(Protocol):
    name: str

    def fit(self, items: Sequence, stats: Sequence[Mapping[str, float] | None]) -> None:
        """See the whole dataset once before scoring (dataset-wide ranges, percentiles)."""

    def score(self, item, stats: Mapping[str, float] | None) -> dict[str, float]:
        """0–1 scores of the dimensions (and maybe "overall") this expert knows for one video."""


class StatsExpert:
    """Default expert: calibrated encoder statistics, averaged per dimension."""

    name = "stats"

    def __init__(self, calibration: str = "anchors", version: str = "v1"):
        if calibration not in CALIBRATIONS:
            raise ConfigError("calibration", f"unknown calibration {calibration!r}", f"use one of {CALIBRATIONS}")
        self.calibration = calibration
        self.spec = load_dimensions(version)
        self._sorted: dict[str, np.ndarray] = {}

    def fit(self, items, stats) -> None:
        if self.calibration != "percentile":
            return
        values: dict[str, list[float]] = {}
        for s in stats:
            for name, v in (s or {}).items():
                if name in STAT_BY_NAME and np.isfinite(v):
                    values.setdefault(name, []).append(calibrate_anchor(name, v))
        self._sorted = {k: np.sort(np.asarray(v)) for k, v in values.items()}

    def _stat_score(self, name: str, value: float) -> float:
        a = calibrate_anchor(name, value)
        ref = self._sorted.get(name)
        if self.calibration == "percentile" and ref is not None and ref.size > 1:
            below = np.searchsorted(ref, a, side="left")
            upto = np.searchsorted(ref, a, side="right")
            return float((below + upto) / 2.0 / ref.size)  # mid-rank empirical CDF
        return a

    def score(self, item, stats) -> dict[str, float]:
        out: dict[str, float] = {}
        if not stats:
            return out
        has_prompt = bool(getattr(item, "prompt", ""))
        for key, dim in self.spec.dimensions.items():
            if dim.needs_prompt and not has_prompt:
                continue
            parts = [self._stat_score(s, stats[s]) for s in dim.statistics if s in stats and np.isfinite(stats[s])]
            if parts:
                out[key] = float(np.mean(parts))
        return out


class MOSExpert:
    """Human MOS as the overall score, rescaled over the dataset-wide [min, max]."""

    name = "mos"

    def __init__(self) -> None:
        self.lo: float | None = None
        self.hi: float | None = None

    def fit(self, items, stats) -> None:
        mos = [it.mos for it in items if getattr(it, "mos", None) is not None]
        if mos:
            self.lo, self.hi = float(min(mos)), float(max(mos))

    def score(self, item, stats) -> dict[str, float]:
        mos = getattr(item, "mos", None)
        if mos is None or self.lo is None:
            return {}
        span = self.hi - self.lo
        return {"overall": 0.5 if span <= 0 else float((mos - self.lo) / span)}


class SynthExpert:
    """Known-degradation targets carried by synth-manifest items (``item.targets``)."""

    name = "synth"

    def fit(self, items, stats) -> None:
        return None

    def score(self, item, stats) -> dict[str, float]:
        return {k: float(v) for k, v in (getattr(item, "targets", None) or {}).items()}


class CSVExpert:
    """Scores from another tool: CSV ``video, <dimension>..., overall`` with 0–1 values."""

    def __init__(self, path: str | Path, version: str = "v1"):
        self.path = Path(path)
        self.name = f"csv:{path}"
        if not self.path.is_file():
            raise DataError(str(self.path), "expert score CSV not found", "pass csv:<existing file>")
        known = set(load_dimensions(version).dimensions) | {"overall"}
        self.table: dict[str, dict[str, float]] = {}
        with self.path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or "video" not in reader.fieldnames:
                raise DataError(str(self.path), "no `video` column", "the header must be: video,<dimension>...,overall")
            cols = [c for c in reader.fieldnames if c in known]
            for lineno, row in enumerate(reader, start=2):
                scores: dict[str, float] = {}
                for c in cols:
                    if row.get(c) in (None, ""):
                        continue
                    try:
                        v = float(row[c])
                    except ValueError:
                        raise DataError(f"{self.path}:{lineno}", f"column {c!r} is not a number: {row[c]!r}",
                                        "write 0–1 scores") from None
                    if not 0.0 <= v <= 1.0:
                        raise DataError(f"{self.path}:{lineno}", f"column {c!r} = {v} is outside 0–1", "rescale the scores to 0–1")
                    scores[c] = v
                self.table[row["video"]] = scores

    def fit(self, items, stats) -> None:
        return None

    def score(self, item, stats) -> dict[str, float]:
        return dict(self.table.get(item.video, {}))


def get_expert(spec: str, calibration: str = "anchors") -> Expert:
    """Expert by name: "stats", "mos", "synth" or "csv:<path>"."""
    if spec == "stats":
        return StatsExpert(calibration)
    if spec == "mos":
        return MOSExpert()
    if spec == "synth":
        return SynthExpert()
    if spec.startswith("csv:"):
        return CSVExpert(spec[4:])
    raise ConfigError("expert", f"unknown expert {spec!r}", "use stats, mos, synth or csv:<path>")


def combine(experts: Sequence[Expert], item, stats) -> dict[str, float]:
    """Scores of one video from an expert chain; later experts override earlier ones per key."""
    out: dict[str, float] = {}
    for e in experts:
        out.update(e.score(item, stats))
    return out
