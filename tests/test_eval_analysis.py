"""The analyses behind eval/statistics_ceiling.py, report_breakdown.py, alignment_pairs.py and level_cut.py
(``llmvqa.evaluation.ceiling`` / ``breakdown`` / ``separation`` / ``level_cut``) and the label accuracies
of ``llmvqa.evaluation.metrics``, on small hand-made inputs; the scripts themselves only parse, print and save.

No model, no weights, no video decoding (the one decoder call is replaced by hand-made frames).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from llmvqa.evaluation import breakdown as BD
from llmvqa.evaluation import ceiling as CE
from llmvqa.evaluation import level_cut as LC
from llmvqa.evaluation import separation as SE
from llmvqa.evaluation.metrics import accuracy, balanced_accuracy, srcc_or_none
from llmvqa.evaluation.suite import dimension_accuracy
from llmvqa.levels import LEVELS

TOP, BOTTOM = LEVELS[0], LEVELS[-1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / "eval" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ----------------------------------------------------------------------------- metrics: label accuracies

def test_accuracy_and_balanced_accuracy_by_hand():
    # reference: 3 × A, 1 × B; predicted right: 2 of the A's, the B
    pred, ref = ["A", "A", "B", "B"], ["A", "A", "A", "B"]
    assert accuracy(pred, ref) == 0.75
    assert balanced_accuracy(pred, ref) == pytest.approx((2 / 3 + 1) / 2)
    # always the majority: accuracy = its share, balanced = 1 / number of reference labels present
    assert accuracy(["A"] * 4, ref) == 0.75 and balanced_accuracy(["A"] * 4, ref) == 0.5
    with pytest.raises(ValueError):
        accuracy([], [])
    with pytest.raises(ValueError):
        balanced_accuracy(["A"], ["A", "B"])


def test_dimension_accuracy_uses_the_same_balanced_accuracy():
    pred = [{"k": LEVELS[0]}, {"k": LEVELS[0]}, {"k": LEVELS[2]}, {"k": LEVELS[4]}]
    ref = [{"k": LEVELS[0]}, {"k": LEVELS[1]}, {"k": LEVELS[4]}, {"k": LEVELS[4]}]
    out = dimension_accuracy(pred, ref)["k"]
    # level 0: 1/1 right; level 1: 0/1; level 4: 1/2 → balanced (1 + 0 + 0.5) / 3; within one: gaps 0, 1, 2, 0
    assert out["accuracy"] == 0.5 and out["within_one"] == 0.75 and out["n"] == 4
    assert out["balanced_accuracy"] == pytest.approx(0.5) and out["majority"] == 0.5
    assert out["majority_balanced"] == pytest.approx(1 / 3)


def test_srcc_or_none():
    assert srcc_or_none([1, 2, 3, 4], [10, 30, 20, 40]) == pytest.approx(0.8)  # 1 - 6·2 / (4·15)
    assert srcc_or_none([1, 2], [1, 2]) is None  # under 3 pairs
    assert srcc_or_none([1, 1, 1], [1, 2, 3]) is None and srcc_or_none([1, 2, 3], [5, 5, 5]) is None


# ----------------------------------------------------------------------------- breakdown (report_breakdown.py)

def _breakdown_inputs():
    """Two shipped clips and three extra ones; one item of an unknown video, one without a target."""
    source = {"v1": "photo", "v2": "photo", "v3": "file_a", "v4": "file_a", "v5": "file_b"}
    preds = [  # target, model score, ridge
        {"video": "v1", "target": 1.0, "score": 2.0, "baselines": {"ridge": 0.3}},
        {"video": "v2", "target": 2.0, "score": 1.0, "baselines": {"ridge": 0.1}},
        {"video": "v3", "target": 3.0, "score": 4.0, "baselines": {"ridge": 0.2}},
        {"video": "v4", "target": 4.0, "score": 5.0, "baselines": {"ridge": 0.4}},
        {"video": "v5", "target": 5.0, "score": 3.0, "baselines": {"ridge": 0.5}},
        {"video": "nope", "target": 1.0, "score": 1.0},
        {"video": "v1", "target": None, "score": 1.0},
    ]
    return {"predictions": preds}, source


def test_kind_of_and_source_of_video():
    assert BD.kind_of("file_lavie_panda") == BD.EXTRA and BD.kind_of("gravel") == BD.SHIPPED
    records = [{"video": "a.mp4", "source": "s1"}, {"video": "a.mp4", "source": "s1", "twin_of": "a"}]
    assert BD.source_of_video(records) == {"a.mp4": "s1"}


def test_breakdown_by_hand():
    report, source = _breakdown_inputs()
    out = BD.breakdown(report, source)
    assert out["items_without_source"] == 2
    assert set(out["kinds"]) == {BD.ALL, BD.EXTRA, BD.SHIPPED}
    # all five: model ranks 2,1,4,5,3 vs targets 1..5 → d² = 1+1+1+1+4 = 8 → 1 - 6·8/120 = 0.6; ridge 3,1,2,4,5 → d² 4+1+1 = 6 → 0.7
    assert out["kinds"][BD.ALL] == {"model": pytest.approx(0.6), "ridge": pytest.approx(0.7), "n": 5}
    # extra: v3, v4, v5: model 4, 5, 3 vs 3, 4, 5 → ranks 2,3,1 vs 1,2,3 → d² 1+1+4 = 6 → 1 - 36/24 = -0.5
    assert out["kinds"][BD.EXTRA]["model"] == pytest.approx(-0.5) and out["kinds"][BD.EXTRA]["ridge"] == pytest.approx(1.0)
    assert out["kinds"][BD.SHIPPED] == {"model": None, "ridge": None, "n": 2}  # under 3 clips
    assert out["sources"] == {"file_a": {"model": None, "n": 2}, "file_b": {"model": None, "n": 1},
                              "photo": {"model": None, "n": 2}}
    md = BD.breakdown_markdown(out)
    assert md.splitlines()[0] == "| content | n | model | ridge |"
    assert "| all | 5 | 0.600 | 0.700 |" in md and "| shipped | 2 | – | – |" in md
    assert md.splitlines()[-1] == "per source (model SRCC, n): file_a – (2), file_b – (1), photo – (2)"


def test_report_breakdown_script_writes_through_save_report(tmp_path, capsys):
    report, source = _breakdown_inputs()
    (tmp_path / "report.json").write_text(json.dumps(report))
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps({"video": v, "source": s}) + "\n" for v, s in source.items()))
    rb = _script("report_breakdown")
    out = tmp_path / "b.json"
    assert rb.main([str(tmp_path / "report.json"), "--manifest", str(tmp_path / "manifest.jsonl"), "--json", str(out)]) == 0
    assert json.loads(out.read_text()) == BD.breakdown(report, source)
    printed = capsys.readouterr().out
    assert out.with_suffix(".md").read_text().strip() in printed and "2 item(s) skipped" in printed
    (tmp_path / "bad.json").write_text("{}")
    assert rb.main([str(tmp_path / "bad.json"), "--manifest", str(tmp_path / "manifest.jsonl")]) == 2
    assert "no 'predictions'" in capsys.readouterr().err
    assert rb.main([str(tmp_path / "missing.json"), "--manifest", str(tmp_path / "manifest.jsonl")]) == 2


# ----------------------------------------------------------------------------- separation (alignment_pairs.py)

def test_pair_separation_per_prompt_offset_fixes_a_hub_prompt():
    """A 'hub' prompt close to every video wins on raw cosine even where it is the wrong prompt;
    subtracting its mean similarity to the class names (or the train videos) ranks the pair right."""
    import torch

    e = torch.eye(4)
    text = {"cat": e[0], "hub": (e[1] + e[2] + e[3] + 0.2 * e[0])}
    basis = {"v_cat": e[0] + e[1] + e[2] + e[3], "v_cat2": e[0] * 2 + e[1]}
    classes = torch.stack([e[1], e[2], e[3], e[1] + e[2]])
    train = torch.stack([e[1], e[2], e[3]])
    pairs = [("test", "v_cat", "cat", "hub"), ("test", "v_cat2", "cat", "hub")]
    out = SE.pair_separation(pairs, text, basis, classes, train)["test"]
    # v_cat (|b| = 2, |hub| = √3.04): cat 1/2 = 0.5 < hub 3.2 / (2 · 1.744) ≈ 0.917: raw gets it wrong; v_cat2 right
    assert out == {"pairs": 2, "raw": 0.5, "classes": 1.0, "train-videos": 1.0}


def test_configured_and_one_cut_separation():
    """Every pair orders its prompts right, but b's right prompt (0.4) is below a's wrong one (0.5):
    one cut fitted on train separates a and c only."""
    values = {("a", "r"): 0.9, ("a", "w"): 0.5, ("b", "r"): 0.4, ("b", "w"): 0.1, ("c", "r"): 0.8, ("c", "w"): 0.6}
    pairs = [("train", "a", "r", "w"), ("train", "b", "r", "w"), ("train", "c", "r", "w"), ("test", "b", "r", "w"),
             ("test", "c", "r", "w"), ("test", "a", "w", "r")]  # the last pair the wrong way round

    def value(v, p):
        return values[(v, p)]

    assert SE.configured_separation(pairs, value) == {"train": 1.0, "test": 0.667}
    out = SE.one_cut_separation(pairs, value)
    assert out["cut"] == pytest.approx(0.7)  # the first best midpoint: between c's wrong 0.6 and right 0.8
    assert out["train"] == 0.667 and out["test"] == 0.333
    with pytest.raises(ValueError, match="no train pairs"):
        SE.one_cut_separation([("test", "b", "r", "w")], value)


def test_read_corpus_and_markdown(tmp_path):
    recs = [{"id": "c1", "split": "train", "prompt": "a cat", "video": "videos/c1.mp4"},
            {"id": "c2", "split": "test", "prompt": "a dog", "video": "videos/c2.mp4"},
            {"id": "c1#1", "split": "train", "prompt": "a dog", "video": "videos/c1.mp4", "twin_of": "c1"}]
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    with pytest.raises(Exception, match="pairs.jsonl"):
        SE.read_corpus(tmp_path)
    (tmp_path / "pairs.jsonl").write_text(json.dumps({"id": "c1", "twin": "c1#1", "split": "train"}) + "\n")
    by_id, pairs = SE.read_corpus(tmp_path)
    assert set(by_id) == {"c1", "c2", "c1#1"} and by_id["c1"]["_root"] == str(tmp_path)
    assert pairs == [("train", "c1", "a cat", "a dog")]
    splits = {"test": {"pairs": 2, "raw": 0.5, "classes": 1, "train-videos": 1, "configured": 0.5, "one_cut": 0},
              "train": {"pairs": 3, "raw": 1, "classes": 1, "train-videos": 1, "configured": 1, "one_cut": 0.667}}
    lines = SE.separation_markdown(splits).splitlines()
    assert lines[0] == "| split | pairs | raw | classes | train-videos | configured | one_cut |"
    assert lines[2:] == ["| train | 3 | 1.000 | 1.000 | 1.000 | 1.000 | 0.667 |",
                         "| test | 2 | 0.500 | 1.000 | 1.000 | 0.500 | 0.000 |"]


def test_separation_report_on_a_corpus_with_fake_encoders(tmp_path, monkeypatch):
    """The glue: bases of the non-twin clips, embeddings of every prompt, the configured statistic per
    (clip, prompt), the one cut; the encoders replaced by 2-d vectors."""
    from types import SimpleNamespace

    import torch

    from llmvqa.train import data as train_data

    recs = [{"id": "a", "split": "train", "prompt": "p", "video": "a.mp4"},
            {"id": "b", "split": "train", "prompt": "q", "video": "b.mp4"},
            {"id": "a#1", "split": "train", "prompt": "q", "video": "a.mp4", "twin_of": "a"},
            {"id": "b#1", "split": "train", "prompt": "p", "video": "b.mp4", "twin_of": "b"}]
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (tmp_path / "pairs.jsonl").write_text(json.dumps({"id": "a", "twin": "a#1"}) + "\n" + json.dumps({"id": "b", "twin": "b#1"}))
    vec = {"a": [1.0, 0.0], "b": [0.0, 1.0], "p": [1.0, 0.1], "q": [0.1, 1.0]}
    configured = {("a", "p"): 0.9, ("a", "q"): 0.2, ("b", "q"): 0.6, ("b", "p"): 0.7}  # b's pair the wrong way round
    semantic = SimpleNamespace(
        text_encoder=SimpleNamespace(embed=lambda prompts: [torch.tensor(vec[p]) for p in prompts]),
        class_name_matrix=lambda: torch.eye(2),
        cfg=SimpleNamespace(alignment_scoring="cosine", scoring_top_k=0, alignment_offset="none", top_k=3))

    class FakeCached:
        def __init__(self, cfg):
            assert cfg == "data settings"
            self.extractor = SimpleNamespace(
                semantic=semantic, prompt_stats=lambda f, p: {"prompt_alignment": configured[(f.id, p)]})

        def __call__(self, rec):
            assert not rec.get("twin_of") and rec["_root"] == str(tmp_path)
            return SimpleNamespace(id=rec["id"], alignment_basis=vec[rec["id"]])

    monkeypatch.setattr(train_data, "CachedFeatures", FakeCached)
    out = SE.separation_report(tmp_path, "data settings")
    # cosines: a·p > a·q and b·q > b·p, and p, q have the same offsets (symmetric), so every cosine variant ranks
    # both pairs right; the configured statistic gets a only
    assert out["splits"] == {"train": {"pairs": 2, "raw": 1.0, "classes": 1.0, "train-videos": 1.0,
                                       "configured": 0.5, "one_cut": 0.5}}
    # candidates -0.8, 0.4, 0.65, 0.8, 1.9: each of 0.4, 0.65, 0.8 separates pair a only; the first is kept
    assert out["cut"] == pytest.approx(0.4)
    assert out["semantic"] == {"alignment_scoring": "cosine", "scoring_top_k": 0, "alignment_offset": "none", "top_k": 3}


# ----------------------------------------------------------------------------- level cut (level_cut.py)

def _cut_report(rows):
    """rows: (id, model score, model level, reference level) of prompt alignment."""
    return {"predictions": [{"id": i, "dimensions": {"prompt_alignment": {"score": s, "level": lv}},
                             "reference_levels": {"prompt_alignment": ref}} for i, s, lv, ref in rows]}


def test_cut_level_uses_the_top_and_bottom_levels():
    assert LC.cut_level(4.0, 4.0) == TOP and LC.cut_level(3.99, 4.0) == BOTTOM


def test_rows_and_twin_scores():
    rep = _cut_report([("x", 4.9, TOP, TOP), ("x#1", 4.0, TOP, BOTTOM), ("y#2", 3.0, BOTTOM, BOTTOM)])
    rep["predictions"].append({"id": "z", "dimensions": {}, "reference_levels": {"prompt_alignment": TOP}})
    assert LC.rows(rep, "prompt_alignment") == [(4.9, TOP, TOP), (4.0, TOP, BOTTOM), (3.0, BOTTOM, BOTTOM)]
    assert LC.rows(rep, "sharpness") == []
    assert LC.twin_scores(rep, "prompt_alignment") == [(4.9, 4.0, TOP, TOP)]  # y#2 has no original


def test_fit_cut_by_accuracy_and_by_balanced_accuracy():
    """Four top-level records at 3, 4, 5, 6 and one bottom-level record at 4.5: accuracy puts the cut below
    everything (4/5 right), balanced accuracy between 4.5 and 5 (bottom 1/1, top 2/4 → 0.75 > 0.5)."""
    fit = [(3.0, "", TOP), (4.0, "", TOP), (5.0, "", TOP), (6.0, "", TOP), (4.5, "", BOTTOM)]
    assert LC.fit_cut(fit, accuracy) == 2.0
    assert LC.fit_cut(fit, balanced_accuracy) == 4.75
    with pytest.raises(ValueError, match="no records"):
        LC.fit_cut([], accuracy)


def test_evaluate_fits_on_one_report_and_measures_on_the_other():
    """The model always says the top level, but its score is lower for bad alignment."""
    fit = _cut_report([("a", 4.8, TOP, TOP), ("b", 4.6, TOP, TOP), ("c", 4.1, TOP, BOTTOM), ("d", 3.9, TOP, BOTTOM),
                       ("e", 4.7, TOP, TOP)])
    app = _cut_report([("x", 4.9, TOP, TOP), ("x#1", 4.0, TOP, BOTTOM), ("y", 4.5, TOP, TOP), ("y#1", 4.2, TOP, BOTTOM)])
    out = LC.evaluate(fit, app)
    assert (out["key"], out["n_fit"], out["n"], out["pairs"], out["majority"]) == ("prompt_alignment", 5, 4, 2, 0.5)
    assert out["model level"] == {"accuracy": 0.5, "balanced_accuracy": 0.5, "wrong_prompt_lower_level": 0.0}
    for rule in ("cut by accuracy", "cut by balanced accuracy"):
        assert out[rule]["cut"] == pytest.approx(4.35)  # midway between 4.1 (bottom) and 4.6 (top)
        assert out[rule]["accuracy"] == 1.0 and out[rule]["wrong_prompt_lower_level"] == 1.0
    assert "wrong_prompt_lower_level" not in LC.evaluate(fit, _cut_report([("x", 4.9, TOP, BOTTOM)]))["model level"]
    with pytest.raises(ValueError, match="apply report has no 'sharpness'"):
        LC.evaluate(fit, app, key="sharpness")
    lines = LC.level_cut_markdown(out).splitlines()
    assert lines[2] == "| model level | argmax | 0.500 | 0.500 | 0.000 |"
    assert lines[3] == "| cut by accuracy | 4.350 | 1.000 | 1.000 | 1.000 |"


def test_level_cut_script(tmp_path, capsys):
    fit = _cut_report([("a", 4.8, TOP, TOP), ("c", 4.1, TOP, BOTTOM), ("d", 3.9, TOP, BOTTOM)])
    app = _cut_report([("x", 4.9, TOP, TOP), ("x#1", 4.0, TOP, BOTTOM)])
    (tmp_path / "fit.json").write_text(json.dumps(fit))
    (tmp_path / "app.json").write_text(json.dumps(app))
    mod = _script("level_cut")
    assert mod.main(["--fit", str(tmp_path / "fit.json"), "--apply", str(tmp_path / "app.json"),
                     "--json", str(tmp_path / "out.json")]) == 0
    assert json.loads((tmp_path / "out.json").read_text()) == LC.evaluate(fit, app)
    assert (tmp_path / "out.md").read_text().startswith("| rule | cut (1–5) |")
    assert mod.main(["--fit", str(tmp_path / "missing.json"), "--apply", str(tmp_path / "app.json")]) == 2
    assert "missing.json" in capsys.readouterr().err


# ----------------------------------------------------------------------------- ceiling (statistics_ceiling.py)

def _ceiling_corpus(tmp_path, extra_every: int = 0) -> list[dict]:
    """45 cached clips whose overall target is a linear function of sharpness; with extra_every=k,
    every k-th clip comes from an --extra-sources source (name file_…); one clip without cached features."""
    import torch

    from llmvqa.encoders.cache import FeatureCache, content_hash
    from llmvqa.encoders.config import EncoderConfig
    from llmvqa.features import VideoFeatures

    rng = np.random.default_rng(0)
    cache, key = FeatureCache(tmp_path / "cache"), EncoderConfig().key()
    (tmp_path / "videos").mkdir()
    rows = []
    for i in range(46):
        video = tmp_path / "videos" / f"c{i}.mp4"
        video.write_bytes(f"clip {i}".encode())
        sharp = float(rng.uniform(2, 9))
        if i < 45:
            tokens = {s: torch.zeros(2, 4) for s in ("technical", "motion", "semantic")}
            stats = {"sharpness": sharp, "noise": float(rng.uniform(0, 20))}
            cache.put(VideoFeatures(tokens, stats, meta={"content_hash": content_hash(video), "encoder_key": key}))
        source = "file_clip" if extra_every and i % extra_every == 0 else "photo"
        rows.append({"video": f"videos/c{i}.mp4", "split": ("train", "val", "test")[i % 3], "twin_of": None,
                     "source": source, "scores": {"overall": (sharp - 2) / 7}})
    rows.append(rows[0] | {"twin_of": "c0", "scores": {"overall": 0.0}})  # twins are left out
    (tmp_path / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return rows


@pytest.fixture
def quick_models(monkeypatch):
    """``models()`` with a 5-round gradient boosting (the 300-round one takes seconds per fit on a busy machine)."""
    real = CE.models

    def quick():
        out = real()
        out["gradient boosting"].set_params(max_iter=5)
        return out

    monkeypatch.setattr(CE, "models", quick)


def test_models_are_fresh_unfitted_learners():
    a, b = CE.models(), CE.models()
    assert list(a) == ["ridge", "gradient boosting"] and all(a[k] is not b[k] for k in a)
    assert a["gradient boosting"].get_params()["max_iter"] == 300


def test_load_reads_the_cache_and_leaves_out_twins_and_uncached_clips(tmp_path):
    rows = _ceiling_corpus(tmp_path, extra_every=2)
    data = CE.load(tmp_path / "manifest.jsonl", tmp_path / "cache")
    assert data.x.shape == (45, 2) and data.names == ["sharpness", "noise"] and data.missing == ["videos/c45.mp4"]
    assert data.target.tolist() == [r["scores"]["overall"] for r in rows[:45]]
    assert data.split.tolist() == [r["split"] for r in rows[:45]]
    assert data.videos == [tmp_path / r["video"] for r in rows[:45]]
    assert data.extra.tolist() == [i % 2 == 0 for i in range(45)]
    np.testing.assert_allclose(data.x[:, 0], [r["scores"]["overall"] * 7 + 2 for r in rows[:45]])
    with pytest.raises(Exception, match="no clip has cached features"):
        CE.load(tmp_path / "manifest.jsonl", tmp_path / "empty")


def test_train_mask_and_columns():
    split = np.array(["train", "train", "val", "test", "test"])
    extra = np.array([True, False, False, True, False])
    assert CE.train_mask(split, extra).tolist() == [True, True, False, False, False]
    assert CE.train_mask(split, extra, "shipped").tolist() == [False, True, False, False, False]
    with pytest.raises(ValueError):
        CE.train_mask(split, extra, "some")
    cols = CE.columns(split, extra)
    assert list(cols) == ["train", "val", "test", "test (shipped)", "test (extra)"]
    assert cols["test (extra)"].tolist() == [False, False, False, True, False]
    assert list(CE.columns(split, np.zeros(5, bool))) == ["train", "val", "test"]


def test_ceiling_ranks_a_linear_target_perfectly_and_marks_small_columns(quick_models):
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(30, 3))
    y = 2 * x[:, 1] + 1  # a linear function of one feature
    split = np.array(["train"] * 20 + ["val"] * 8 + ["test"] * 2)
    table = CE.ceiling({"f": x}, y, split == "train", CE.columns(split, np.zeros(30, bool)))
    assert list(table["f"]) == ["ridge", "gradient boosting"]
    ridge = table["f"]["ridge"]
    assert ridge["train"] == pytest.approx(1.0) and ridge["val"] == pytest.approx(1.0) and ridge["test"] is None
    md = CE.ceiling_markdown(table).splitlines()
    assert md[0] == "| features | learner | train | val | test |" and md[2] == "| f | ridge | 1.000 | 1.000 | — |"
    with pytest.raises(ValueError, match="fewer than 3 train clips"):
        CE.ceiling({"f": x}, y, np.arange(30) < 2, {})


def test_clip_nss_averages_brisque_features_over_textured_frames(monkeypatch):
    from types import SimpleNamespace

    from llmvqa.evaluation.brisque import brisque_features
    from llmvqa.video import loader

    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(2))
    flat = np.full((48, 64, 3), 90, np.uint8)  # no texture: NaN features, left out of the mean
    clips = {"one.mp4": np.stack([a, flat, b]), "two.mp4": np.stack([b, b])}
    asked = []

    def fake_load_clip(path, nframes=None, **_):
        asked.append((str(path), nframes))
        return SimpleNamespace(frames=clips[str(path)])

    monkeypatch.setattr(loader, "load_clip", fake_load_clip)
    expected_one = (brisque_features(a) + brisque_features(b)) / 2
    np.testing.assert_allclose(CE.clip_nss("one.mp4", 3), expected_one)
    m = CE.nss_matrix(["two.mp4", "one.mp4"], 3)
    assert m.shape == (2, 36) and asked[-2:] == [("two.mp4", 3), ("one.mp4", 3)]
    np.testing.assert_allclose(m, np.stack([brisque_features(b), expected_one]))
    assert CE.nss_matrix([], 3).shape == (0, 36)


def test_statistics_ceiling_script_fits_on_shipped_sources_and_adds_brisque(tmp_path, capsys, monkeypatch,
                                                                          quick_models):
    rows = _ceiling_corpus(tmp_path, extra_every=2)
    mod = _script("statistics_ceiling")
    # the BRISQUE columns: hand-made features, one row per loaded clip (the uncached clip is not decoded)
    monkeypatch.setattr(mod, "nss_matrix", lambda videos, frames: np.arange(len(videos) * 2.0).reshape(-1, 2))
    assert mod.main([str(tmp_path / "manifest.jsonl"), "--cache", str(tmp_path / "cache"), "--train-on", "shipped",
                     "--nss", "2"]) == 0
    captured = capsys.readouterr()
    shipped_train = sum(r["split"] == "train" and not r["source"].startswith("file_") for r in rows[:45])
    assert f"45 clips, 2 statistics, fitted on {shipped_train} train clips (shipped)" in captured.out
    assert "| features | learner | train | val | test | test (shipped) | test (extra) |" in captured.out
    ridge = next(line for line in captured.out.splitlines() if line.startswith("| statistics | ridge"))
    assert ridge.count("1.000") == 5  # the linear target is learned from either subset
    assert "| statistics + BRISQUE | gradient boosting |" in captured.out
    assert "1 clip(s) have no cached features" in captured.err


def test_statistics_ceiling_script_errors_say_what_to_do(tmp_path):
    mod = _script("statistics_ceiling")
    with pytest.raises(SystemExit, match="llmvqa sig synth"):
        mod.main([str(tmp_path / "missing.jsonl")])
    (tmp_path / "m.jsonl").write_text(json.dumps({"video": "x.mp4", "split": "train", "scores": {"overall": 1}}))
    (tmp_path / "x.mp4").write_bytes(b"not cached")
    with pytest.raises(SystemExit, match="llmvqa features"):
        mod.main([str(tmp_path / "m.jsonl"), "--cache", str(tmp_path / "cache")])
