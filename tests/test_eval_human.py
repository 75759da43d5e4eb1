"""The analysis behind eval/human_cv.py, eval/prior_pairs.py and eval/statistic_directions.py
(``llmvqa.evaluation.human`` and ``llmvqa.evaluation.human_report``) on small hand-made inputs."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

from llmvqa.evaluation.human import (
    ASPECT_KEY,
    REAL_SOURCE,
    SynthCheck,
    chain_order,
    cross_validate,
    directions,
    fidelity,
    prior_data,
    prior_setting,
    put_estimates,
    rated_statistics,
    score_clips,
    summarize,
    synth_check,
)
from llmvqa.evaluation.human_report import (
    cv_markdown,
    directions_markdown,
    interval_from_report,
    interval_record,
    prior_pairs_markdown,
    write_interval,
)
from llmvqa.statistics import PROBE_STATISTICS, STATISTICS, STREAMS


def clip(name="c", prompt="", source="gen", static=3.0, temporal=3.0, alignment=3.0):
    return SimpleNamespace(name=name, path=None, prompt=prompt, source=source,
                           ratings={"static": static, "temporal": temporal, "alignment": alignment})


def feats(value: float, width: int = 2):
    """Features whose every stream token is ``value`` (statistics left to their typical values)."""
    return SimpleNamespace(tokens={s: np.full((1, width), float(value)) for s in STREAMS}, stats={})


# ---------------------------------------------------------------------------- eval/human_cv.py
def test_the_cross_validated_aspects_are_the_ones_calibration_teaches():
    from llmvqa.train.human import HUMAN_ASPECTS

    assert list(ASPECT_KEY) == list(HUMAN_ASPECTS)
    assert list(ASPECT_KEY.values()) == ["overall", "technical", "motion", "semantic", "prompt_alignment"]


class FakeModel:
    """score_queries answers 10 × the clip's feature value + the query's position; records what it was asked."""

    cfg = SimpleNamespace(prompt_version="v1")

    def __init__(self):
        self.asked = []

    def score_queries(self, f, queries, prompt=None, prompt_stats=None):
        self.asked.append((queries, prompt, prompt_stats))
        return [SimpleNamespace(score=10.0 * f + k) for k in range(len(queries))]


def test_score_clips_asks_every_aspect_with_the_clips_own_prompt():
    model = FakeModel()
    out = score_clips(model, [clip(prompt="a red cat"), clip(prompt="")], [(1, {"prompt_alignment": 0.3}), (2, {})])
    assert out == {"overall": [10.0, 20.0], "technical": [11.0, 21.0], "motion": [12.0, 22.0],
                   "semantic": [13.0, 23.0], "prompt_alignment": [14.0, 24.0]}
    (q1, p1, ps1), (q2, p2, ps2) = model.asked
    assert p1 == "a red cat" and ps1 == {"prompt_alignment": 0.3}
    assert p2 is None and ps2 == {}  # an empty prompt is no prompt
    assert len(q1) == 5 and q1[0][0] is None  # the overall aspect is the model's own rating question
    assert "technical" in q1[1][0] and "a red cat" in q1[1][0] and "a red cat" not in q2[1][0]
    assert [q[1] for q in q1] == [q[1] for q in q2]  # the answer prefixes do not depend on the prompt


def test_put_estimates_spreads_static_temporal_alignment_over_the_aspects():
    pred = {k: [0.0] * 3 for k in ASPECT_KEY.values()}
    put_estimates(pred, [2, 0], np.array([[4.0, 2.0, 3.5], [1.0, 5.0, 2.0]]))
    assert pred == {"overall": [3.0, 0.0, 3.0], "technical": [1.0, 0.0, 4.0], "motion": [5.0, 0.0, 2.0],
                    "semantic": [2.0, 0.0, 3.5], "prompt_alignment": [2.0, 0.0, 3.5]}


def _three_prompts():
    """Per prompt: the real clip (rated 5) and generators A, B rated 2, 3, 4 on p1..p3 (static = temporal)."""
    clips, overall = [], []
    real = [4.0, 2.0, 4.5]
    a, b = [2.1, 3.1, 4.1], [3.9, 3.0, 2.2]  # A follows people, B runs against them
    for i, p in enumerate(("p1", "p2", "p3")):
        q = 2.0 + i
        clips += [clip(f"r{i}", p, REAL_SOURCE, 5, 5), clip(f"a{i}", p, "A", q, q), clip(f"b{i}", p, "B", q, q)]
        overall += [real[i], a[i], b[i]]
    return clips, overall


def test_summarize_counts_generators_real_footage_and_the_interval():
    clips, overall = _three_prompts()
    row = summarize("demo", {"overall": overall}, clips, half_width=0.5)
    assert row["name"] == "demo" and set(row["agreement"]) == {"overall~static", "overall~temporal", "overall~mean"}
    assert row["agreement"]["overall~mean"]["n"] == 9
    wg = row["within_generator"]["static"]
    assert wg["A"] == pytest.approx(1.0) and wg["B"] == pytest.approx(-1.0) and math.isnan(wg[REAL_SOURCE])
    assert wg["mean_generated"] == pytest.approx(0.0)
    # real beats both generated clips of p1 and p3, neither of p2
    assert row["real_outranks_generated"] == pytest.approx(4 / 6)
    # |error| ≤ 0.5: r2 (0.5), a0..a2 (0.1), b1 (0.0)
    assert row["coverage"] == pytest.approx(5 / 9)
    no_overall = summarize("groups", {"technical": overall}, clips)
    assert set(no_overall) == {"name", "agreement"} and set(no_overall["agreement"]) == {"technical~static"}
    assert "coverage" not in summarize("no interval", {"overall": overall}, clips)


def test_prior_data_stacks_prior_inputs_and_the_ratings_in_target_order():
    clips = [clip(static=1.0, temporal=2.0, alignment=3.0), clip(static=4.0, temporal=5.0, alignment=1.5)]
    x, y = prior_data([(feats(0.25), {}), (feats(-1.0), {"prompt_alignment": 0.2})], clips)
    assert y.tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 1.5]]
    n_stats = len(STATISTICS) + 1  # prompt statistics as value + has-prompt indicator
    assert x.shape == (2, 2 * len(STREAMS) + n_stats)
    assert x[0, :6].tolist() == [0.25] * 6 and x[1, :6].tolist() == [-1.0] * 6
    assert x[0, -1] == 0.0 and x[1, -1] == 1.0  # has a prompt


class TokenScorer:
    """A model that scores every aspect by the clip's technical token (+ ``shift``) and states ±0.5."""

    cfg = SimpleNamespace(prompt_version="v1")
    interval = {"half_width": 0.5}

    def __init__(self, shift=0.0):
        self.shift, self.prior = shift, "prior"

    def score_queries(self, f, queries, prompt=None, prompt_stats=None):
        return [SimpleNamespace(score=float(f.tokens["technical"][0, 0]) + self.shift) for _ in queries]


