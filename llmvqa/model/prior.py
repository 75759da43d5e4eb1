"""The human prior: a ridge probe of the encoder features fitted to human ratings, read by the LLM.

On human-rated AI-generated video (FETV) the offline encoders carry the quality signal, but an LLM
fine-tuned on a few dozen rated clips cannot find it in 2,600 raw inputs; a ridge regression can
(closed form, strong L2 penalty). The prior is that ridge: mean-pooled tokens of each stream plus the
normalized statistics → one estimate per human rating (static, temporal, alignment; 1–5). The
model reads each estimate as one more statistic of its stream (value + has-prior indicator in the
stream's stats token, ``PRIOR_OF_STREAM``), so the score is still the LLM's level-word softmax;
a model without a prior feeds zeros there (identical to a model built before the prior existed).

Stored in a checkpoint as ``prior.safetensors`` (standardization, weights, bias; the target names
and settings in its metadata). Fitting is numpy only (the dual form: 72 clips × 2,628 inputs).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from llmvqa.errors import ModelError
from llmvqa.features import VideoFeatures
from llmvqa.statistics import PROMPT_STATS, STATISTICS, STREAMS, normalize

PRIOR_TARGETS: tuple[str, ...] = ("static", "temporal", "alignment")
"""Human ratings the prior estimates (1–5): per-frame quality, temporal quality, prompt alignment."""
PRIOR_OF_STREAM: dict[str, str] = {"technical": "prior_static", "motion": "prior_temporal",
                                   "semantic": "prior_alignment"}
"""Which estimate each stream's stats token carries (key in the prompt-stats dict)."""
PRIOR_FILE = "prior.safetensors"
DEFAULT_ALPHA = 1000.0
"""Ridge penalty on standardized inputs (grouped-fold CV on fetv_dev: flat from 100 to 3,000)."""
DEFAULT_PAIR_WEIGHT = 3.0
"""Weight of one ranking pair against one rated clip in :meth:`HumanPrior.fit_ranked` (rated clips weigh 1)."""
DEFAULT_MARGIN = 0.35
"""Gap (1–5) a full-strength degradation should open in the estimate of the rating it hurts (the shipped prior's;
release 4 shipped 0.25 without range hinges)."""
DEFAULT_OUTSIDE = 0.2
"""Quantile of the range hinges (:meth:`HumanPrior.fit_ranked`'s ``outside``; the shipped prior's since release 5).
eval/prior_pairs.py (fetv_dev in 6 prompt-grouped folds; 240 train-split chains rank, 72 val-split chains select,
72 test-split chains report), as weight : margin : outside — 3 : 0.35 : 0.2: held-out SRCC 0.562 static / 0.784
temporal, 85.4% of val and 87.1% of test chain pairs ordered, the carphone pair in order; 3 : 0.25 without hinges
(the shipped prior): 0.541 / 0.738, 78.7% / 82.6%; 3 : 0.5 : 0.2: 0.519 / 0.751, 88.2% / 88.3%. The rated clips
alone: 48% of chain pairs (on AI video people prefer some of what degradations add, e.g. grain). The prior alone
is better with the hinges on every count. The scorer calibrated on it agreed less with people (0.440 / 0.630,
eval/human_cv.py, same folds) until it was taught to read the prior finely (``CalibrationConfig.read_near``,
``read_rank_weight``, ``read_extra_steps``: 0.625 / 0.746)."""


def stat_inputs(features: VideoFeatures, prompt_stats: Mapping[str, float] | None = None) -> np.ndarray:
    """(S,) every statistic normalized (prompt statistics as value + has-prompt indicator, 0 when absent)."""
    prompt_stats = prompt_stats or {}
    out = []
    for st in STATISTICS:
        if st.name in PROMPT_STATS:
            have = st.name in prompt_stats
            out += [normalize(st.name, prompt_stats[st.name]) if have else 0.0, float(have)]
        else:
            out.append(normalize(st.name, features.stats.get(st.name, sum(st.typical) / 2)))
    return np.asarray(out, dtype=np.float64)


