"""The tree dimension probe: numpy prediction equal to scikit-learn's own, saved and loaded, base rates, token basis."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmvqa.features import VideoFeatures
from llmvqa.levels import LEVELS, level_of_score
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


def test_a_probe_reads_its_extra_statistics_and_says_when_features_lack_them(tmp_path):
    """Levels that only highlight_cast tells apart: a probe fitted with it as an extra input finds them, keeps the
    name through save and load, and reads it from each clip's features; features without it are a ModelError."""
    from llmvqa.errors import ModelError
    from llmvqa.statistics import normalize

    rng = np.random.default_rng(0)
    feats, levels = [], []
    for i in range(80):
        tokens = {s: torch.as_tensor(rng.normal(size=(3, 4)), dtype=torch.float32) for s in ("technical", "motion", "semantic")}
        cast = 0.3 if i % 4 == 0 else 0.05
        feats.append((VideoFeatures(tokens=tokens, stats={"highlight_cast": cast, "channel_balance": 0.9}), None))
        levels.append("poor" if cast > 0.1 else "excellent")
    x = DimensionProbe.input_matrix(feats, extra=["highlight_cast"])
    assert x.shape[1] == DimensionProbe.input_matrix(feats).shape[1] + 1
    np.testing.assert_allclose(x[:, -1], [normalize("highlight_cast", f.stats["highlight_cast"]) for f, _ in feats])
    probe = DimensionProbe.fit(x, {"color": levels}, kind="trees", info={"extra_stats": ["highlight_cast"]})
    probe.save(tmp_path)
    back = DimensionProbe.load(tmp_path)
    assert back.extra == ("highlight_cast",)
    found = [level_of_score(back.estimates(*f)["color"]) for f in feats]
    assert found == levels
    lacking = VideoFeatures(tokens=feats[0][0].tokens, stats={"channel_balance": 0.9})
    with pytest.raises(ModelError, match="highlight_cast"):
        back.estimates(lacking)
    assert DimensionProbe.fit(DimensionProbe.input_matrix(feats), {"color": levels}, kind="trees").extra == ()


@pytest.mark.parametrize("kind", ["trees", "linear"])
def test_a_dimension_never_reads_the_columns_its_mask_leaves_out(kind):
    x, levels = _data()
    mask = np.array([True, True, False, True])  # 'band' depends on column 2: without it, it cannot be found
    probe = DimensionProbe.fit(x, levels, kind=kind, inputs={"band": mask})
    moved = x.copy()
    moved[:, 2] = np.random.default_rng(1).normal(size=len(x)) * 10
    band, ring = probe.dimensions.index("band"), probe.dimensions.index("ring")
    np.testing.assert_allclose(probe.probs_inputs(moved)[:, band], probe.probs_inputs(x)[:, band])
    free = DimensionProbe.fit(x, levels, kind=kind)  # the unmasked dimension's fit is the same as without masks
    np.testing.assert_allclose(probe.probs_inputs(x)[:, ring], free.probs_inputs(x)[:, ring])
    assert _balanced(free.probs_inputs(x)[:, band].argmax(1), [LEVELS.index(v) for v in levels["band"]]) > \
        _balanced(probe.probs_inputs(x)[:, band].argmax(1), [LEVELS.index(v) for v in levels["band"]])
    with pytest.raises(ValueError, match="input mask"):
        DimensionProbe.fit(x, levels, kind=kind, inputs={"band": mask[:3]})