def test_cross_validate_scores_each_fold_by_a_model_calibrated_without_it(monkeypatch, tmp_path):
    import llmvqa.train.human as train_human
    from llmvqa.evaluation import brisque
    from llmvqa.model.modeling import QualityLLM

    calibrated_on, loaded = [], []

    def fake_calibrate(base, clips, features_of, out_dir, cfg, log=None, chains=None):
        calibrated_on.append(({c.name for c in clips}, chains))
        log("calibrating")
        return out_dir

    def fake_load(path, scorer=True):
        loaded.append(scorer)
        return TokenScorer(0.0 if scorer else -1.0)  # the base checkpoint scores one lower

    monkeypatch.setattr(train_human, "calibrate", fake_calibrate)
    monkeypatch.setattr(QualityLLM, "from_pretrained", staticmethod(fake_load))
    monkeypatch.setattr(brisque, "available", lambda: False)
    # human overall 2, 3, 4 in every fold; the token is the score, so the held-out errors are
    # 0.125 0.25 0.375 | 0.25 0.5 0.125 | 0.5 1.0 0.875
    human = [2.0, 3.0, 4.0] * 3
    tokens = [2.125, 3.25, 3.625, 2.25, 2.5, 4.125, 2.5, 4.0, 3.125]
    clips = [clip(f"c{i}", f"p{i}", "A" if i % 2 else REAL_SOURCE, h, h, h) for i, h in enumerate(human)]
    from llmvqa.train.human import CalibrationConfig, chain_pairs

    cfg = CalibrationConfig(steps=3, alpha=1.0)
    chains = [chain([3.0, 2.0, 1.0, 0.0])]
    log = []
    report = cross_validate(tmp_path / "base", clips, [(feats(t), {}) for t in tokens], None, np.repeat([0, 1, 2], 3),
                            cfg, chains=chains, pairs=chain_pairs(chains, 0.25), ratings="data/rated", log=log.append)
    # every fold's model saw the other folds' clips only; the chains joined every calibration
    assert [names for names, _ in calibrated_on] == [{"c3", "c4", "c5", "c6", "c7", "c8"},
                                                     {"c0", "c1", "c2", "c6", "c7", "c8"},
                                                     {"c0", "c1", "c2", "c3", "c4", "c5"}]
    assert all(ch is chains for _, ch in calibrated_on) and loaded == [False, True, True, True]
    assert sum(m.startswith("fold ") for m in log) == 3 and log.count("calibrating") == 3
    pred = report["predictions"]
    assert pred["model"]["overall"] == tokens and pred["model"]["prompt_alignment"] == tokens
    assert pred["before"]["overall"] == pytest.approx([t - 1 for t in tokens])
    assert pred["fold"] == [0, 0, 0, 1, 1, 1, 2, 2, 2] and pred["half_width"] == [0.5] * 9 and pred["brisque"] is None
    assert all(np.isfinite(pred["ridge"]["overall"])) and all(np.isfinite(pred["ranked"]["overall"]))
    assert [r["name"] for r in report["rows"]] == ["llmvqa (calibrated, held-out folds)",
                                                   "before: base checkpoint, no calibration",
                                                   "ridge prior alone (same folds)",
                                                   "ranked prior alone (1 chains; same folds)"]
    # |error| ≤ 0.5 for all but c7 (1.0) and c8 (0.875)
    assert report["rows"][0]["coverage"] == pytest.approx(7 / 9) and "coverage" not in report["rows"][1]
    assert (report["clips"], report["folds"], report["steps"], report["chains"], report["ratings"]) == (9, 3, 3, 1, "data/rated")
    assert report["config"]["steps"] == 3 and report["config"]["alpha"] == 1.0  # the recipe the folds were trained with
    json.dumps(report["config"])  # and it is JSON
    # the 80% quantile (linear) of the nine errors: position 6.4 → 0.5 + 0.4 × (0.875 − 0.5) = 0.65; folds 0 and 1
    # lie inside the others' quantile (0.875 both times), fold 2 outside its (0.375)
    assert report["interval"]["half_width"] == pytest.approx(0.65)
    assert report["interval"]["expected_coverage"] == pytest.approx(6 / 9)


