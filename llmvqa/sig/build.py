"""Build SIG instruct records (JSONL) from a dataset: stats → expert scores → levels → Q/A.

Levels (``BuildConfig.levels`` / ``level_range``):

- ``equal`` (default): five equal-width intervals. Expert scores are 0–1, so the range is the
  fixed [0, 1] by default; ``level_range="dataset"`` uses the dataset-wide [min, max] of each
  key instead (all splits together — Q-Align). A MOS expert already rescales MOS over the
  dataset-wide range, so "overall" levels equal Q-Align's levels on raw MOS.
- ``quantile``: five equal-count bins over the whole dataset (all splits together).

Group score = mean of its dimensions' scores (the ones present); its level comes from that
score like any other key. Overall score = the overall expert's (MOS / synth target / CSV) when
present, else the group-weighted mean of the group scores (weights in dimensions.yaml).

The statistics come from a *stats source*: any callable ``(absolute path, prompt) -> {name:
value}``. The default, :class:`ExtractorStats`, runs the encoders (``FeatureExtractor``) through
the ``FeatureCache``; tests and precomputed runs pass :class:`DictStats`.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from llmvqa.corpus.datasets import BadRow, VideoItem
from llmvqa.corpus.paths import resolve_video
from llmvqa.dimensions import load_dimensions
from llmvqa.errors import ConfigError, DataError, LlmvqaError
from llmvqa.levels import levels_from_values
from llmvqa.sig.experts import combine, get_expert
from llmvqa.sig.instructions import InstructionConfig, generate
from llmvqa.sig.validate import check_record

StatsSource = Callable[[Path, str], Mapping[str, float]]
LEVEL_METHODS = ("equal", "quantile")
LEVEL_RANGES = ("fixed", "dataset")


@dataclass
class BuildConfig:
    levels: str = "equal"
    """Score → level: "equal" (equal-width intervals) or "quantile" (equal-count bins, dataset-wide)."""
    level_range: str = "fixed"
    """For "equal": "fixed" = [0, 1] (expert scores are 0–1) or "dataset" = dataset-wide min/max per key."""
    experts: tuple[str, ...] | None = None
    """Expert chain ("stats", "mos", "synth", "csv:<path>"); later ones override. None = by dataset kind."""
    calibration: str = "anchors"
    """How the stats expert maps statistics to 0–1: "anchors" or "percentile" (see experts.py)."""
    seed: int = 0
    """Seed of all phrasing and question choices (same seed → identical output)."""
    instructions: InstructionConfig = field(default_factory=InstructionConfig)
    """Which instruction types and how many per video."""
    version: str = "v1"
    """Prompt version."""

    def __post_init__(self) -> None:
        if self.levels not in LEVEL_METHODS:
            raise ConfigError("levels", f"unknown level method {self.levels!r}", f"use one of {LEVEL_METHODS}")
        if self.level_range not in LEVEL_RANGES:
            raise ConfigError("level_range", f"unknown level range {self.level_range!r}", f"use one of {LEVEL_RANGES}")


def default_experts(kind: str) -> tuple[str, ...]:
    """Stats for every dimension; then MOS (labelled kinds) or the synth targets override."""
    return {"synth": ("stats", "synth"), "folder": ("stats",)}.get(kind, ("stats", "mos"))


class DictStats:
    """Stats source from a mapping: video (relative path, or file name) → {statistic: value}."""

    def __init__(self, table: Mapping[str, Mapping[str, float]], root: str | Path | None = None):
        self.table = dict(table)
        self.root = Path(root).resolve() if root else None

    @classmethod
    def from_jsonl(cls, path: str | Path, root: str | Path | None = None) -> DictStats:
        """Precomputed stats, one ``{"video": ..., "stats": {...}}`` per line."""
        table = {}
        with Path(path).open(encoding="utf-8") as f:
            for n, line in enumerate(f, start=1):
                if line.strip():
                    try:
                        rec = json.loads(line)
                        table[rec["video"]] = {k: float(v) for k, v in rec["stats"].items()}
                    except (ValueError, KeyError, TypeError, AttributeError) as err:
                        raise DataError(f"{path}:{n}", f"not a stats record ({err})", 'write {"video": ..., "stats": {...}}') from None
        return cls(table, root)

    def __call__(self, path: Path, prompt: str) -> Mapping[str, float]:
        keys = [Path(path).name, str(path)]
        if self.root:
            try:
                keys.insert(0, Path(path).resolve().relative_to(self.root).as_posix())
            except ValueError:
                pass
        for k in keys:
            if k in self.table:
                return self.table[k]
        raise DataError(str(path), "no precomputed statistics for this video", "add it to the stats file")


class ExtractorStats:
    """Stats from the encoders (FeatureExtractor), cached by content (FeatureCache) when ``cache_dir`` is set."""

    def __init__(self, cache_dir: str | Path | None = None, config=None):
        from llmvqa.encoders.cache import FeatureCache
        from llmvqa.encoders.pipeline import FeatureExtractor  # heavy: load only when really extracting

        self.extractor = FeatureExtractor(config)
        self.cache = FeatureCache(cache_dir) if cache_dir else None
        self._last: tuple[Path, object] | None = None

    def __call__(self, path: Path, prompt: str) -> Mapping[str, float]:
        from llmvqa.encoders.cache import get_or_extract

        if self._last is not None and self._last[0] == path:  # a synth twin: same video, another prompt
            feats = self._last[1]
        else:
            feats, _ = get_or_extract(self.extractor, path, self.cache)
            self._last = (path, feats)
        stats = dict(feats.stats)
        if prompt:
            stats.update(self.extractor.prompt_stats(feats, prompt))
        return stats

    def evidence(self, path: Path, prompt: str) -> list:
        """The measured defects of the video (llmvqa.evidence) that the last call extracted."""
        from llmvqa.evidence import find_evidence

        feats = self._last[1] if self._last is not None and self._last[0] == path else get_features(self, path)
        return find_evidence(feats, prompt or None, self.extractor.prompt_stats(feats, prompt) if prompt else None)


def get_features(source: ExtractorStats, path: Path):
    from llmvqa.encoders.cache import get_or_extract

    feats, _ = get_or_extract(source.extractor, path, source.cache)
    source._last = (path, feats)
    return feats


@dataclass
class BuildResult:
    records: list[dict]
    bad_rows: list[BadRow]
    videos: int
    """Videos that produced records."""

    def summary(self) -> dict:
        return {"videos": self.videos, "records": len(self.records),
                "by_task": dict(Counter(r["task"] for r in self.records)),
                "by_split": dict(Counter(r["split"] for r in self.records)),
                "bad_rows": len(self.bad_rows)}


def assign_levels(scores: Sequence[dict[str, float]], cfg: BuildConfig) -> list[dict[str, str]]:
    """Levels of every key of every video; ranges/quantiles computed over the whole dataset."""
    out: list[dict[str, str]] = [{} for _ in scores]
    keys = sorted({k for s in scores for k in s})
    for key in keys:
        idx = [i for i, s in enumerate(scores) if key in s]
        vals = [scores[i][key] for i in idx]
        fixed = cfg.levels == "equal" and cfg.level_range == "fixed"
        words = levels_from_values(vals, cfg.levels, lo=0.0 if fixed else None, hi=1.0 if fixed else None)
        for i, w in zip(idx, words, strict=True):
            out[i][key] = w
    return out


def complete_scores(expert_scores: Mapping[str, float], version: str = "v1") -> dict[str, float]:
    """Add group scores (mean of their dimensions) and, without an overall expert, the weighted overall."""
    spec = load_dimensions(version)
    out = {k: float(v) for k, v in expert_scores.items() if k in spec.dimensions or k == "overall"}
    for g, keys in spec.groups.items():
        vals = [out[k] for k in keys if k in out]
        if vals:
            out[g] = float(np.mean(vals))
    if "overall" not in out:
        groups = [g for g in spec.groups if g in out]
        if groups:
            w = np.asarray([spec.group_weights[g] for g in groups])
            out["overall"] = float(np.dot(w, [out[g] for g in groups]) / w.sum())
    return out


def _progress(seq, total: int, enabled: bool):
    if not enabled:
        return seq
    from tqdm import tqdm

    return tqdm(seq, total=total, desc="sig: scoring videos", unit="video")


def build(
    items: Sequence[VideoItem],
    root: str | Path,
    stats_source: StatsSource | None,
    cfg: BuildConfig | None = None,
    kind: str = "jsonl",
    input_name: str = "input",
    progress: bool = False,
) -> BuildResult:
    """Instruct records for ``items``; every record passes the rating validator (else DataError)."""
    cfg = cfg or BuildConfig()
    experts = [get_expert(e, cfg.calibration) for e in (cfg.experts or default_experts(kind))]
    spec = load_dimensions(cfg.version)
    bad: list[BadRow] = []
    kept: list[VideoItem] = []
    stats: list[Mapping[str, float] | None] = []
    evidence: dict[int, list] = {}  # id(item) -> measured defects, when the source measures them
    needs_stats = any(e.name == "stats" for e in experts)
    for it in _progress(items, len(items), progress):
        s = None
        if needs_stats and stats_source is not None:
            try:
                s = stats_source(resolve_video(root, it.video), it.prompt)
                if hasattr(stats_source, "evidence"):
                    evidence[id(it)] = stats_source.evidence(resolve_video(root, it.video), it.prompt)
            except LlmvqaError as err:
                bad.append(BadRow(input_name, it.line, f"{it.video}: {err}"))
                continue
        kept.append(it)
        stats.append(s)
    for e in experts:
        e.fit(kept, stats)
    scores, final_items = [], []
    for it, s in zip(kept, stats, strict=True):
        raw = combine(experts, it, s)
        if not it.prompt:  # e.g. a synth target for prompt alignment on a clip without a prompt
            raw = {k: v for k, v in raw.items() if not (k in spec.dimensions and spec.dimensions[k].needs_prompt)}
        sc = complete_scores(raw, cfg.version)
        if "overall" not in sc:
            bad.append(BadRow(input_name, it.line, f"{it.video}: no expert scored this video"))
            continue
        scores.append(sc)
        final_items.append(it)
    levels = assign_levels(scores, cfg)
    records = []
    for it, sc, lv in zip(final_items, scores, levels, strict=True):
        # seeded per (video, prompt): output does not depend on item order; a synth twin
        # (same video, another prompt) gets its own ids
        key = f"{it.video}\0{it.prompt}"
        rng = random.Random(f"{cfg.seed}:{key}")
        vid = f"{Path(it.video).stem}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"
        counts: Counter = Counter()
        for task, conv in generate(it.prompt, sc, lv, rng, cfg.instructions, evidence=evidence.get(id(it), ())):
            rec = {"id": f"{vid}-{task}-{counts[task]}", "video": it.video, "prompt": it.prompt,
                   "conversations": conv, "scores": {k: round(v, 4) for k, v in sc.items()},
                   "levels": dict(lv), "task": task, "split": it.split, "source": it.source}
            counts[task] += 1
            check_record(rec, cfg.version)
            records.append(rec)
    return BuildResult(records, bad, len(final_items))


def write_jsonl(records: Sequence[Mapping], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path


def record_features(version: str = "v1"):
    """``datasets.Features`` of an instruct record, for loading several files whose records score
    different dimensions (e.g. with and without prompts): keys a record lacks load as None.

        datasets.load_dataset("json", data_files=[...], features=record_features())
    """
    from datasets import Features, Value

    spec = load_dimensions(version)
    keys = [*spec.dimensions, *spec.groups, "overall"]
    turn = {"from": Value("string"), "value": Value("string")}
    return Features({
        "id": Value("string"), "video": Value("string"), "prompt": Value("string"), "conversations": [turn],
        "scores": {k: Value("float64") for k in keys}, "levels": {k: Value("string") for k in keys},
        "task": Value("string"), "split": Value("string"), "source": Value("string"),
    })


def read_jsonl(path: str | Path) -> list[dict]:
    """Instruct records of a JSONL file (DataError naming the line on broken JSON)."""
    out = []
    with Path(path).open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError as err:
                    raise DataError(f"{path}:{n}", f"not JSON ({err})", "regenerate the file with llmvqa sig build") from None
    return out
