"""MOS-correlation metrics as plain functions of two arrays (pyiqa conventions), and the accuracies of
predicted labels (level words) against reference labels.

PLCC and RMSE are computed after the standard 4-parameter logistic fit of the
predictions to the human scores (VQEG): f(x) = (b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2.
"""

from __future__ import annotations

import itertools
import warnings
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from scipy import optimize, special, stats


def _pair(pred, mos) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64).ravel()
    m = np.asarray(mos, dtype=np.float64).ravel()
    if p.shape != m.shape:
        raise ValueError(f"pred has {p.size} values but mos has {m.size}")
    if p.size < 3:
        raise ValueError(f"need at least 3 pairs to correlate, got {p.size}")
    if not (np.isfinite(p).all() and np.isfinite(m).all()):
        raise ValueError("pred and mos must be finite")
    return p, m


def logistic_4(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    # expit(z) = 1 / (1 + exp(-z)) without overflow for steep fits
    return (b1 - b2) * special.expit((np.asarray(x, dtype=np.float64) - b3) / (np.abs(b4) + 1e-12)) + b2


def fit_logistic(pred, mos) -> np.ndarray:
    """Map predictions onto the MOS scale with the 4-parameter logistic (falls back to linear if the fit fails)."""
    p, m = _pair(pred, mos)
    # fit on standardized predictions, centre starting at exactly 0: MINPACK's finite-difference step is
    # relative to a parameter's value, so a centre starting at a tiny nonzero mean (1e-16) never moves
    sd = float(np.std(p))
    z = (p - float(np.mean(p))) / (sd if sd > 0 else 1.0)
    beta0 = [float(m.max()), float(m.min()), 0.0, 0.5]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            beta, _ = optimize.curve_fit(logistic_4, z, m, p0=beta0, maxfev=20000)
        fitted = logistic_4(z, *beta)
        if np.isfinite(fitted).all():
            return fitted
    except (RuntimeError, ValueError):
        pass
    a, b = np.polyfit(p, m, 1)
    return a * p + b


def srcc(pred, mos) -> float:
    """Spearman rank-order correlation."""
    p, m = _pair(pred, mos)
    return float(stats.spearmanr(p, m).statistic)


def srcc_or_none(pred, target) -> float | None:
    """SRCC of two arrays, None where it is undefined: fewer than 3 pairs, or either side constant."""
    if len(pred) < 3 or np.ptp(np.asarray(pred, float)) == 0 or np.ptp(np.asarray(target, float)) == 0:
        return None
    return srcc(pred, target)


def krcc(pred, mos) -> float:
    """Kendall rank-order correlation (tau-b)."""
    p, m = _pair(pred, mos)
    return float(stats.kendalltau(p, m).statistic)


def plcc(pred, mos, fit: bool = True) -> float:
    """Pearson linear correlation, after the 4-parameter logistic fit by default."""
    p, m = _pair(pred, mos)
    if fit:
        p = fit_logistic(p, m)
    return float(stats.pearsonr(p, m).statistic)


def rmse(pred, mos, fit: bool = True) -> float:
    """Root-mean-square error on the MOS scale, after the logistic fit by default."""
    p, m = _pair(pred, mos)
    if fit:
        p = fit_logistic(p, m)
    return float(np.sqrt(np.mean((p - m) ** 2)))


def correlation_report(pred, mos) -> dict[str, float]:
    """SRCC, PLCC, KRCC, RMSE and the number of pairs."""
    p, m = _pair(pred, mos)
    return {"srcc": srcc(p, m), "plcc": plcc(p, m), "krcc": krcc(p, m), "rmse": rmse(p, m), "n": int(p.size)}


def best_cut(values, objective) -> float:
    """The threshold that maximizes ``objective(cut)`` among one below all ``values``, the midpoints
    between consecutive distinct values, and one above them all (the first such on ties)."""
    points = sorted({float(v) for v in values})
    if not points:
        raise ValueError("no values to place a cut between")
    candidates = [points[0] - 1.0, *((a + b) / 2 for a, b in itertools.pairwise(points)), points[-1] + 1.0]
    return max(candidates, key=objective)


def accuracy(pred: Sequence[str], ref: Sequence[str]) -> float:
    """The share of predicted labels equal to their reference label."""
    if len(pred) != len(ref) or not ref:
        raise ValueError(f"need as many predicted as reference labels, at least one; got {len(pred)} and {len(ref)}")
    return sum(p == r for p, r in zip(pred, ref, strict=True)) / len(ref)


def balanced_accuracy(pred: Sequence[str], ref: Sequence[str]) -> float:
    """The mean over the reference labels present of the share of their items predicted right (mean recall):
    always answering one label scores 1 / the number of labels present."""
    if len(pred) != len(ref) or not ref:
        raise ValueError(f"need as many predicted as reference labels, at least one; got {len(pred)} and {len(ref)}")
    hits: dict[str, list[bool]] = defaultdict(list)
    for p, r in zip(pred, ref, strict=True):
        hits[r].append(p == r)
    return float(np.mean([np.mean(hits[r]) for r in sorted(hits)]))