# ---------------------------------------------------------------------------- interval.json
INTERVAL = {"coverage": 0.8, "half_width": 0.5, "expected_coverage": 0.75, "n": 12, "folds": 3}


def test_the_interval_file_keeps_its_keys_and_says_how_it_was_measured(tmp_path):
    rec = interval_record(INTERVAL, "data/rated")
    assert list(rec) == ["coverage", "half_width", "fitted_on", "expected_coverage", "how"]
    assert (rec["coverage"], rec["half_width"], rec["fitted_on"], rec["expected_coverage"]) == (0.8, 0.5, 12, 0.75)
    assert rec["how"].startswith("80% quantile") and "on 12 clips of data/rated, 3 folds grouped by prompt" in rec["how"]
    assert rec["how"].endswith(": 75.0%")
    path = write_interval(tmp_path / "model", INTERVAL, "data/rated")
    assert path == tmp_path / "model" / "interval.json" and json.loads(path.read_text()) == rec
    assert sorted(p.name for p in path.parent.iterdir()) == ["interval.json"]


def test_interval_from_report_matches_clips_by_name_and_uses_the_reports_folds(tmp_path):
    # |errors| 0.1, 0.2 (fold 0), 0.3, 0.4 (fold 1), 0.5, 1.0 (fold 2) around a human overall of 3
    clips = [clip(f"c{i}", f"p{i}") for i in range(6)]
    names = ["c5", "c0", "c3", "c1", "c2", "c4"]  # the report's order, not the ratings'
    pred = {"c0": 3.1, "c1": 2.8, "c2": 3.3, "c3": 2.6, "c4": 3.5, "c5": 2.0}
    folds = {"c0": 0, "c1": 0, "c2": 1, "c3": 1, "c4": 2, "c5": 2}
    report = {"folds": 3, "predictions": {"names": names, "model": {"overall": [pred[n] for n in names]},
                                          "fold": [folds[n] for n in names]}}
    (tmp_path / "report.json").write_text(json.dumps(report))
    for given in (report, tmp_path / "report.json", str(tmp_path / "report.json")):
        iv = interval_from_report(given, clips)
        # 80% quantile (linear) of the six errors: position 4 of 0..5 → 0.5; folds 0 and 1 lie inside the
        # others' quantile (0.7 both times), fold 2 outside its (0.34)
        assert iv["half_width"] == pytest.approx(0.5) and iv["expected_coverage"] == pytest.approx(4 / 6)
        assert (iv["coverage"], iv["n"], iv["folds"]) == (0.8, 6, 3)


