"""Parts of the non-linear dimension probe: boosted trees over the statistics and a token summary.

On the synth corpus' held-out content (test split), a class-weighted logistic regression over the statistics
beats always-the-majority-level by ≥ 0.15 balanced accuracy in 3 of 10 probe dimensions; gradient-boosted
trees over the same statistics plus a 32-dimensional summary of the stream tokens (``TokenBasis``) in 7
(model card, section *Synthetic degradations*). The trees are fitted with scikit-learn's
``HistGradientBoostingClassifier`` and stored as flat node arrays (``TreeEnsemble``), so rating needs numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from llmvqa.features import VideoFeatures
from llmvqa.levels import LEVELS
from llmvqa.statistics import STREAMS

ABSENT = -1e4
"""Logit of a level a dimension's fitting data did not have: it never wins."""


def token_summary(features: VideoFeatures) -> np.ndarray:
    """(D,) mean and standard deviation over time of every stream's tokens (streams in ``STREAMS`` order)."""
    parts = []
    for s in STREAMS:
        t = np.asarray(features.tokens[s], dtype=np.float64)
        parts += [t.mean(axis=0), t.std(axis=0)]
    return np.concatenate(parts)


@dataclass
class TokenBasis:
    """Principal directions of ``token_summary`` over the fitting clips: a token summary → (P,) coordinates."""

    mean: np.ndarray
    """(D,)."""
    components: np.ndarray
    """(P, D), orthonormal rows."""

    @classmethod
    def fit(cls, summaries: np.ndarray, n: int) -> TokenBasis:
        s = np.asarray(summaries, np.float64)
        mean = s.mean(axis=0)
        _, _, vt = np.linalg.svd(s - mean, full_matrices=False)
        return cls(mean, vt[: min(n, len(vt))])

    def project(self, summaries: np.ndarray) -> np.ndarray:
        """(N, D) or (D,) → (N, P) or (P,)."""
        return (np.asarray(summaries, np.float64) - self.mean) @ self.components.T