def _outside_positions() -> np.ndarray:
    """Positions in ``stat_inputs`` of the statistics that get range hinges (every one but the prompt statistics)."""
    pos, i = [], 0
    for st in STATISTICS:
        if st.name in PROMPT_STATS:
            i += 2
        else:
            pos.append(i)
            i += 1
    return np.asarray(pos)


OUTSIDE_POSITIONS = _outside_positions()
STAT_INPUTS = sum(2 if st.name in PROMPT_STATS else 1 for st in STATISTICS)
"""Length of ``stat_inputs`` (the last part of ``prior_input``)."""


def outside_inputs(x: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """(N, D) prior inputs → (N, D + 2·S) with the range hinges appended: how far each statistic lies below the
    low bound and above the high bound (``bounds`` (2, S): the rated clips' range). Zero inside the range."""
    x = np.asarray(x, np.float64)
    s = x[:, x.shape[1] - STAT_INPUTS + OUTSIDE_POSITIONS]
    return np.concatenate([x, np.maximum(bounds[0] - s, 0.0), np.maximum(s - bounds[1], 0.0)], axis=1)


def prior_input(features: VideoFeatures, prompt_stats: Mapping[str, float] | None = None) -> np.ndarray:
    """(D,) input of the prior: mean-pooled tokens per stream, then ``stat_inputs``."""
    parts = [np.asarray(features.tokens[s], dtype=np.float64).mean(axis=0) for s in STREAMS]
    return np.concatenate([*parts, stat_inputs(features, prompt_stats)])


@dataclass
class HumanPrior:
    """Standardize → linear map → 1–5 estimates of the human ratings in ``targets``."""

    mean: np.ndarray
    """(D,) input means of the fitting data."""
    scale: np.ndarray
    """(D,) input standard deviations (1 where constant)."""
    weights: np.ndarray
    """(K, D) one row per target."""
    bias: np.ndarray
    """(K,) target means of the fitting data."""
    targets: tuple[str, ...] = PRIOR_TARGETS
    info: dict = field(default_factory=dict)
    """How it was fitted (alpha, n, dataset); saved with it."""
    bounds: np.ndarray | None = None
    """(2, S) range of each statistic over the rated clips when the prior has range hinges (``fit_ranked`` with
    ``outside``): the hinges are zero on every rated clip, so only the chain pairs set their weights — a
    degradation that pushes a statistic past anything people rated can lower the estimate without moving any
    rated clip's fit. None: no hinges (the inputs are ``prior_input`` as they are)."""

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, alpha: float = DEFAULT_ALPHA, targets: Sequence[str] = PRIOR_TARGETS,
            info: dict | None = None) -> HumanPrior:
        """x: (N, D) prior inputs; y: (N, K) human ratings. Ridge in the dual form (N ≪ D)."""
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        if x.ndim != 2 or y.shape != (x.shape[0], len(targets)):
            raise ValueError(f"prior fit: x {x.shape} and y {y.shape} do not match {len(targets)} targets")
        if x.shape[0] < 3:
            raise ValueError(f"the prior needs at least 3 rated clips, got {x.shape[0]}")
        mean = x.mean(0)
        scale = x.std(0)
        scale = np.where(scale > 1e-8, scale, 1.0)
        z = (x - mean) / scale  # (N, D)
        bias = y.mean(0)  # (K,)
        gram = z @ z.T  # (N, N)
        dual = np.linalg.solve(gram + alpha * np.eye(len(z)), y - bias)  # (N, K)
        coef = (z.T @ dual).T  # (K, D)
        return cls(mean, scale, coef, bias, tuple(targets), {"alpha": alpha, "n": int(len(z)), **(info or {})})

    @classmethod
    def fit_ranked(cls, x: np.ndarray, y: np.ndarray, pair_x: np.ndarray, pair_margin: np.ndarray,
                   alpha: float = DEFAULT_ALPHA, weight: float | np.ndarray = DEFAULT_PAIR_WEIGHT, targets: Sequence[str] = PRIOR_TARGETS,
                   info: dict | None = None, iterations: int = 15, outside: float | None = None) -> HumanPrior:
        """The ridge of :meth:`fit` plus ranking constraints: each pair row asks that a clip's estimate exceed
        a worse version's by its margin (squared hinge, weight ``weight`` per pair; solved by active sets).

        x: (N, D) rated clips' inputs, y: (N, K) their ratings; pair_x: (P, 2, D) inputs of (better, worse)
        clips; pair_margin: (P, K) the gap wanted per target (NaN: no constraint on that target; 0: only
        "not higher"); weight: one weight for every pair, or (P,) one per pair. Inputs are standardized by the
        rated clips' means and the scale of all inputs (rated and paired), so a degradation far outside the rated
        clips' range stays on one scale. A target with no constraint is the plain ridge on the rated clips (the
        same predictions as :meth:`fit`).

        outside: when given, range hinges join the inputs (``bounds``: the ``outside`` and 1 − ``outside``
        quantiles of each statistic over the rated clips; 0 = their minimum and maximum)."""
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        pair_x, pair_margin = np.asarray(pair_x, np.float64), np.asarray(pair_margin, np.float64)
        if pair_x.ndim != 3 or pair_x.shape[1] != 2 or pair_x.shape[2] != x.shape[1]:
            raise ValueError(f"pair inputs must be (P, 2, {x.shape[1]}), got {pair_x.shape}")
        if pair_margin.shape != (len(pair_x), len(targets)):
            raise ValueError(f"pair margins must be ({len(pair_x)}, {len(targets)}), got {pair_margin.shape}")
        pair_weight = np.asarray(weight, np.float64)
        if pair_weight.ndim and pair_weight.shape != (len(pair_x),):
            raise ValueError(f"pair weights must be one number or ({len(pair_x)},), got {pair_weight.shape}")
        pair_weight = np.broadcast_to(pair_weight, (len(pair_x),))
        bounds = None
        if outside is not None:
            if not 0 <= outside < 0.5:
                raise ValueError(f"outside must lie in [0, 0.5), got {outside}")
            s = x[:, x.shape[1] - STAT_INPUTS + OUTSIDE_POSITIONS]
            bounds = np.stack([np.quantile(s, outside, axis=0), np.quantile(s, 1 - outside, axis=0)])
            p = len(pair_x)
            x = outside_inputs(x, bounds)
            pair_x = outside_inputs(pair_x.reshape(2 * p, -1), bounds).reshape(p, 2, -1)
        plain = cls.fit(x, y, alpha, targets)
        mean = x.mean(0)
        scale = np.concatenate([x, pair_x.reshape(-1, x.shape[1])]).std(0)
        scale = np.where(scale > 1e-8, scale, 1.0)
        z = (x - mean) / scale  # (N, D)
        dz = (pair_x[:, 0] - pair_x[:, 1]) / scale  # (P, D): better − worse
        bias = y.mean(0)
        gram = z.T @ z + alpha * np.eye(z.shape[1])  # (D, D) primal: the pairs make N + P ≫ D possible
        coef = plain.weights * scale / plain.scale  # the plain ridge on this scale (exactly its predictions)
        active_counts = []
        for k in range(len(targets)):
            rows = ~np.isnan(pair_margin[:, k])
            if not rows.any():
                active_counts.append(0)
                continue
            d, m, c = dz[rows], pair_margin[rows, k], pair_weight[rows]
            active = np.ones(len(d), bool)
            for _ in range(iterations):
                a = d[active]
                ca = a * c[active, None]
                w = np.linalg.solve(gram + ca.T @ a, z.T @ (y[:, k] - bias[k]) + ca.T @ m[active])
                violated = d @ w < m
                if (violated == active).all():
                    break
                active = violated
            coef[k] = w
            active_counts.append(int(active.sum()))
        weights_used = sorted({float(v) for v in pair_weight})
        meta = {"alpha": alpha, "n": int(len(x)), "pairs": int(len(pair_x)),
                "pair_weight": weights_used[0] if len(weights_used) == 1 else weights_used,
                "active_pairs": active_counts, **({"outside": outside} if outside is not None else {}), **(info or {})}
        return cls(mean, scale, coef, bias, tuple(targets), meta, bounds)

    def predict_inputs(self, x: np.ndarray) -> np.ndarray:
        """(N, D) ``prior_input`` rows → (N, K) estimates, clipped to 1–5."""
        x = np.asarray(x, np.float64)
        if self.bounds is not None:
            x = outside_inputs(x, self.bounds)
        z = (x - self.mean) / self.scale
        return np.clip(z @ self.weights.T + self.bias, 1.0, 5.0)

    def predict(self, features: VideoFeatures, prompt_stats: Mapping[str, float] | None = None) -> dict[str, float]:
        """{target: 1–5 estimate} for one video."""
        x = prior_input(features, prompt_stats)
        width = self.mean.shape[0] - (2 * self.bounds.shape[1] if self.bounds is not None else 0)
        if x.shape != (width,):
            raise ModelError("prior", f"expects {width} inputs, the features give {x.shape[0]}",
                             "use the encoders the prior was fitted with (the checkpoint's config.json)")
        return dict(zip(self.targets, self.predict_inputs(x[None])[0].tolist(), strict=True))

    def stats(self, features: VideoFeatures, prompt_stats: Mapping[str, float] | None = None) -> dict[str, float]:
        """The estimates as statistics of the streams (``PRIOR_OF_STREAM`` names). Without a prompt (no
        ``prompt_alignment`` in prompt_stats) there is no alignment to estimate: its slot stays empty."""
        est = self.predict(features, prompt_stats)
        if "prompt_alignment" not in (prompt_stats or {}):
            est.pop("alignment", None)
        return prior_stats(est)

    def save(self, directory: str | Path) -> None:
        from safetensors.numpy import save_file

        tensors = {"mean": self.mean, "scale": self.scale, "weights": self.weights, "bias": self.bias}
        if self.bounds is not None:
            tensors["bounds"] = self.bounds
        save_file({k: np.ascontiguousarray(v, np.float64) for k, v in tensors.items()}, str(Path(directory) / PRIOR_FILE),
                  metadata={"targets": json.dumps(list(self.targets)), "info": json.dumps(self.info)})

    @classmethod
    def load(cls, directory: str | Path) -> HumanPrior | None:
        """The prior saved in ``directory``, or None when it has none."""
        path = Path(directory) / PRIOR_FILE
        if not path.is_file():
            return None
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            t = {k: f.get_tensor(k) for k in ("mean", "scale", "weights", "bias")}
            bounds = f.get_tensor("bounds") if "bounds" in f.keys() else None
        return cls(t["mean"], t["scale"], t["weights"], t["bias"], tuple(json.loads(meta.get("targets", "[]"))),
                   json.loads(meta.get("info", "{}")), bounds)


def prior_stats(estimates: Mapping[str, float]) -> dict[str, float]:
    """{"prior_static": …, "prior_temporal": …, "prior_alignment": …} from {target: estimate}."""
    by_target = {"prior_" + t: float(v) for t, v in estimates.items()}
    return {name: by_target[name] for name in PRIOR_OF_STREAM.values() if name in by_target}


def normalize_prior(value: float) -> float:
    """A 1–5 estimate on the stats token's scale: centred on 3, one unit per level step (clipped to ±2),
    so the few tenths that separate generated clips are not lost in the stats MLP."""
    return float(min(2.0, max(-2.0, float(value) - 3.0)))


__all__ = ["DEFAULT_ALPHA", "DEFAULT_MARGIN", "DEFAULT_OUTSIDE", "DEFAULT_PAIR_WEIGHT", "PRIOR_FILE", "PRIOR_OF_STREAM", "PRIOR_TARGETS", "HumanPrior", "normalize_prior",
           "outside_inputs", "prior_input", "prior_stats", "stat_inputs"]