# ---------------------------------------------------------------------------- report.md of eval/human_cv.py
def _agreement(srcc_of: dict) -> dict:
    return {k: {"srcc": v, "plcc": 0.0, "krcc": 0.0, "rmse": 0.0, "n": 9} for k, v in srcc_of.items()}


def test_cv_markdown_has_one_row_per_scorer_with_dashes_for_what_it_lacks():
    full = {"name": "model", "agreement": _agreement({"overall~static": 0.5, "overall~temporal": 0.25,
                                                      "overall~mean": 0.4, "technical~static": 0.1,
                                                      "motion~temporal": 0.2, "semantic~alignment": 0.3,
                                                      "prompt_alignment~alignment": 0.35}),
            "within_generator": {"static": {"mean_generated": 0.125}, "temporal": {"mean_generated": float("nan")}},
            "real_outranks_generated": 0.75, "coverage": 0.8}
    overall_only = {"name": "BRISQUE", "agreement": _agreement({"overall~mean": -0.05})}
    report = {"ratings": "data/rated", "clips": 9, "folds": 3, "grouped_by": "prompt", "steps": 4,
              "rows": [full, overall_only], "interval": INTERVAL}
    lines = cv_markdown(report).splitlines()
    assert lines[0] == ("# Agreement with people: data/rated (9 clips, 3 folds grouped by prompt, "
                        "4 calibration steps per fold)")
    header = lines[4]
    assert header.startswith("| | overall~static | overall~temporal | overall~mean |") and header.count("|") == 12
    assert lines[5] == "|---" * 11 + "|"
    assert lines[6] == "| model | 0.500 | 0.250 | 0.400 | 0.100 | 0.200 | 0.300 | 0.350 | 0.125 / — | 0.750 | 0.800 |"
    assert lines[7] == "| BRISQUE | — | — | -0.050 | — | — | — | — | — | — | — |"
    assert lines[-1] == ("Interval from the held-out errors: ±0.500 for 80%; expected coverage on new clips "
                         "(each fold against the other folds' quantile): 75.0%.")
    assert "Interval from" not in cv_markdown({**report, "interval": None})


def test_fidelity_separates_a_fold_offset_from_the_ranking_inside_each_fold():
    prior = [3.0, 3.5, 4.0, 3.0, 3.5, 4.0]
    # fold 0 follows the prior exactly; fold 1 ranks like it but sits 0.5 lower
    scored = [3.0, 3.5, 4.0, 2.5, 3.0, 3.5]
    fid = fidelity(scored, prior, [0, 0, 0, 1, 1, 1])
    assert [r["offset"] for r in fid["folds"]] == pytest.approx([0.0, -0.5])
    assert [r["srcc"] for r in fid["folds"]] == pytest.approx([1.0, 1.0])
    assert fid["offset_spread"] == pytest.approx(0.25) and fid["offset_mean"] == pytest.approx(-0.25)
    assert fid["mean_abs_difference"] == pytest.approx(0.25)
    assert fid["pooled_srcc"] < 0.9  # pooled, the offset breaks ties the prior set
    # a constant fold has no ranking to compare
    assert math.isnan(fidelity([3.0, 3.0, 3.0], [1.0, 2.0, 3.0], [0, 0, 0])["folds"][0]["srcc"])
    report = {"ratings": "r", "clips": 6, "folds": 2, "grouped_by": "prompt", "steps": 1, "rows": [], "fidelity": fid}
    line = [x for x in cv_markdown(report).splitlines() if x.startswith("The scorer against the prior")][0]
    assert "offset per fold (scorer − prior) +0.00, -0.50 (spread 0.250)" in line and line.endswith("1.000, 1.000.")