@dataclass
class TreeEnsemble:
    """Boosted trees of several dimensions as flat node arrays; ``logits(x)`` → (N, K, 5) in LEVELS order.

    Node ``i``: a leaf with ``value[i]``, or a split sending ``x[feature[i]] <= threshold[i]`` (NaN: ``missing_left``)
    to ``left[i]``, else ``right[i]`` (absolute node indices). Each root adds its tree's leaf value to the logit of
    (``root_dim``, ``root_level``); ``baseline`` (K, 5) holds the starting logits (``ABSENT`` for a level the
    dimension never had). A dimension with one tree per iteration (two levels) is a binary logit split ±½ over
    its two levels, as its logistic counterpart."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    leaf: np.ndarray
    missing_left: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    root_dim: np.ndarray
    root_level: np.ndarray
    root_sign: np.ndarray
    """+1, or ±0.5 for the two levels of a binary dimension (its one tree's value moves both)."""
    baseline: np.ndarray

    def logits(self, x: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(np.asarray(x, np.float64))
        n = len(x)
        idx = np.broadcast_to(self.roots, (n, len(self.roots))).copy()
        rows = np.arange(n)[:, None]
        while True:
            inner = ~self.leaf[idx]
            if not inner.any():
                break
            v = x[rows, self.feature[idx]]
            go_left = np.where(np.isnan(v), self.missing_left[idx], v <= self.threshold[idx])
            idx = np.where(inner, np.where(go_left, self.left[idx], self.right[idx]), idx)
        out = np.broadcast_to(self.baseline, (n, *self.baseline.shape)).copy()
        np.add.at(out, (slice(None), self.root_dim, self.root_level), self.value[idx] * self.root_sign)
        return out

    def without(self, dims: Sequence[int], baselines: np.ndarray) -> TreeEnsemble:
        """The trees of every dimension but ``dims``, which get constant logits ``baselines`` (len(dims), 5); the
        dropped trees' nodes are removed (each tree is a contiguous block of nodes from its root on)."""
        keep = ~np.isin(self.root_dim, np.asarray(dims, int))
        base = self.baseline.copy()
        for d, b in zip(dims, baselines, strict=True):
            base[d] = b
        starts = np.unique(self.roots)
        bounds = dict(zip(starts.tolist(), np.append(starts[1:], len(self.value)).tolist(), strict=True))
        kept_nodes = np.zeros(len(self.value), bool)
        for r in np.unique(self.roots[keep]).tolist():
            kept_nodes[r:bounds[r]] = True
        new_index = np.cumsum(kept_nodes) - 1  # old node → new node (for kept nodes)
        remap = lambda a: new_index[a[kept_nodes]]  # noqa: E731
        return TreeEnsemble(self.feature[kept_nodes], self.threshold[kept_nodes], remap(self.left),
                            remap(self.right), self.leaf[kept_nodes], self.missing_left[kept_nodes],
                            self.value[kept_nodes], new_index[self.roots[keep]], self.root_dim[keep],
                            self.root_level[keep], self.root_sign[keep], base)

    def arrays(self) -> dict[str, np.ndarray]:
        """Flat arrays to store: node indices as int32, flags as uint8, values and thresholds as float64."""
        small = {"feature": np.int32, "left": np.int32, "right": np.int32, "roots": np.int32, "root_dim": np.int32,
                 "root_level": np.int32, "leaf": np.uint8, "missing_left": np.uint8}
        return {f"trees_{k}": np.ascontiguousarray(getattr(self, k), dtype=small.get(k, np.float64))
                for k in self.__dataclass_fields__}

    @classmethod
    def from_arrays(cls, t: dict[str, np.ndarray]) -> TreeEnsemble:
        get = {k: t[f"trees_{k}"] for k in cls.__dataclass_fields__}
        for k in ("feature", "left", "right", "roots", "root_dim", "root_level"):
            get[k] = get[k].astype(np.int64)
        for k in ("leaf", "missing_left"):
            get[k] = get[k].astype(bool)
        return cls(**get)


def fit_trees(z: np.ndarray, levels: Sequence[Sequence[str]], weights: Sequence[np.ndarray], *, max_iter: int = 150,
              learning_rate: float = 0.05, max_leaf_nodes: int = 15, seed: int = 0,
              inputs: Sequence[np.ndarray | None] | None = None) -> TreeEnsemble:
    """One ``HistGradientBoostingClassifier`` per dimension (``levels[k]``: N level words, ``weights[k]``: N sample
    weights), flattened into a ``TreeEnsemble``. ``inputs[k]``: the columns of ``z`` dimension k may split on (a
    boolean mask; None: every column) — the others are held constant in its fit, so no node reads them."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    cols = {k: [] for k in ("feature", "threshold", "left", "right", "leaf", "missing_left", "value")}
    roots, root_dim, root_level, root_sign = [], [], [], []
    baseline = np.full((len(levels), len(LEVELS)), ABSENT)
    offset = 0
    min_leaf = max(2, min(20, len(z) // 20))  # scikit-learn's 20 from 400 clips on; a small corpus can still split
    for k, (y, w) in enumerate(zip(levels, weights, strict=True)):
        mask = None if inputs is None else inputs[k]
        zk = z if mask is None or mask.all() else np.where(mask[None, :], z, 0.0)
        clf = HistGradientBoostingClassifier(max_iter=max_iter, learning_rate=learning_rate,
                                             max_leaf_nodes=max_leaf_nodes, min_samples_leaf=min_leaf,
                                             random_state=seed)
        clf.fit(zk, np.asarray(y), sample_weight=w)
        classes = [LEVELS.index(c) for c in clf.classes_]
        base = np.asarray(clf._baseline_prediction, np.float64).ravel()
        binary = len(classes) == 2
        if binary:  # one logit for the second class: ±½ on the two levels
            baseline[k, classes[0]], baseline[k, classes[1]] = -base[0] / 2, base[0] / 2
        else:
            baseline[k, classes] = base
        for per_iter in clf._predictors:
            for j, pred in enumerate(per_iter):
                nodes = pred.nodes
                targets = [(classes[0], -0.5), (classes[1], 0.5)] if binary else [(classes[j], 1.0)]
                for level, sign in targets:
                    roots.append(offset)
                    root_dim.append(k)
                    root_level.append(level)
                    root_sign.append(sign)
                cols["feature"].append(nodes["feature_idx"].astype(np.int64))
                cols["threshold"].append(nodes["num_threshold"].astype(np.float64))
                cols["left"].append(nodes["left"].astype(np.int64) + offset)
                cols["right"].append(nodes["right"].astype(np.int64) + offset)
                cols["leaf"].append(nodes["is_leaf"].astype(bool))
                cols["missing_left"].append(nodes["missing_go_to_left"].astype(bool))
                cols["value"].append(nodes["value"].astype(np.float64))
                offset += len(nodes)
    flat = {k: np.concatenate(v) for k, v in cols.items()}
    return TreeEnsemble(**flat, roots=np.asarray(roots, np.int64), root_dim=np.asarray(root_dim, np.int64),
                        root_level=np.asarray(root_level, np.int64), root_sign=np.asarray(root_sign, np.float64),
                        baseline=baseline)


__all__ = ["ABSENT", "TokenBasis", "TreeEnsemble", "fit_trees", "token_summary"]
