"""The five quality levels and their weights — defined once for the whole project.

Q-Align's rule: the score is the softmax over the five level words' logits,
dotted with the weights 5..1. Levels from a continuous score use five
equal-width intervals over the dataset-wide range (or quantiles).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

LEVELS: tuple[str, ...] = ("excellent", "good", "fair", "poor", "bad")
"""Level words, best first."""

WEIGHTS: tuple[float, ...] = (5.0, 4.0, 3.0, 2.0, 1.0)
"""Score of each level on the 1–5 scale (same order as LEVELS)."""

LEVEL_TO_WEIGHT = dict(zip(LEVELS, WEIGHTS, strict=True))


def to_100(score_1_5: float) -> float:
    """Map a 1–5 score to 0–100 (1 → 0, 5 → 100)."""
    return (float(score_1_5) - 1.0) * 25.0


def expected_score(probs: Sequence[float]) -> float:
    """Expected 1–5 score of a level distribution given in LEVELS order."""
    p = np.asarray(probs, dtype=np.float64)
    if p.shape != (len(LEVELS),):
        raise ValueError(f"expected {len(LEVELS)} level probabilities, got shape {p.shape}")
    return float(p @ np.asarray(WEIGHTS))


def level_spread(probs: Sequence[float]) -> float:
    """Standard deviation of the level distribution on the 1–5 scale (an uncertainty)."""
    p = np.asarray(probs, dtype=np.float64)
    w = np.asarray(WEIGHTS)
    mu = float(p @ w)
    return float(np.sqrt(max(0.0, p @ (w - mu) ** 2)))


LEVEL_CUTS: tuple[float, ...] = (4.2, 3.4, 2.6, 1.8)
"""Lower bounds of excellent, good, fair, poor on 1–5: five equal-width intervals (bad below 1.8)."""


def level_of_score(score_1_5: float) -> str:
    """The level a 1–5 score is reported with: the equal-width interval it falls in
    (bad < 1.8 ≤ poor < 2.6 ≤ fair < 3.4 ≤ good < 4.2 ≤ excellent), so "3.6 — excellent" never appears."""
    x = float(score_1_5)
    return next((lv for lv, cut in zip(LEVELS[:-1], LEVEL_CUTS, strict=True) if x >= cut), LEVELS[-1])


def levels_from_values(
    values: Sequence[float],
    method: str = "equal",
    lo: float | None = None,
    hi: float | None = None,
    higher_is_better: bool = True,
) -> list[str]:
    """Map raw scores to level words.

    method="equal": five equal-width intervals over [lo, hi] (default: the
    dataset-wide min/max, Q-Align). method="quantile": five equal-count bins.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return []
    if not higher_is_better:
        v = -v
        lo, hi = (None if hi is None else -hi), (None if lo is None else -lo)
    if method == "equal":
        lo = float(v.min()) if lo is None else float(lo)
        hi = float(v.max()) if hi is None else float(hi)
        span = hi - lo
        if span <= 0:
            rank = np.full(v.shape, 2)
        else:
            # bin 0 = worst ... 4 = best
            rank = np.clip(np.floor((v - lo) / span * 5.0), 0, 4).astype(int)
    elif method == "quantile":
        edges = np.quantile(v, [0.2, 0.4, 0.6, 0.8])
        rank = np.searchsorted(edges, v, side="right")
    else:
        raise ValueError(f"unknown level method {method!r}; use 'equal' or 'quantile'")
    return [LEVELS[4 - int(r)] for r in rank]


@dataclass
class LevelRating:
    """One rated aspect — the overall quality, a dimension group or a single dimension — decoded from the five
    level probabilities (``from_probs``): probabilities → expected score → level. The one result type of a level
    reading: the model's score mode returns it, the rating result holds it."""

    name: str
    """"overall", a group name (technical/motion/semantic) or a dimension name (sharpness ...); "" for a reading
    of the model's score mode, which knows the question, not the aspect's name."""
    score: float
    """Expected score on the 1–5 scale (softmax over the level words dotted with 5..1)."""
    level: str
    """The level of ``score``: its equal-width interval of 1–5 (``llmvqa.levels.level_of_score``)."""
    distribution: dict[str, float]
    """Level word -> probability, in LEVELS order."""
    group: str = ""
    """The group a dimension belongs to ("" for overall and for groups)."""
    definition: str = ""
    """Short definition of the dimension (from prompts/v1/dimensions.yaml)."""
    statistics: dict[str, float] = field(default_factory=dict)
    """The raw encoder statistics that are evidence for this dimension."""

    def __post_init__(self) -> None:
        if set(self.distribution) != set(LEVELS):
            raise ValueError(f"distribution of {self.name!r} must have the keys {LEVELS}, got {sorted(self.distribution)}")
        if not 1.0 - 1e-6 <= self.score <= 5.0 + 1e-6:
            raise ValueError(f"score of {self.name!r} must lie in [1, 5], got {self.score}")

    @classmethod
    def from_probs(cls, name: str, probs, group: str = "", definition: str = "",
                   statistics: dict[str, float] | None = None) -> LevelRating:
        """Build from five probabilities in LEVELS order."""
        p = [float(x) for x in probs]
        if len(p) != len(LEVELS):
            raise ValueError(f"{name!r}: expected {len(LEVELS)} level probabilities, got {len(p)}")
        total = sum(p)
        if total <= 0:
            raise ValueError(f"{name!r}: level probabilities sum to {total}")
        p = [x / total for x in p]
        score = expected_score(p)
        return cls(name=name, score=score, level=level_of_score(score),
                   distribution=dict(zip(LEVELS, p, strict=True)), group=group, definition=definition,
                   statistics=dict(statistics or {}))

    @property
    def score_100(self) -> float:
        return to_100(self.score)

    @property
    def spread(self) -> float:
        return level_spread([self.distribution[lv] for lv in LEVELS])

    def to_dict(self) -> dict:
        d = asdict(self)
        d["score_100"] = self.score_100
        d["spread"] = self.spread
        return d
