"""Baselines scored on the same data as the model, so a report can say what the LLM adds.

- ridge: ``RidgeCV`` on the standardized encoder statistics, fitted on the train split
  (``fit_predict_ridge``), or, when there is no train split, out-of-fold predictions of a
  k-fold cross-validation (``cross_val_ridge``).
- best single statistic: the statistic with the largest |SRCC| against the target on the
  train data, used with that SRCC's sign (``best_single_stat``); out-of-fold the same way
  (``cross_val_best_stat``; each fold's statistic is z-scored with its train-fold mean/std so
  folds share one scale).

All are plain functions of arrays; ``stat_matrix`` turns per-video statistic dicts into one.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from llmvqa.statistics import STATISTICS

RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-3, 3, 13))
"""Ridge penalties RidgeCV chooses from (by leave-one-out error on the train data)."""


def stat_matrix(stats: Sequence[Mapping[str, float]], names: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """(N, S) matrix of statistics (registry order; default: every registry name any video has).

    Missing or non-finite values are NaN; ``impute`` fills them.
    """
    if names is None:
        present = {k for s in stats for k in s}
        names = [s.name for s in STATISTICS if s.name in present]
    x = np.full((len(stats), len(names)), np.nan)  # (N, S)
    for i, s in enumerate(stats):
        for j, name in enumerate(names):
            v = s.get(name)
            if v is not None and np.isfinite(v):
                x[i, j] = float(v)
    return x, list(names)


def impute(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Replace NaNs with the train column mean (0 for a column with no train value)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column: mean NaN → 0 below
        mean = np.nanmean(train, axis=0) if len(train) else np.zeros(train.shape[1])
    mean = np.where(np.isfinite(mean), mean, 0.0)
    return [np.where(np.isnan(a), mean[None, :], a) for a in (train, *others)]


def fit_predict_ridge(x_train, y_train, x_test, alphas: Sequence[float] = RIDGE_ALPHAS) -> tuple[np.ndarray, float]:
    """Predictions on ``x_test`` of RidgeCV fitted on standardized ``x_train``; returns (pred, chosen alpha)."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_train, x_test = impute(np.asarray(x_train, float), np.asarray(x_test, float))
    y_train = np.asarray(y_train, float)
    if len(y_train) < 3:
        raise ValueError(f"ridge needs at least 3 training videos, got {len(y_train)}")
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=list(alphas)))
    model.fit(x_train, y_train)
    return model.predict(x_test), float(model[-1].alpha_)


def _folds(n: int, k: int, seed: int) -> list[np.ndarray]:
    if n < 2 * 3:
        raise ValueError(f"cross-validation needs at least 6 videos, got {n}")
    k = max(2, min(k, n // 3))
    order = np.random.default_rng(seed).permutation(n)
    return [np.sort(f) for f in np.array_split(order, k)]


def cross_val_ridge(x, y, k: int = 5, seed: int = 0, alphas: Sequence[float] = RIDGE_ALPHAS) -> np.ndarray:
    """Out-of-fold ridge predictions (every video predicted by a model that never saw it)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    pred = np.full(len(y), np.nan)
    for test in _folds(len(y), k, seed):
        train = np.setdiff1d(np.arange(len(y)), test)
        pred[test], _ = fit_predict_ridge(x[train], y[train], x[test], alphas)
    return pred


@dataclass(frozen=True)
class BestStat:
    """The single statistic that ranks the train videos best."""

    name: str
    """Statistic name."""
    column: int
    """Its column in the matrix."""
    sign: float
    """+1 if higher values mean higher scores on train, else -1."""
    train_srcc: float
    """Its SRCC with the target on the train data (signed)."""


def best_single_stat(x_train, y_train, names: Sequence[str]) -> BestStat:
    """Pick the column with the largest |SRCC| on train (columns that are constant or mostly missing skipped)."""
    x_train, y_train = np.asarray(x_train, float), np.asarray(y_train, float)
    best: BestStat | None = None
    for j, name in enumerate(names):
        col = x_train[:, j]
        ok = np.isfinite(col) & np.isfinite(y_train)
        if ok.sum() < 3 or np.ptp(col[ok]) == 0 or np.ptp(y_train[ok]) == 0:
            continue
        rho = float(sps.spearmanr(col[ok], y_train[ok]).statistic)
        if np.isfinite(rho) and (best is None or abs(rho) > abs(best.train_srcc)):
            best = BestStat(name, j, 1.0 if rho >= 0 else -1.0, rho)
    if best is None:
        raise ValueError("no statistic varies on the train data")
    return best


def predict_best_stat(best: BestStat, x_train, x_test) -> np.ndarray:
    """Signed, train-z-scored values of the chosen statistic (missing → the train mean, i.e. 0)."""
    x_train, x_test = impute(np.asarray(x_train, float), np.asarray(x_test, float))
    col = x_train[:, best.column]
    mu, sd = float(col.mean()), float(col.std()) or 1.0
    return best.sign * (x_test[:, best.column] - mu) / sd


def cross_val_best_stat(x, y, names: Sequence[str], k: int = 5, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Out-of-fold best-statistic predictions and the statistic each fold chose."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    pred, chosen = np.full(len(y), np.nan), []
    for test in _folds(len(y), k, seed):
        train = np.setdiff1d(np.arange(len(y)), test)
        best = best_single_stat(x[train], y[train], names)
        pred[test] = predict_best_stat(best, x[train], x[test])
        chosen.append(best.name)
    return pred, chosen


def run_baselines(test_stats: Sequence[Mapping[str, float]], y_test, train_stats: Sequence[Mapping[str, float]] | None = None,
                  y_train=None, k: int = 5, seed: int = 0) -> dict:
    """Predictions of both baselines on the test videos and how they were obtained.

    With train data: fitted on it. Without: k-fold out-of-fold predictions on the test videos.
    Returns {"ridge": {"pred": [...], ...}, "best_stat": {"pred": [...], "statistic": name, ...}}.
    """
    y_test = np.asarray(y_test, float)
    if train_stats:
        x_train, names = stat_matrix(list(train_stats))
        x_test, _ = stat_matrix(list(test_stats), names)
        y_train = np.asarray(y_train, float)
        ridge, alpha = fit_predict_ridge(x_train, y_train, x_test)
        best = best_single_stat(x_train, y_train, names)
        return {
            "ridge": {"pred": ridge.tolist(), "protocol": "train split", "n_train": len(y_train), "alpha": alpha,
                      "statistics": names},
            "best_stat": {"pred": predict_best_stat(best, x_train, x_test).tolist(), "protocol": "train split",
                          "n_train": len(y_train), "statistic": best.name, "sign": best.sign,
                          "train_srcc": best.train_srcc},
        }
    x, names = stat_matrix(list(test_stats))
    ridge = cross_val_ridge(x, y_test, k, seed)
    best_pred, chosen = cross_val_best_stat(x, y_test, names, k, seed)
    top, _ = Counter(chosen).most_common(1)[0]
    return {
        "ridge": {"pred": ridge.tolist(), "protocol": f"{len(chosen)}-fold out-of-fold", "statistics": names},
        "best_stat": {"pred": best_pred.tolist(), "protocol": f"{len(chosen)}-fold out-of-fold", "statistic": top,
                      "fold_statistics": chosen},
    }


__all__ = ["RIDGE_ALPHAS", "BestStat", "best_single_stat", "cross_val_best_stat", "cross_val_ridge",
           "fit_predict_ridge", "impute", "predict_best_stat", "run_baselines", "stat_matrix"]
