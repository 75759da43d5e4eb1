"""Agreement with people on human-rated clips (FETV layout): the numbers eval/human_cv.py prints.

Plain functions of arrays and clip lists, so they are tested on their own:
- ``agreement``: SRCC/PLCC/KRCC/RMSE of each reported aspect against the human rating it stands for;
- ``within_source``: SRCC inside each generator (and the real footage);
- ``real_outranks``: how often, for one prompt, the real video scores above a generated one;
- ``coverage``: how often the stated interval holds the human mean.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

from llmvqa.evaluation.metrics import correlation_report, srcc

REAL_SOURCE = "ground-truth"
"""The ``model`` value FETV gives real footage."""

CHECKS: dict[str, str] = {
    "overall~static": "static",
    "overall~temporal": "temporal",
    "overall~mean": "overall",
    "technical~static": "static",
    "motion~temporal": "temporal",
    "semantic~alignment": "alignment",
    "prompt_alignment~alignment": "alignment",
}
"""Reported aspect ~ human rating it is compared with ("overall" rating = mean of static and temporal)."""


def human_table(ratings: Sequence[Mapping[str, float]]) -> dict[str, np.ndarray]:
    """{rating: (N,)} with "overall" = mean of static and temporal."""
    out = {k: np.array([r[k] for r in ratings], float) for k in ("static", "temporal", "alignment")}
    out["overall"] = (out["static"] + out["temporal"]) / 2
    return out


def agreement(pred: Mapping[str, Sequence[float]], ratings: Sequence[Mapping[str, float]]) -> dict[str, dict]:
    """{check: correlation report} for every ``CHECKS`` entry whose aspect is in ``pred``."""
    human = human_table(ratings)
    out = {}
    for check, rating in CHECKS.items():
        aspect = check.split("~")[0]
        if aspect in pred:
            out[check] = correlation_report(np.asarray(pred[aspect], float), human[rating])
    return out


def within_source(pred: Sequence[float], human: Sequence[float], sources: Sequence[str]) -> dict[str, float]:
    """SRCC of pred against human inside each source (generator), plus their mean over generated sources."""
    pred, human = np.asarray(pred, float), np.asarray(human, float)
    out = {}
    for s in sorted(set(sources)):
        idx = np.array([x == s for x in sources])
        out[s] = srcc(pred[idx], human[idx]) if idx.sum() >= 3 and np.ptp(human[idx]) > 0 else float("nan")
    gen = [v for k, v in out.items() if k != REAL_SOURCE and np.isfinite(v)]
    out["mean_generated"] = float(np.mean(gen)) if gen else float("nan")
    return out


def real_outranks(pred: Sequence[float], prompts: Sequence[str], sources: Sequence[str]) -> float:
    """Fraction of (real, generated) pairs of one prompt where the real clip scores higher (ties count half)."""
    by_prompt: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for p, s, v in zip(prompts, sources, pred, strict=True):
        by_prompt[p].append((s, float(v)))
    wins, total = 0.0, 0
    for items in by_prompt.values():
        real = [v for s, v in items if s == REAL_SOURCE]
        for r in real:
            for s, v in items:
                if s != REAL_SOURCE:
                    wins += 1.0 if r > v else 0.5 if r == v else 0.0
                    total += 1
    return wins / total if total else float("nan")


def coverage(pred: Sequence[float], human: Sequence[float], half_width: float | Sequence[float]) -> float:
    """Fraction of clips whose human value lies within pred ± half_width."""
    pred, human = np.asarray(pred, float), np.asarray(human, float)
    return float(np.mean(np.abs(pred - human) <= np.asarray(half_width, float)))


def heldout_interval(pred: Sequence[float], human: Sequence[float], folds: Sequence[int], rate: float = 0.8) -> dict:
    """The ± half-width that holds the human value in ``rate`` of clips, from *held-out* predictions
    (each clip scored by a model that did not see its fold), and what coverage to expect on new clips.

    half_width: the ``rate`` quantile of |pred − human| over all clips. expected_coverage: each fold's
    clips checked against the quantile of the other folds' errors (a nested estimate — the half-width
    is never measured on the clips it came from).
    """
    pred, human, folds = np.asarray(pred, float), np.asarray(human, float), np.asarray(folds)
    err = np.abs(pred - human)
    inside = np.zeros(len(err), bool)
    for f in np.unique(folds):
        inside[folds == f] = err[folds == f] <= np.quantile(err[folds != f], rate)
    return {"coverage": float(rate), "half_width": float(np.quantile(err, rate)),
            "expected_coverage": float(inside.mean()), "n": int(len(err)), "folds": int(len(np.unique(folds)))}


__all__ = ["CHECKS", "REAL_SOURCE", "agreement", "coverage", "heldout_interval", "human_table", "real_outranks",
           "within_source"]
