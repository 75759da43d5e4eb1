"""The tree dimension probe: numpy prediction equal to scikit-learn's own, saved and loaded, base rates, token basis."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmvqa.features import VideoFeatures
from llmvqa.levels import LEVELS
from llmvqa.model.dimension_probe import DimensionProbe, TokenBasis, token_summary


def _data(n: int = 400, seed: int = 0):
    """Two dimensions whose levels depend non-linearly on the inputs: 'ring' on the distance from the origin
    (five levels), 'band' on |x1| (two levels) — no linear map tells them apart."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    r = np.hypot(x[:, 0], x[:, 1])
    ring = [LEVELS[min(4, int(v / 0.55))] for v in r]
    band = ["excellent" if abs(v) < 0.7 else "poor" for v in x[:, 2]]
    return x, {"ring": ring, "band": band}


def _balanced(pred, ref) -> float:
    pred, ref = np.asarray(pred), np.asarray(ref)
    return float(np.mean([(pred[ref == lv] == lv).mean() for lv in set(ref)]))


def test_tree_probabilities_are_scikit_learns_own():
    from sklearn.ensemble import HistGradientBoostingClassifier

    x, levels = _data()
    probe = DimensionProbe.fit(x, levels, kind="trees", balance=0.0)  # no class weights: plain fits to compare
    z = (x - probe.mean) / probe.scale
    for k, key in enumerate(probe.dimensions):
        clf = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=20,
                                             random_state=0)
        clf.fit(z, levels[key])
        want = clf.predict_proba(z[:50])
        got = probe.probs_inputs(x[:50])[:, k][:, [LEVELS.index(c) for c in clf.classes_]]
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)
    assert probe.info["kind"] == "trees" and set(probe.dimensions) == {"ring", "band"}


def test_trees_find_levels_a_linear_probe_cannot():
    x, levels = _data()
    xt, lt = _data(seed=1)
    scores = {}
    for kind in ("linear", "trees"):
        probe = DimensionProbe.fit(x, levels, kind=kind)
        est = probe.estimates_inputs(xt)
        for k, key in enumerate(probe.dimensions):
            pred = [LEVELS[int(np.clip(np.rint(5 - e), 0, 4))] for e in est[:, k]]
            scores[kind, key] = _balanced(pred, lt[key])
    assert scores["trees", "band"] > 0.85 and scores["linear", "band"] < 0.65
    assert scores["trees", "ring"] > scores["linear", "ring"] + 0.2


def test_tree_probe_saves_loads_and_keeps_base_rates(tmp_path):
    x, levels = _data()
    probe = DimensionProbe.fit(x, levels, kind="trees")
    probe.save(tmp_path)
    back = DimensionProbe.load(tmp_path)
    np.testing.assert_array_equal(back.probs_inputs(x), probe.probs_inputs(x))
    reduced = back.base_rates(["band"])
    p = reduced.probs_inputs(x)
    shares = [levels["band"].count(lv) / len(x) for lv in LEVELS]
    np.testing.assert_allclose(p[:, reduced.dimensions.index("band")], np.tile(shares, (len(x), 1)), atol=1e-9)
    ring = reduced.dimensions.index("ring")
    np.testing.assert_array_equal(p[:, ring], probe.probs_inputs(x)[:, ring])  # the other dimension is untouched
    reduced.save(tmp_path)
    np.testing.assert_array_equal(DimensionProbe.load(tmp_path).probs_inputs(x), p)


def test_token_basis_and_the_probe_inputs_of_a_clip():
    rng = np.random.default_rng(0)
    feats = []
    for _ in range(12):
        tokens = {s: torch.as_tensor(rng.normal(size=(5, 6)), dtype=torch.float32) for s in ("technical", "motion", "semantic")}
        feats.append((VideoFeatures(tokens=tokens, stats={}), None))
    s = token_summary(feats[0][0])
    t = feats[0][0].tokens["technical"].double().numpy()
    np.testing.assert_allclose(s[:12], np.concatenate([t.mean(0), t.std(0)]))  # technical mean then std first
    basis = TokenBasis.fit(np.stack([token_summary(f) for f, _ in feats]), 4)
    np.testing.assert_allclose(basis.components @ basis.components.T, np.eye(4), atol=1e-9)
    x = DimensionProbe.input_matrix(feats, basis)
    stats_only = DimensionProbe.input_matrix(feats)
    assert x.shape == (12, stats_only.shape[1] + 4)
    np.testing.assert_allclose(x[:, -4:], basis.project(np.stack([token_summary(f) for f, _ in feats])))
    levels = {"d": ["excellent", "bad"] * 6}
    probe = DimensionProbe.fit(x, levels, kind="trees", basis=basis)
    assert probe.estimates(*feats[3]).keys() == {"d"}  # a clip's estimate goes through the same inputs
    with pytest.raises(ValueError, match="unknown probe kind"):
        DimensionProbe.fit(x, levels, kind="forest")


def test_dropping_a_dimensions_trees_removes_their_nodes_and_keeps_the_rest_exact():
    x, levels = _data()
    probe = DimensionProbe.fit(x, levels, kind="trees")
    band = probe.dimensions.index("band")
    reduced = probe.base_rates(["ring"])
    assert len(reduced.trees.value) < len(probe.trees.value)  # ring's nodes are gone
    assert set(reduced.trees.root_dim.tolist()) == {band}
    np.testing.assert_array_equal(reduced.probs_inputs(x)[:, band], probe.probs_inputs(x)[:, band])
    assert reduced.trees.arrays()["trees_feature"].dtype == np.int32