# ---------------------------------------------------------------------------- eval/prior_pairs.py
def chain(values, kind="blur", group="technical", prompt_stats=None):
    return SimpleNamespace(clip="c", degradation=kind, group=group, prompt="", strengths=(0.0, 0.35, 0.7, 1.0)[:len(values)],
                           features=[feats(v) for v in values], prompt_stats=prompt_stats or [])


class TokenPrior:
    """static = technical token, temporal = technical token + 1: the overall estimate follows the token."""

    def predict_inputs(self, x):
        x = np.atleast_2d(x)
        return np.stack([x[:, 0], x[:, 0] + 1, np.zeros(len(x))], 1)


def test_chain_order_counts_pairs_where_the_stronger_degradation_scores_strictly_lower():
    chains = [chain([4, 3, 2, 1]),  # 6 of 6
              chain([1, 2, 3, 4], prompt_stats=[{"prompt_alignment": 0.2}] * 4),  # 0 of 6
              chain([3, 3, 2, 2], kind="noise")]  # ties do not count: 4 of 6
    ordered, by_kind = chain_order(TokenPrior(), chains)
    assert ordered == pytest.approx(10 / 18)
    assert list(by_kind) == ["blur", "noise"] and by_kind == pytest.approx({"blur": 0.5, "noise": 4 / 6})


def test_prior_setting_scores_a_prior_that_follows_the_data():
    v = np.linspace(0.0, 4.0, 24)
    rated = [clip(static=1 + t, temporal=1 + 0.8 * t, alignment=5 - t) for t in v]
    x, y = prior_data([(feats(t), {}) for t in v], rated)
    folds = np.arange(24) % 3
    test = [chain([3, 2, 1, 0]), chain([2.5, 2, 1.5, 1], kind="noise")]  # degradation lowers the token
    carphone = np.stack([x[18], x[6]])  # a high-token clip, a low-token clip
    train = [chain([3.5, 2.5, 1.5, 0.5]), chain([3, 2, 1, 0], kind="jitter", group="motion")]
    for weight, margin in ((0.0, 0.0), (1.0, 0.25)):
        row = prior_setting(x, y, folds, 1.0, weight, margin, train, test, carphone)
        assert (row["weight"], row["margin"]) == (weight, margin)
        assert row["static"] > 0.95 and row["temporal"] > 0.95 and row["alignment"] > 0.95
        assert row["chains_ordered"] == 1.0 and row["by_kind"] == {"blur": 1.0, "noise": 1.0}
        car = row["carphone"]
        assert car["pristine"] > car["distorted"] and car["pristine_static"] > car["distorted_static"]
        # clip 18 is rated static 1 + v[18] ≈ 4.13 and temporal ≈ 3.50
        assert car["pristine_static"] == pytest.approx(1 + v[18], abs=0.3)
        assert car["pristine"] == pytest.approx(1 + 0.9 * v[18], abs=0.3)


def test_synth_check_correlates_the_overall_estimate_with_the_corpus_target_overall_and_inside_a_source():
    from scipy.stats import spearmanr

    tokens = np.array([3.0, 2.0, 1.0, 1.0, 2.0, 3.0, 2.5])
    target = np.array([1.0, 0.5, 0.2, 1.0, 0.4, 0.1, 0.3])
    split = SynthCheck(np.stack([[t, 0.0] for t in tokens]), target, ["A", "A", "A", "B", "B", "B", "B"],
                       np.array([False] * 6 + [True]))
    out = synth_check(TokenPrior(), split)  # the overall estimate is token + 0.5
    assert out["srcc"] == pytest.approx(spearmanr(tokens, target)[0])
    assert out["srcc_right_prompt"] == pytest.approx(spearmanr(tokens[:6], target[:6])[0])
    # A follows its target (+1), B runs against it (B's four clips: −0.8)
    assert out["srcc_within_source"] == pytest.approx((1.0 + spearmanr(tokens[3:], target[3:])[0]) / 2)
    assert out["clips"] == 7


