"""The dimension probe: one class-weighted logistic regression per dimension over the measured statistics.

On the synth corpus most clips are "excellent" on most dimensions (no degradation of that kind); a model
trained on them as they come answers "excellent" almost always. The probe is fitted with class weights that
lift the rare levels (``DEFAULT_BALANCE``) over the normalized statistics of the three streams, and
turns a clip's statistics into one 1–5 estimate per dimension: the weight of its most probable level
(5 … 1), moved by the expected value of its level distribution within ±``SPREAD`` (the ranking inside a level is
kept; for "good" and "poor", whose weights lie 0.2 from a reported level's edge, an offset past 0.2 reports the
neighbouring level). The model reads the estimate of the
dimension it is asked about in the prior slot of that dimension's stream (``QualityLLM.score_queries``),
so the answer is still the LLM's level-word softmax.

Two kinds (``fit(kind=...)``): "linear" (one logistic regression per dimension over the statistics) and "trees"
(gradient-boosted trees over the statistics and a token summary, ``llmvqa.model.probe_trees``): on the synth test
split the trees tell the levels apart in more dimensions (model card). A probe may also read some of the
``PROBE_STATISTICS`` (``extra``, after the stats token's statistics), and each dimension may read only some of the
input columns (``fit(inputs=...)``; ``llmvqa.train.dimension_stage.probe_masks``).

Stored in a checkpoint as ``dimension_probe.safetensors``. Fitting uses scikit-learn; predicting is numpy.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from llmvqa.encoders.config import FEATURE_VERSION
from llmvqa.errors import ModelError
from llmvqa.features import VideoFeatures
from llmvqa.levels import LEVELS, WEIGHTS
from llmvqa.model.prior import stat_inputs
from llmvqa.model.probe_trees import ABSENT, TokenBasis, TreeEnsemble, fit_trees, token_summary
from llmvqa.statistics import normalize

PROBE_FILE = "dimension_probe.safetensors"
SPREAD = 0.35
"""How far (1–5) the estimate may move from its level's weight with the expected value. Tried in session 11:
estimates in the middle of each reported interval (4.6 / 3.8 / 3.0 / 2.2 / 1.4) within ±0.2, so a reading error
under 0.2 keeps the probe's level. The model's reading, trained on estimates placed at the level weights, then
answered worse on the synth val split in 8 of 10 dimensions (e.g. exposure +0.104 against +0.182, colour +0.043 against +0.105)."""
DEFAULT_BALANCE = 0.25
"""Class weights ∝ (1 / the level's share)^balance: 1 weighs every level equally (balanced accuracy up, but most
clean clips then get a lower level: plain accuracy −0.10 to −0.47 under always-the-majority-level on the synth
val split), 0 is the plain fit (accuracy at the majority's, fewer rare levels found); 0.25 found most of what 1
found (balanced accuracy +0.02 to +0.42 over the majority's) for at most −0.06 of plain accuracy."""
DEFAULT_C = 1.0
"""Inverse L2 strength of each logistic regression (train → test split of the synth corpus: flat from 1 to 10)."""
KINDS = ("linear", "trees")
TREE_BALANCE = 0.5
"""Class weights of the trees' fit ∝ (1 / share)^this (the trees overfit the rare levels less than a linear fit).
Tried in session 11: 1.0 (every level the same weight). The probe alone, synth train → test split, passed +0.15
balanced accuracy over always-the-majority-level in 9 of 10 dimensions (0.5: 7), but the model's answers after the
dimension stage on it (``llmvqa tune-dimensions`` → runs/rel6) passed in 4 of 10 with the clip's prompt and 5
without (release 5, on 0.5: 6 and 6): the reading lost what the probe gained (sharpness, dynamic degree, semantic
consistency), so 0.5 stays."""
TOKEN_COMPONENTS = 32
"""Principal directions of the token summary the trees read beside the statistics."""


def estimate_of(probs: np.ndarray, centres: Sequence[float] | None = None) -> np.ndarray:
    """(N, 5) level probabilities (LEVELS order) → (N,) estimates: the most probable level's weight, moved by the
    expected value's offset from it, clipped to ±SPREAD. ``centres``: (5,) the value each level's estimate is
    centred on instead of its weight (``DimensionProbe.reading_centres``)."""
    w = np.asarray(WEIGHTS, dtype=np.float64)
    top = np.argmax(probs, axis=1)
    centre = w if centres is None else np.asarray(centres, dtype=np.float64)
    return centre[top] + np.clip(probs @ w - w[top], -SPREAD, SPREAD)


def extra_inputs(features: VideoFeatures, names: Sequence[str]) -> np.ndarray:
    """(E,) the named statistics of ``features``, normalized (``llmvqa.statistics.normalize``)."""
    missing = [n for n in names if n not in features.stats]
    if missing:
        raise ModelError("dimension probe", f"reads statistics {missing} that these features lack (extracted before "
                         f"feature version {FEATURE_VERSION})", "extract the features again (or run "
                         "scripts/upgrade_feature_cache.py on the cache)")
    return np.asarray([normalize(n, features.stats[n]) for n in names], dtype=np.float64)


@dataclass
class DimensionProbe:
    """Standardize → per dimension a 5-way linear map (LEVELS order; a level absent in fitting never wins), or with
    ``trees`` boosted trees over the standardized statistics and the token summary's coordinates (``basis``)."""

    mean: np.ndarray
    """(S,) input means of the fitting data."""
    scale: np.ndarray
    """(S,) input standard deviations (1 where constant)."""
    weights: np.ndarray
    """(K, 5, S) per dimension, per level."""
    bias: np.ndarray
    """(K, 5)."""
    dimensions: tuple[str, ...]
    """Dimension keys, in ``weights`` order."""
    info: dict = field(default_factory=dict)
    basis: TokenBasis | None = None
    """Token-summary directions whose coordinates follow the statistics in the input (trees only)."""
    trees: TreeEnsemble | None = None
    """Boosted trees (kind "trees"); None: the linear map."""

    @property
    def extra(self) -> tuple[str, ...]:
        """The ``PROBE_STATISTICS`` this probe reads after ``stat_inputs`` (none for a probe fitted before them)."""
        return tuple(self.info.get("extra_stats", ()))

    @staticmethod
    def input_matrix(feats: Sequence[tuple[VideoFeatures, Mapping[str, float] | None]],
                     basis: TokenBasis | None = None, extra: Sequence[str] = ()) -> np.ndarray:
        """(N, S[+E][+P]) probe inputs of (features, prompt statistics) pairs: ``stat_inputs``, then the ``extra``
        statistics (normalized), then with ``basis`` the token summary's coordinates."""
        x = np.stack([np.concatenate([stat_inputs(f, ps), extra_inputs(f, extra)]) for f, ps in feats])
        if basis is None:
            return x
        return np.concatenate([x, basis.project(np.stack([token_summary(f) for f, _ in feats]))], axis=1)

    @classmethod
    def fit(cls, x: np.ndarray, levels: Mapping[str, Sequence[str]], c: float = DEFAULT_C,
            info: dict | None = None, balance: float | None = None, kind: str = "linear",
            basis: TokenBasis | None = None, seed: int = 0,
            inputs: Mapping[str, np.ndarray] | None = None) -> DimensionProbe:
        """x: (N, S[+E][+P]) ``input_matrix`` (with ``basis`` when the inputs carry its coordinates); levels:
        {dimension key: N reference level words}; balance: class weights ∝ (1 / share)^balance (default
        ``DEFAULT_BALANCE`` linear, ``TREE_BALANCE`` trees); inputs: {dimension key: boolean mask of the columns of x its fit reads} (absent:
        every column) — the other columns are held constant in its fit (no weight, no split on them), so a column
        added for one dimension leaves the others' fits as they were. Dimensions with a single level present are
        left out."""
        from sklearn.linear_model import LogisticRegression

        if kind not in KINDS:
            raise ValueError(f"unknown probe kind {kind!r}; one of {KINDS}")
        balance = (DEFAULT_BALANCE if kind == "linear" else TREE_BALANCE) if balance is None else balance
        x = np.asarray(x, np.float64)
        mean = x.mean(0)
        scale = x.std(0)
        scale = np.where(scale > 1e-8, scale, 1.0)
        z = (x - mean) / scale
        dims, weights, biases, counts, tree_levels, tree_weights, tree_inputs = [], [], [], {}, [], [], []
        for key, words in levels.items():
            y = np.asarray(words)
            if len(y) != len(x):
                raise ValueError(f"{key}: {len(y)} levels for {len(x)} clips")
            present = [lv for lv in LEVELS if lv in set(y)]
            if len(present) < 2:
                continue
            share = {lv: float((y == lv).mean()) for lv in present}
            weight = np.array([(1.0 / (len(present) * share[v])) ** balance for v in y])
            counts[key] = {lv: int((y == lv).sum()) for lv in present}
            dims.append(key)
            mask = np.asarray((inputs or {}).get(key, np.ones(x.shape[1], bool)), bool)
            if mask.shape != (x.shape[1],):
                raise ValueError(f"{key}: an input mask of {mask.shape} for {x.shape[1]} columns")
            if kind == "trees":
                tree_levels.append(y)
                tree_weights.append(weight)
                tree_inputs.append(mask)
                continue
            clf = LogisticRegression(C=c, max_iter=5000).fit(np.where(mask[None, :], z, 0.0), y, sample_weight=weight)
            w = np.zeros((len(LEVELS), x.shape[1]))
            b = np.full(len(LEVELS), ABSENT)
            coef, intercept = clf.coef_, clf.intercept_
            if len(clf.classes_) == 2:  # binary: one row for the second class
                coef, intercept = np.stack([-coef[0] / 2, coef[0] / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
            for row, cls_name in enumerate(clf.classes_):
                w[LEVELS.index(cls_name)] = coef[row]
                b[LEVELS.index(cls_name)] = intercept[row]
            weights.append(w)
            biases.append(b)
        if not dims:
            raise ValueError("no dimension has two or more levels to tell apart")
        meta = {"kind": kind, "c": c, "balance": balance, "n": int(len(x)), "levels": counts, **(info or {})}
        if kind == "trees":
            trees = fit_trees(z, tree_levels, tree_weights, seed=seed, inputs=tree_inputs)
            empty = np.zeros((len(dims), len(LEVELS), x.shape[1]))
            return cls(mean, scale, empty, trees.baseline.copy(), tuple(dims), meta, basis, trees)
        return cls(mean, scale, np.stack(weights), np.stack(biases), tuple(dims), meta, basis)

    def base_rates(self, keys: Sequence[str]) -> DimensionProbe:
        """This probe with ``keys`` reduced to their base rates: no weight on the statistics, the level shares of
        the fitting data as the probabilities (``info["levels"]``), so their estimate is the same for every clip
        (the common level). For a dimension whose statistics do not tell its levels apart on held-out clips."""
        weights, bias = self.weights.copy(), self.bias.copy()
        reduced = [k for k, key in enumerate(self.dimensions) if key in set(keys)]
        for k in reduced:
            key = self.dimensions[k]
            counts = self.info.get("levels", {}).get(key)
            if not counts:
                raise ModelError("dimension probe", f"has no level counts for {key!r}", "fit the probe again")
            total = sum(counts.values())
            weights[k] = 0.0
            bias[k] = [np.log(counts[lv] / total) if counts.get(lv) else ABSENT for lv in LEVELS]
        info = {**self.info, "base_rate_only": sorted(set(keys) & set(self.dimensions))}
        trees = None if self.trees is None else self.trees.without(reduced, bias[reduced])
        return DimensionProbe(self.mean, self.scale, weights, bias, self.dimensions, info, self.basis, trees)

    @property
    def offsets(self) -> dict[str, list[float]]:
        """{dimension key: 5 logit offsets (LEVELS order)} added to its levels' logits (``with_offsets``; none for a
        probe fitted without them)."""
        return dict(self.info.get("level_offsets", {}))

    def with_offsets(self, offsets: Mapping[str, Sequence[float]]) -> DimensionProbe:
        """This probe with ``offsets`` ({dimension key: 5 values, LEVELS order}) added to the logits of the named
        dimensions' levels — a per-level threshold move that leaves the fit itself as it was (a level the fitting data
        never had stays impossible). Recorded in ``info["level_offsets"]`` (summed with any offsets it had)."""
        unknown = set(offsets) - set(self.dimensions)
        if unknown:
            raise ValueError(f"offsets for dimensions the probe does not have: {sorted(unknown)}")
        bias, had = self.bias.copy(), self.offsets
        for key, off in offsets.items():
            off = np.asarray(off, np.float64)
            if off.shape != (len(LEVELS),):
                raise ValueError(f"{key}: {off.shape[0] if off.ndim else 0} offsets for {len(LEVELS)} levels")
            bias[self.dimensions.index(key)] += off
            had[key] = (np.asarray(had.get(key, np.zeros(len(LEVELS)))) + off).round(6).tolist()
        trees = None if self.trees is None else dataclasses.replace(self.trees, baseline=bias.copy())
        return DimensionProbe(self.mean, self.scale, self.weights, bias, self.dimensions,
                              {**self.info, "level_offsets": had}, self.basis, trees)

    @property
    def reading_centres(self) -> dict[str, list[float]]:
        """{dimension key: 5 slot values (LEVELS order)}: where the estimate of each level is centred when it goes
        into the model's slot (``slot_values``), so the model's answer lands on the level (``with_reading_centres``;
        the other dimensions are centred on the level weights)."""
        return dict(self.info.get("reading_centres", {}))

    def with_reading_centres(self, centres: Mapping[str, Sequence[float]]) -> DimensionProbe:
        """This probe with ``centres`` ({dimension key: 5 values, LEVELS order}) as the named dimensions' reading
        centres (replacing any they had; an empty mapping clears them all). The probe's own estimates and levels
        (``estimates``) stay as they were: only what the model is given changes."""
        unknown = set(centres) - set(self.dimensions)
        if unknown:
            raise ValueError(f"reading centres for dimensions the probe does not have: {sorted(unknown)}")
        clean = {}
        for key, c in centres.items():
            c = np.asarray(c, np.float64)
            if c.shape != (len(LEVELS),) or not np.all((c >= 1.0) & (c <= 5.0)):
                raise ValueError(f"{key}: reading centres must be {len(LEVELS)} values in 1–5, got {c.tolist()}")
            clean[key] = c.round(4).tolist()
        info = {k: v for k, v in self.info.items() if k != "reading_centres"}
        info |= {"reading_centres": clean} if clean else {}
        return DimensionProbe(self.mean, self.scale, self.weights, self.bias, self.dimensions, info, self.basis,
                              self.trees)

    def probs_inputs(self, x: np.ndarray) -> np.ndarray:
        """(N, S) → (N, K, 5) level probabilities per dimension."""
        z = (np.asarray(x, np.float64) - self.mean) / self.scale
        if self.trees is not None:
            logits = self.trees.logits(z)
        else:
            logits = np.einsum("ns,kls->nkl", z, self.weights) + self.bias[None]
        logits -= logits.max(-1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(-1, keepdims=True)

    def estimates_inputs(self, x: np.ndarray) -> np.ndarray:
        """(N, S) → (N, K) 1–5 estimates (``estimate_of``)."""
        p = self.probs_inputs(x)
        return estimate_of(p.reshape(-1, len(LEVELS))).reshape(p.shape[:2])

    def estimates(self, features: VideoFeatures, prompt_stats: Mapping[str, float] | None = None) -> dict[str, float]:
        """{dimension key: 1–5 estimate} of one video (its level is the probe's level)."""
        return dict(zip(self.dimensions, estimate_of(self._probs(features, prompt_stats)).tolist(), strict=True))

    def slot_values(self, features: VideoFeatures, prompt_stats: Mapping[str, float] | None = None) -> dict[str, float]:
        """{dimension key: the value the model's slot gets}: ``estimates`` centred on the ``reading_centres`` where a
        dimension has them (the same numbers where it has none)."""
        probs, centres = self._probs(features, prompt_stats), self.reading_centres
        return {key: float(estimate_of(probs[k: k + 1], centres.get(key))[0]) for k, key in enumerate(self.dimensions)}

    def _probs(self, features: VideoFeatures, prompt_stats: Mapping[str, float] | None) -> np.ndarray:
        """(K, 5) level probabilities of one video."""
        x = self.input_matrix([(features, prompt_stats)], self.basis, self.extra)[0]
        if x.shape != self.mean.shape:
            raise ModelError("dimension probe", f"expects {self.mean.shape[0]} statistics, the features give {x.shape[0]}",
                             "use the encoders the probe was fitted with (the checkpoint's config.json)")
        return self.probs_inputs(x[None])[0]

    def save(self, directory: str | Path) -> None:
        from safetensors.numpy import save_file

        tensors = {"mean": self.mean, "scale": self.scale, "weights": self.weights, "bias": self.bias}
        if self.basis is not None:
            tensors.update(basis_mean=self.basis.mean, basis_components=self.basis.components)
        tensors = {k: np.ascontiguousarray(v, np.float64) for k, v in tensors.items()}
        if self.trees is not None:
            tensors.update(self.trees.arrays())  # node indices and flags in small integer types
        save_file(tensors, str(Path(directory) / PROBE_FILE),
                  metadata={"dimensions": json.dumps(list(self.dimensions)), "info": json.dumps(self.info)})

    @classmethod
    def load(cls, directory: str | Path) -> DimensionProbe | None:
        """The probe saved in ``directory``, or None when it has none."""
        path = Path(directory) / PROBE_FILE
        if not path.is_file():
            return None
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            t = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a mapping)
        basis = TokenBasis(t["basis_mean"], t["basis_components"]) if "basis_mean" in t else None
        trees = TreeEnsemble.from_arrays(t) if "trees_roots" in t else None
        return cls(t["mean"], t["scale"], t["weights"], t["bias"], tuple(json.loads(meta.get("dimensions", "[]"))),
                   json.loads(meta.get("info", "{}")), basis, trees)


__all__ = ["KINDS", "PROBE_FILE", "SPREAD", "TOKEN_COMPONENTS", "DimensionProbe", "TokenBasis", "estimate_of", "extra_inputs",
           "stat_inputs", "token_summary"]
