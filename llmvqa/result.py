"""What `Assessor.rate` returns, and its two renderings: a readable report and JSON."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

from llmvqa.levels import LevelRating, to_100

SCHEMA_FILE = "schemas/result.schema.json"
"""JSON Schema of ``RatingResult.to_dict`` (package data, under llmvqa/)."""
BAR_CELLS = 10
"""Width of a level bar in the text report (one cell per 10 points on the 0–100 scale)."""


@dataclass
class RatingResult:
    """The rating of one video: overall score, per-group and per-dimension levels, evidence, justification."""

    video: str
    """The video as given (path or example:NAME)."""
    overall: LevelRating
    """Overall quality."""
    prompt: str | None = None
    """Text prompt the video was generated from, if given."""
    groups: dict[str, LevelRating] = field(default_factory=dict)
    """technical / motion / semantic -> rating (empty with dimensions off)."""
    dimensions: dict[str, LevelRating] = field(default_factory=dict)
    """Dimension key (dimensions.yaml, e.g. "sharpness") -> rating (empty with dimensions off)."""
    statistics: dict[str, float] = field(default_factory=dict)
    """Raw encoder statistics (llmvqa.statistics names) plus prompt_alignment when a prompt is given."""
    justification: str | None = None
    """Generated chain-of-thought justification (None with explain=False)."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent per stage: features, score, dimensions, explain, total."""
    meta: dict[str, str] = field(default_factory=dict)
    """Model directory, encoder key, content hash ..."""
    interval: dict[str, float] | None = None
    """{"coverage", "low", "high"}: the range (1–5) that holds the human mean rating in ``coverage`` of
    clips, as measured on held-out human-rated clips when the model was calibrated (None: not calibrated)."""
    evidence: list[dict] = field(default_factory=list)
    """Measured defects (llmvqa.evidence.Evidence.to_dict), strongest first: dimension, kind, start and
    end (seconds), strength (0–1), text, local (False when the defect fills the clip)."""

    @property
    def score(self) -> float:
        """Overall expected score, 1–5."""
        return self.overall.score

    @property
    def score_100(self) -> float:
        """Overall score on 0–100."""
        return self.overall.score_100

    @property
    def level(self) -> str:
        return self.overall.level

    @property
    def distribution(self) -> dict[str, float]:
        return self.overall.distribution

    @property
    def spread(self) -> float:
        """Standard deviation of the overall level distribution (uncertainty on the 1–5 scale)."""
        return self.overall.spread

    def to_dict(self) -> dict:
        """JSON-serializable form (plain floats, strings, dicts)."""
        return {
            "video": self.video,
            "prompt": self.prompt,
            "score": self.score,
            "score_100": self.score_100,
            "level": self.level,
            "distribution": dict(self.distribution),
            "spread": self.spread,
            "groups": {k: v.to_dict() for k, v in self.groups.items()},
            "dimensions": {k: v.to_dict() for k, v in self.dimensions.items()},
            "statistics": {k: float(v) for k, v in self.statistics.items()},
            "justification": self.justification,
            "timings": {k: float(v) for k, v in self.timings.items()},
            "meta": dict(self.meta),
            "interval": dict(self.interval) if self.interval else None,
            "evidence": [dict(e) for e in self.evidence],
        }


def json_schema() -> dict:
    """The JSON Schema (draft 2020-12) every ``RatingResult.to_dict()`` / ``rate --json`` output satisfies."""
    import json
    from importlib.resources import files

    return json.loads(files("llmvqa").joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))


def bar(score_1_5: float, cells: int = BAR_CELLS) -> str:
    """A fixed-width bar for a 1–5 score: ████████░░ (filled cells ∝ the 0–100 score)."""
    filled = int(round(max(0.0, min(100.0, to_100(score_1_5))) / 100.0 * cells))
    return "█" * filled + "░" * (cells - filled)


def _row(name: str, rating: LevelRating, indent: str, width: int) -> str:
    return f"{indent}{name:<{width}} {bar(rating.score)} {rating.level:<9} {rating.score:.2f}"


def render_text(result: RatingResult) -> str:
    """The readable report `llmvqa rate` prints."""
    lines = [f"Video:   {result.video}"]
    if result.prompt:
        lines.append(f"Prompt:  {result.prompt}")
    if result.interval:
        iv = result.interval
        spread = f"{iv['coverage']:.0%} interval {iv['low']:.2f}–{iv['high']:.2f}"
    else:
        spread = f"±{result.spread:.2f}"
    lines.append(f"Overall: {result.level} — {result.score:.2f} / 5  ({result.score_100:.0f} / 100, {spread})")
    lines.append(f"         {bar(result.score)}  " + "  ".join(f"{lv} {p:.0%}" for lv, p in result.distribution.items()))
    names = list(result.groups) + list(result.dimensions)
    if names:
        width = max(len(n) for n in names) + 3
        lines.append("")
        shown: set[str] = set()
        for group, rating in result.groups.items():
            lines.append(_row(group, rating, "", width))
            for dim, d in result.dimensions.items():
                if d.group == group:
                    lines.append(_row(dim, d, "  ", width - 2))
                    shown.add(dim)
        for dim, d in result.dimensions.items():
            if dim not in shown:
                lines.append(_row(dim, d, "  ", width - 2))
    if result.statistics:
        items = [f"{k} {v:.3g}" for k, v in result.statistics.items()]
        lines += ["", "Measured:"] + ["  " + ", ".join(items[i:i + 6]) for i in range(0, len(items), 6)]
    if result.justification:
        lines += ["", "Why:"]
        lines += textwrap.wrap(result.justification.strip(), width=100, initial_indent="  ", subsequent_indent="  ")
    elif result.evidence:
        lines += ["", "Evidence:"] + [f"  {e['text']} ({e['dimension']})" for e in result.evidence]
    if result.timings:
        lines += ["", "Time:    " + ", ".join(f"{k} {v:.2f} s" for k, v in result.timings.items())]
    return "\n".join(lines)


__all__ = ["RatingResult", "bar", "render_text"]