def test_prior_setting_adds_the_within_source_pairs_and_reports_the_synth_check():
    v = np.linspace(0.0, 4.0, 24)
    rated = [clip(static=1 + t, temporal=1 + 0.8 * t, alignment=5 - t) for t in v]
    x, y = prior_data([(feats(t), {}) for t in v], rated)
    folds = np.arange(24) % 3
    test = [chain([3, 2, 1, 0])]
    carphone = np.stack([x[18], x[6]])

    def rec(*degradations):
        return {"source": "s", "twin_of": None, "degradations": [{"name": n, "strength": st} for n, st in degradations]}

    source_rows = [(rec(), x[20]), (rec(("blur", 1.0)), x[4]), (rec(("jitter", 0.5)), x[12])]
    split = SynthCheck(x[[20, 12, 4]], np.array([1.0, 0.6, 0.1]), ["s"] * 3, np.zeros(3, bool))
    row = prior_setting(x, y, folds, 1.0, 1.0, 0.25, [chain([3, 2, 1, 0])], test, carphone, source_rows=source_rows,
                        source_weight=2.0, source_margin=0.5, synth_test=split)
    assert (row["weight"], row["source_weight"], row["source_margin"]) == (1.0, 2.0, 0.5)
    assert row["static"] > 0.95 and row["chains_ordered"] == 1.0
    assert row["synth"]["srcc"] == pytest.approx(1.0) and row["synth"]["srcc_within_source"] == pytest.approx(1.0)
    plain = prior_setting(x, y, folds, 1.0, 1.0, 0.25, [chain([3, 2, 1, 0])], test, carphone)
    assert "source_weight" not in plain and "synth" not in plain


def test_prior_pairs_markdown_rows_and_kinds():
    row = {"weight": 0.1, "margin": 0.5, "static": 0.5504, "temporal": 0.769, "alignment": 0.4, "chains_ordered": 0.738,
           "by_kind": {"blur": 0.9, "noise": 0.25},
           "carphone": {"pristine": 3.456, "distorted": 2.1, "pristine_static": 3.0, "distorted_static": 1.994}}
    hinged = {**row, "outside": 0.2, "val_chains_ordered": 0.854}
    md = prior_pairs_markdown([row, hinged], chains=240, clips=72, folds=6, test_chains=72)
    lines = md.splitlines()
    assert lines[0] == ("# The human prior ranked by 240 chains: fetv_dev (72 clips, 6 prompt-grouped folds) "
                        "against 72 test-split chains")
    assert lines[4] == "| 0.1 : 0.5 | 0.550 | 0.769 | 0.400 | 73.8% | — | 3.46 / 2.10 | 3.00 / 1.99 |"
    assert lines[5] == "| 0.1 : 0.5 : 0.2 | 0.550 | 0.769 | 0.400 | 73.8% | 85.4% | 3.46 / 2.10 | 3.00 / 1.99 |"
    assert lines[-1] == ("By kind (share of ordered pairs): 0.1:0.5 blur 90%, noise 25%; "
                         "0.1:0.5:0.2 blur 90%, noise 25%")
    assert md.endswith("\n")
    synth = {**hinged, "source_weight": 1.0, "source_margin": 0.35,
             "synth": {"srcc": 0.2821, "srcc_right_prompt": 0.32, "srcc_within_source": 0.376}}
    lines = prior_pairs_markdown([hinged, synth], chains=240, clips=72, folds=6, test_chains=72).splitlines()
    assert lines[2].endswith("| synth test SRCC (all / right prompt / within source) |")
    assert lines[4].endswith("| 3.00 / 1.99 | — |")
    assert lines[5].startswith("| 0.1 : 0.5 : 0.2 + 1 : 0.35 | 0.550 |") and lines[5].endswith("| 0.282 / 0.320 / 0.376 |")
    assert lines[-1].startswith("+ w : m: the synth train split's within-source pairs")


# ---------------------------------------------------------------------------- eval/statistic_directions.py
def test_rated_statistics_joins_encoder_and_prompt_statistics_as_floats():
    got = rated_statistics([clip("a"), clip("b")],
                           lambda c: (SimpleNamespace(stats={"noise": np.float32(2.0 if c.name == "a" else 1.5)}),
                                      {"prompt_alignment": 0.25}))
    assert got == [{"noise": 2.0, "prompt_alignment": 0.25}, {"noise": 1.5, "prompt_alignment": 0.25}]
    assert all(type(v) is float for v in got[0].values())


def test_directions_read_each_stream_against_its_rating():
    static = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    ratings = [{"static": s, "temporal": 7 - s, "alignment": s / 2} for s in static]
    stats = [{"sharpness": s,  # rises with static: as assumed (higher is better)
              "noise": n,  # ranks 4 1 6 3 2 5 against 1..6: Σd² = 30, SRCC = 1 − 180/210 = 0.143: weak
              "brightness": s,  # no direction assumed
              "jitter": s,  # motion reads temporal, which falls as static rises: jitter "lower is better" holds
              "prompt_alignment": -s}  # falls as alignment rises: against
             for s, n in zip(static, [4.0, 1.0, 6.0, 3.0, 2.0, 5.0], strict=True)]
    rows = {r["statistic"]: r for r in directions(stats, ratings)}
    assert [r["statistic"] for r in directions(stats, ratings)] == [s.name for s in STATISTICS + PROBE_STATISTICS]
    assert rows["sharpness"]["verdict"] == "as assumed" and rows["sharpness"]["static"] == pytest.approx(1.0)
    assert rows["noise"]["static"] == pytest.approx(1 - 180 / 210) and rows["noise"]["verdict"] == "weak"
    assert rows["brightness"]["verdict"] == "no direction assumed"
    assert rows["jitter"]["temporal"] == pytest.approx(-1.0) and rows["jitter"]["verdict"] == "as assumed"
    assert rows["prompt_alignment"]["alignment"] == pytest.approx(-1.0) and rows["prompt_alignment"]["verdict"] == "against"
    assert math.isnan(rows["flicker"]["static"]) and rows["flicker"]["verdict"] == "—"  # not measured


def test_directions_markdown_words_the_assumed_direction():
    rows = [{"statistic": "noise", "stream": "technical", "assumed": False, "static": 0.25, "temporal": -0.5,
             "alignment": float("nan"), "verdict": "against"},
            {"statistic": "brightness", "stream": "technical", "assumed": None, "static": 0.0, "temporal": 0.0,
             "alignment": 0.0, "verdict": "no direction assumed"}]
    assert directions_markdown(rows, 6, "data/rated").splitlines() == [
        "SRCC of each statistic with the human ratings of 6 clips (data/rated)", "",
        "| statistic | stream | assumed | static | temporal | alignment | verdict |", "|---|---|---|---|---|---|---|",
        "| noise | technical | lower better | 0.25 | -0.50 | nan | against |",
        "| brightness | technical | — | 0.00 | 0.00 | 0.00 | no direction assumed |"]


# ---------------------------------------------------------------------------- eval/prior_residual.py
def _eval_script(name):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "eval" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"eval_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _prior_residual():
    return _eval_script("prior_residual")


def _ranked_problem(seed=0, n=40, p=30, tokens=4):
    from llmvqa.model.prior import STAT_INPUTS

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, tokens + STAT_INPUTS))
    y = np.stack([x[:, 0] + 3, x[:, 1] + 3, x[:, 2] + 3], 1) + 0.3 * rng.normal(size=(n, 3))
    better = rng.normal(size=(p, tokens + STAT_INPUTS))
    worse = better.copy()
    worse[:, tokens + 1] += 2.0  # the degradation moves one statistic far outside the rated clips' range
    gap = np.tile([1.0, 0.0, np.nan], (p, 1))  # static must drop by margin × 1, temporal must not rise
    return x, y, np.stack([better, worse], 1), gap


def test_torch_prior_without_a_residual_is_fit_ranked():
    from llmvqa.model.prior import HumanPrior

    x, y, pair_x, gap = _ranked_problem()
    mod = _prior_residual()
    ours = mod.TorchPrior(x, y, pair_x, gap, alpha=10.0, weight=3.0, margin=0.5, outside=0.2, iters=500)
    ref = HumanPrior.fit_ranked(x, y, pair_x, gap * 0.5, alpha=10.0, weight=3.0, outside=0.2)
    probe = np.concatenate([x, pair_x[:, 1]])
    # static and temporal carry the pairs; the same convex objective, solved two ways
    assert np.abs(ours.predict(probe)[:, :2] - ref.predict_inputs(probe)[:, :2]).max() < 1e-3
    drop = ours.predict(pair_x[:, 0])[:, 0] - ours.predict(pair_x[:, 1])[:, 0]
    assert np.median(drop) > 0.25  # the pairs pull the degraded clips down


def test_torch_prior_anchored_residual_stays_off_the_rated_clips():
    x, y, pair_x, gap = _ranked_problem(seed=1)
    mod = _prior_residual()
    linear = mod.TorchPrior(x, y, pair_x, gap, alpha=10.0)
    anchored = mod.TorchPrior(x, y, pair_x, gap, alpha=10.0, hidden=8, decay=1.0, anchor=100.0)
    free = mod.TorchPrior(x, y, pair_x, gap, alpha=10.0, hidden=8, decay=1.0)
    on_rated = lambda p: np.abs(p.predict(x) - linear.predict(x))[:, 0].mean()  # noqa: E731
    assert on_rated(anchored) < on_rated(free)
    assert mod.parse_setting("hidden=16,decay=10") == {"hidden": 16, "decay": 10.0}
    with pytest.raises(SystemExit, match="expected linear"):
        mod.parse_setting("hidden")


# ---------------------------------------------------------------------------- eval/degradation_ranker.py
def _chains(seed=0, n=30):
    """Chains (n, 4, 3): column 0 falls with the strength, column 1 is content, column 2 rises with the strength."""
    rng = np.random.default_rng(seed)
    content = rng.normal(size=(n, 1, 3)) * [1.0, 3.0, 1.0]
    step = np.array([0.0, 0.35, 0.7, 1.0])[None, :, None] * [-1.0, 0.0, 0.5]
    return content + step + 0.01 * rng.normal(size=(n, 4, 3))


def test_chain_ranker_orders_new_chains_and_keeps_assumed_signs():
    mod = _eval_script("degradation_ranker")
    free = mod.ChainRanker(_chains(), np.arange(3))
    assert mod.chain_share(free(_chains(seed=1))).mean() > 0.95
    assert free.w[0] > 0 and free.w[2] < 0  # both moving columns rank a chain
    signed = mod.ChainRanker(_chains(), np.arange(3), signs=np.array([1.0, 0.0, 1.0]))
    assert signed.w[2] >= 0 and signed.w[0] > 0  # "higher is better" forbids reading column 2 downward
    assert mod.chain_share(signed(_chains(seed=1))).mean() > 0.95
    anchors = _chains(seed=2)[:, 0] * [3.0, 1.0, 0.0]  # rated clips that differ along column 0
    flat = mod.ChainRanker(_chains(), np.arange(3), flat=anchors, flat_weight=100.0)
    assert flat(anchors).std() < 0.5 * free(anchors).std()


def test_degradation_ranker_columns_follow_the_statistics_layout():
    from llmvqa.model.prior import STAT_INPUTS
    from llmvqa.statistics import STATISTICS

    mod = _eval_script("degradation_ranker")
    cols, signs = mod.probe_columns({"tokens": 4})
    assert list(cols) == list(range(STAT_INPUTS + 4)) and signs is None
    names = [s.name for s in STATISTICS]
    cols, signs = mod.probe_columns({"tokens": 4, "stats": 1, "signed": 1, "drop": "noise"})
    assert names.index("noise") not in cols and names.index("dynamic_degree") not in cols  # dropped / no direction
    assert signs[names.index("sharpness")] == 1.0 and signs[names.index("jitter")] == -1.0
    assert max(cols) < STAT_INPUTS
    assert mod.parse_setting("probe") == {} and mod.parse_setting("stats=1,drop=a+b") == {"stats": 1.0, "drop": "a+b"}
    with pytest.raises(SystemExit, match="not a statistic"):
        mod.probe_columns({"tokens": 0, "drop": "sharpnes"})
    with pytest.raises(SystemExit, match="expected probe"):
        mod.parse_setting("hidden=3")
