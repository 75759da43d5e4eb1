"""Human prior, human calibration and the agreement metrics (eval/human_cv.py)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from test_model import _save_backbone, build, make_features, perturb_lora

from llmvqa.corpus.chains import Chain
from llmvqa.errors import DataError, ModelError
from llmvqa.evaluation.human import agreement, coverage, real_outranks, within_source
from llmvqa.features import VideoFeatures
from llmvqa.levels import level_of_score
from llmvqa.model import QualityLLM
from llmvqa.model.prior import DEFAULT_MARGIN, DEFAULT_OUTSIDE, PRIOR_OF_STREAM, HumanPrior, prior_input, prior_stats
from llmvqa.model.projectors import stats_vector
from llmvqa.prompts import aspect_query
from llmvqa.train.human import (
    HUMAN_ASPECTS,
    CalibrationConfig,
    RatedClip,
    calibrate,
    chain_pairs,
    cross_fitted,
    load_rated,
    prompt_folds,
)


@pytest.fixture(scope="session")
def gemma(tmp_path_factory) -> str:
    """A tiny random Gemma-3 backbone saved to disk (test_model's builder)."""
    return _save_backbone(tmp_path_factory.mktemp("gemma"), "gemma")


# ---------------------------------------------------------------------------- levels
@pytest.mark.parametrize("score,level", [(5.0, "excellent"), (4.2, "excellent"), (4.19, "good"), (3.63, "good"),
                                         (3.4, "good"), (3.39, "fair"), (2.6, "fair"), (2.59, "poor"),
                                         (1.8, "poor"), (1.79, "bad"), (1.0, "bad")])
def test_the_reported_level_is_the_equal_width_interval_of_the_score(score, level):
    assert level_of_score(score) == level


# ---------------------------------------------------------------------------- prior
def _linear_data(n=40, d=30, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    w = np.zeros((3, d))
    w[0, 0], w[1, 1], w[2, 2] = 0.8, -0.6, 0.5
    y = np.clip(3 + x @ w.T, 1, 5)
    return x, y


def test_the_prior_recovers_a_linear_relation_on_new_clips():
    x, y = _linear_data()
    prior = HumanPrior.fit(x[:30], y[:30], alpha=1.0)
    pred = prior.predict_inputs(x[30:])
    for k in range(3):
        assert np.corrcoef(pred[:, k], y[30:, k])[0, 1] > 0.9


def test_the_prior_round_trips_through_its_file(tmp_path):
    x, y = _linear_data()
    prior = HumanPrior.fit(x, y, alpha=3.0, info={"dataset": "demo"})
    prior.save(tmp_path)
    again = HumanPrior.load(tmp_path)
    assert again is not None and again.targets == prior.targets and again.info["dataset"] == "demo"
    np.testing.assert_allclose(again.predict_inputs(x), prior.predict_inputs(x))
    assert HumanPrior.load(tmp_path / "nothing") is None


def test_without_a_prompt_the_prior_leaves_the_alignment_slot_empty():
    feats = make_features()
    x = prior_input(feats)[None]
    rng = np.random.default_rng(0)
    prior = HumanPrior.fit(x + rng.normal(size=(6, x.shape[1])), rng.uniform(1, 5, size=(6, 3)))
    assert set(prior.stats(feats, {})) == {"prior_static", "prior_temporal"}
    assert set(prior.stats(feats, {"prompt_alignment": 0.2})) == {"prior_static", "prior_temporal", "prior_alignment"}


def test_the_prior_refuses_features_of_other_encoders():
    feats = make_features()
    x = prior_input(feats)[None]
    prior = HumanPrior.fit(np.repeat(x, 4, 0)[:, :-1] + np.arange(4)[:, None], np.full((4, 3), 3.0))
    with pytest.raises(ModelError, match="expects"):
        prior.predict(feats)


def test_cross_fitted_estimates_never_see_their_own_ratings():
    x, y = _linear_data(n=24)
    folds = prompt_folds([f"p{i // 3}" for i in range(24)], k=4)
    a = cross_fitted(x, y, folds, alpha=1.0)
    y2 = y.copy()
    y2[5] += 1.5  # another rating for clip 5 changes every other fold's estimates, not clip 5's own
    b = cross_fitted(x, y2, folds, alpha=1.0)
    np.testing.assert_allclose(a[5], b[5])
    assert not np.allclose(a[folds != folds[5]], b[folds != folds[5]])


def test_prompt_folds_keep_every_prompt_in_one_fold():
    prompts = [f"p{i % 7}" for i in range(28)]
    folds = prompt_folds(prompts, k=3, seed=1)
    assert set(folds.tolist()) == {0, 1, 2}
    for p in set(prompts):
        assert len({f for q, f in zip(prompts, folds, strict=True) if q == p}) == 1


def test_the_prior_enters_the_stats_token_of_each_stream():
    feats = make_features()
    plain = stats_vector("motion", feats.stats)
    with_prior = stats_vector("motion", feats.stats, prior_stats({"static": 5.0, "temporal": 2.0, "alignment": 4.0}))
    assert plain.shape == with_prior.shape
    assert plain[-2:].tolist() == [0.0, 0.0]
    assert with_prior[-2:].tolist() == [pytest.approx(-1.0), 1.0]  # temporal 2.0 → 2 − 3
    assert torch.equal(plain[:-2], with_prior[:-2])
    assert PRIOR_OF_STREAM["motion"] == "prior_temporal"


def test_a_closed_stats_gate_leaves_the_prior_as_the_only_statistic_the_token_reads():
    from llmvqa.model.projectors import StreamProjector

    torch.manual_seed(0)
    proj = StreamProjector("motion", 8, 16, "mlp", 2)
    with torch.no_grad():
        proj.prior_dir.normal_()
    x, lengths = torch.randn(1, 3, 8), torch.tensor([3])

    def token(seed, temporal):
        st = stats_vector("motion", make_features(seed).stats, prior_stats({"temporal": temporal}))[None]
        return proj(x, lengths, st)[0, -1]

    assert not torch.allclose(token(0, 3.5), token(1, 3.5))  # open: the raw statistics move the token
    with torch.no_grad():
        proj.stats_gate.fill_(0.0)
    assert torch.allclose(token(0, 3.5), token(1, 3.5))  # closed: only the prior's estimate does
    assert not torch.allclose(token(0, 3.5), token(0, 2.0))


def test_a_checkpoint_saved_before_the_prior_slots_loads_unchanged(gemma, tmp_path):
    from safetensors.torch import load_file, save_file

    model = build(gemma)
    feats = make_features(2)
    before = model.score(feats).score
    model.save_pretrained(tmp_path)
    state = load_file(str(tmp_path / "projectors.safetensors"))
    old = {k: (v[:, :-2].contiguous() if k.endswith("stats.0.weight") else v) for k, v in state.items()
           if not k.endswith(("prior_dir", "token_gate"))}
    save_file(old, str(tmp_path / "projectors.safetensors"))
    assert QualityLLM.from_pretrained(tmp_path).score(feats).score == pytest.approx(before, abs=1e-5)


# ---------------------------------------------------------------------------- agreement metrics
def test_real_outranks_counts_pairs_of_one_prompt_only():
    prompts = ["a", "a", "a", "b", "b"]
    sources = ["ground-truth", "gen1", "gen2", "ground-truth", "gen1"]
    pred = [3.0, 2.0, 4.0, 1.0, 1.0]  # a: real beats gen1, loses to gen2; b: a tie
    assert real_outranks(pred, prompts, sources) == pytest.approx((1 + 0 + 0.5) / 3)


def test_within_source_and_coverage_and_agreement():
    sources = ["g1"] * 4 + ["g2"] * 4
    human = [1, 2, 3, 4, 1, 2, 3, 4]
    pred = [1, 2, 3, 4, 4, 3, 2, 1]
    out = within_source(pred, human, sources)
    assert out["g1"] == pytest.approx(1.0) and out["g2"] == pytest.approx(-1.0)
    assert out["mean_generated"] == pytest.approx(0.0)
    assert coverage([3.0, 3.0, 3.0, 3.0], [3.1, 3.5, 2.2, 3.0], 0.5) == pytest.approx(0.75)
    ratings = [{"static": s, "temporal": 6 - s, "alignment": s} for s in (1, 2, 3, 4, 5)]
    rep = agreement({"technical": [1, 2, 3, 4, 5], "motion": [1, 2, 3, 4, 5]}, ratings)
    assert rep["technical~static"]["srcc"] == pytest.approx(1.0)
    assert rep["motion~temporal"]["srcc"] == pytest.approx(-1.0)
    assert "overall~static" not in rep


def test_load_rated_names_the_bad_row(tmp_path):
    (tmp_path / "clips").mkdir()
    (tmp_path / "labels.csv").write_text("name,model,prompt,static,temporal,alignment\nx.gif,m,p,3,oops,2\n")
    with pytest.raises(DataError, match="labels.csv:2"):
        load_rated(tmp_path)


# ---------------------------------------------------------------------------- calibration end to end
def _rated(tmp_path, n=12):
    """Clips whose features carry their rating (the semantic tokens' mean and the sharpness statistic)."""
    clips, feats = [], []
    for i in range(n):
        q = 1.0 + 4.0 * i / (n - 1)
        f = make_features(i)
        f = VideoFeatures(tokens={s: t + (q - 3.0) for s, t in f.tokens.items()}, stats=dict(f.stats))
        path = tmp_path / f"c{i}.gif"
        path.write_bytes(b"")
        clips.append(RatedClip(f"c{i}.gif", path, f"prompt {i // 2}", "gen" if i % 3 else "ground-truth",
                               {"static": q, "temporal": q, "alignment": 6 - q}))
        feats.append((f, {}))
    return clips, feats


def test_calibrate_writes_a_model_whose_scorer_reads_the_human_aspects(gemma, tmp_path):
    base = build(gemma, lora=True)
    perturb_lora(base)
    base.save_pretrained(tmp_path / "base")
    clips, feats = _rated(tmp_path)
    by_name = {c.name: f for c, f in zip(clips, feats, strict=True)}
    out = calibrate(tmp_path / "base", clips, lambda c: by_name[c.name], tmp_path / "out",
                    CalibrationConfig(steps=3, batch_size=4, inner_folds=3, read_extra_steps=0))
    for name in ("config.json", "projectors.safetensors", "prior.safetensors", "interval.json", "scorer/config.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / "scorer" / "config.json").read_text())["scorer_reads"] == list(HUMAN_ASPECTS)
    reading = json.loads((out / "calibration.json").read_text())["reading"]  # the scorer against the prior it reads
    assert reading["clips"] == len(clips) and 0 <= reading["mean_abs_error"] < 4
    assert abs(reading["mean_error"]) <= reading["mean_abs_error"] + 1e-9 and reading["extra_steps"] == 0
    model = QualityLLM.from_pretrained(out)
    main = QualityLLM.from_pretrained(tmp_path / "base")
    scorer = QualityLLM.from_pretrained(out / "scorer")
    main.prior = scorer.prior = model.prior  # the prior's estimates reach both adapters' stats tokens
    assert model.has_scorer and model.prior is not None and 0 < model.interval["half_width"] < 4
    f = feats[3][0]
    for aspect in [*HUMAN_ASPECTS, "dimension:sharpness"]:
        q, a = aspect_query(aspect, "a cat", model.cfg.prompt_version)
        got = model.score_queries(f, [(q, a)], prompt="a cat")[0].score
        who = scorer if aspect in HUMAN_ASPECTS else main
        want = who.score(f, "a cat", q, answer_prefix=a).score
        assert got == pytest.approx(want, abs=1e-4), aspect
    # the scorer reads the prior: a higher estimate in the slots gives a higher score (warm start + training)
    low, high = ({"prior_static": v, "prior_temporal": v, "prior_alignment": v} for v in (1.5, 4.5))
    own, model.prior = model.prior, None  # pass the estimates in by hand
    with model.scoring():
        assert model.score(f, prompt_stats=low).score < model.score(f, prompt_stats=high).score
    model.prior = own
    # one score per clip: explain's closing sentence states the level of the same score
    text, sc = model.explain(f, "a cat", max_new_tokens=4)
    assert sc.score == pytest.approx(model.score(f, "a cat").score, abs=1e-5)
    assert text.endswith(f"The overall quality of this video is {level_of_score(sc.score)}.")
    assert text.count("The overall quality of this video is") == 1


def test_reading_estimates_crowd_around_the_rated_clips_when_asked():
    from llmvqa.train.human import _read_estimates

    near = np.array([[3.8, 3.9, 3.2], [4.0, 4.1, 3.0]])
    rng = np.random.default_rng(0)
    close = np.stack([_read_estimates(CalibrationConfig(read_near=1.0, read_jitter=0.1), rng, near) for _ in range(400)])
    spread = np.stack([_read_estimates(CalibrationConfig(read_near=0.0), rng, near) for _ in range(400)])
    assert np.all(np.abs(close[:, 0] - 3.9) < 0.6) and close[:, 0].std() < 0.2
    assert spread.min() >= 1.3 and spread.max() <= 4.9 and spread[:, 0].std() > 0.8
    # without rated estimates (or clipped at the range) it stays in the reading range
    far = np.stack([_read_estimates(CalibrationConfig(read_near=1.0, read_jitter=2.0), rng, near + 1) for _ in range(200)])
    assert far.min() >= 1.3 and far.max() <= 4.9
    assert _read_estimates(CalibrationConfig(read_near=1.0), rng, None).shape == (3,)


def test_calibrate_with_chains_fits_a_ranked_prior_and_trains_chain_steps(gemma, tmp_path):
    base = build(gemma, lora=True)
    base.save_pretrained(tmp_path / "base")
    clips, feats = _rated(tmp_path)
    by_name = {c.name: f for c, f in zip(clips, feats, strict=True)}
    chains = [Chain(f"k{i}", "noise", "technical", "", (0.0, 0.5, 1.0), [make_features(20 + 3 * i + j) for j in range(3)])
              for i in range(3)]
    log = []
    out = calibrate(tmp_path / "base", clips, lambda c: by_name[c.name], tmp_path / "out",
                    CalibrationConfig(steps=3, batch_size=4, inner_folds=3, read_steps=1, read_extra_steps=2,
                                      read_check_srcc=1.01), log=log.append, chains=chains)
    prior = HumanPrior.load(out)
    assert prior.info["pairs"] == 9 and prior.info["chains"] == 3
    assert prior.info["outside"] == DEFAULT_OUTSIDE and prior.bounds is not None  # range hinges by default
    assert prior.info["margin"] == DEFAULT_MARGIN
    assert any("(chain)" in m for m in log)  # the last step of the cycle read, human, chain
    # a reading check no scorer can pass (SRCC > 1) gets the extra reading steps, no more
    assert json.loads((out / "calibration.json").read_text())["reading"]["extra_steps"] == 2
    assert any(m.endswith("2 extra reading steps") for m in log)
    assert not (out / "scorer" / "interval.json").exists() and (out / "interval.json").is_file()


# ---------------------------------------------------------------------------- rating protection at inference
def test_statistic_directions_flag_a_statistic_people_contradict():
    from llmvqa.evaluation.human import directions

    ratings = [{"static": s, "temporal": 3.0 + 0.1 * i, "alignment": 3.0} for i, s in enumerate([1, 2, 3, 4, 5, 4.5])]
    noise = [1.0, 2.0, 3.0, 4.0, 5.0, 4.4]  # rises with the static rating: "lower is better" is contradicted
    sharp = [5.0, 4.0, 3.0, 2.0, 1.0, 1.5]  # falls with it: against "higher is better"
    rows = {r["statistic"]: r for r in directions([{"noise": n, "sharpness": h} for n, h in zip(noise, sharp, strict=True)],
                                                  ratings)}
    assert rows["noise"]["static"] == pytest.approx(1.0) and rows["noise"]["verdict"] == "against"
    assert rows["sharpness"]["verdict"] == "against"
    assert rows["flicker"]["verdict"] == "—"  # not measured


def _conflict_data(seed=0):
    """Rated clips where feature 0 rises with both quality ratings, and chains whose degradation raises
    feature 0 further (plus features 1–3, which the rated clips do not vary with): the plain ridge reads
    the degradation as better, the ranking pairs must turn it."""
    rng = np.random.default_rng(seed)
    d = 12
    x = rng.normal(size=(40, d))
    y = np.clip(np.stack([3 + 0.8 * x[:, 0], 3 + 0.6 * x[:, 0], 3 + 0.7 * x[:, 4]], 1), 1, 5)
    push = np.zeros(d)
    push[:4] = [1.0, 1.5, 1.5, 1.5]

    def chains(n):
        base = rng.normal(size=(n, d))
        pair_x, margin = [], []
        for b in base:
            steps = [b + s * push for s in (0.0, 0.5, 1.0)]
            for i in range(3):
                for j in range(i + 1, 3):
                    pair_x.append(np.stack([steps[i], steps[j]]))
                    margin.append([0.5 * (j - i) / 2, 0.0, np.nan])
        return np.stack(pair_x), np.array(margin)

    return x, y, chains(30), chains(30)


def test_the_ranked_prior_orders_degradations_the_plain_ridge_reads_backwards():
    x, y, (px, pm), (tx, tm) = _conflict_data()
    plain = HumanPrior.fit(x, y, alpha=1.0)
    ranked = HumanPrior.fit_ranked(x, y, px, pm, alpha=1.0, weight=1.0)

    def ordered(prior):  # held-out pairs whose worse clip gets the lower static estimate
        better, worse = prior.predict_inputs(tx[:, 0]), prior.predict_inputs(tx[:, 1])
        return float(np.mean(worse[:, 0] < better[:, 0]))

    assert ordered(plain) < 0.1 and ordered(ranked) > 0.9
    assert ranked.info["pairs"] == len(px) and ranked.info["active_pairs"][2] == 0
    # the target no pair constrains (alignment) is the plain ridge exactly; the rated clips still rank right
    np.testing.assert_allclose(ranked.predict_inputs(x)[:, 2], plain.predict_inputs(x)[:, 2], atol=1e-9)
    assert np.corrcoef(ranked.predict_inputs(x)[:, 0], y[:, 0])[0, 1] > 0.5
    with pytest.raises(ValueError, match="pair margins"):
        HumanPrior.fit_ranked(x, y, px, pm[:, :2])


def test_range_hinges_let_chains_rank_what_people_rate_the_other_way(tmp_path):
    """People rate grain up inside the range they saw; a degradation pushes the grain statistic far past it.
    Without hinges the pairs must bend the linear fit people set; with them the hinge past the range takes the
    pairs, and the rated clips keep the plain ridge's fit."""
    from llmvqa.model.prior import OUTSIDE_POSITIONS, STAT_INPUTS, outside_inputs

    rng = np.random.default_rng(0)
    tok, grain = 4, 4 + OUTSIDE_POSITIONS[1]
    d = tok + STAT_INPUTS
    x = rng.normal(size=(50, d)) * 0.5
    y = np.clip(np.stack([3 + 0.6 * x[:, grain] + 0.5 * x[:, 0], 3 + 0.5 * x[:, 0], 3 + 0.4 * x[:, 1]], 1), 1, 5)

    def chains(n):
        pair_x, margin = [], []
        for b in rng.normal(size=(n, d)) * 0.5:
            steps = [b.copy() for _ in range(3)]
            for s, st in zip((0.0, 2.0, 4.0), steps, strict=True):
                st[grain] = max(b[grain], 1.5) + s  # past every rated clip's grain from the first step
            for i in range(3):
                for j in range(i + 1, 3):
                    pair_x.append(np.stack([steps[i], steps[j]]))
                    margin.append([0.25 * (j - i), 0.0, np.nan])
        return np.stack(pair_x), np.array(margin)

    (px, pm), (tx, _) = chains(40), chains(40)
    plain = HumanPrior.fit(x, y, alpha=1.0)
    linear = HumanPrior.fit_ranked(x, y, px, pm, alpha=1.0, weight=1.0)
    hinged = HumanPrior.fit_ranked(x, y, px, pm, alpha=1.0, weight=1.0, outside=0.0)

    def ordered(prior):
        return float(np.mean(prior.predict_inputs(tx[:, 1])[:, 0] < prior.predict_inputs(tx[:, 0])[:, 0]))

    def fit_error(prior):  # how far the rated clips' static estimates moved from the plain ridge's
        return float(np.abs(prior.predict_inputs(x)[:, 0] - plain.predict_inputs(x)[:, 0]).mean())

    def grain_slope(prior):  # static estimate per unit of grain inside the rated range
        return float(prior.weights[0, grain] / prior.scale[grain])

    assert ordered(plain) < 0.1 and ordered(linear) > 0.9 and ordered(hinged) > 0.9
    assert grain_slope(plain) > 0.3 and grain_slope(hinged) > 0.1 > 0 > grain_slope(linear)  # people's sign kept
    assert fit_error(hinged) < 0.6 * fit_error(linear)
    assert hinged.bounds.shape == (2, len(OUTSIDE_POSITIONS)) and hinged.info["outside"] == 0.0
    assert not outside_inputs(x, hinged.bounds)[:, d:].any()  # zero on every rated clip
    hinged.save(tmp_path)
    again = HumanPrior.load(tmp_path)
    np.testing.assert_allclose(again.predict_inputs(tx[:, 1]), hinged.predict_inputs(tx[:, 1]))
    with pytest.raises(ValueError, match="outside"):
        HumanPrior.fit_ranked(x, y, px, pm, outside=0.5)


def test_chain_pairs_ask_the_hurt_rating_to_drop_and_the_other_not_to_rise():
    feats = [make_features(i) for i in range(4)]
    chain = Chain("c", "blur", "technical", "", (0.0, 0.35, 0.7, 1.0), feats)
    pair_x, margin = chain_pairs([chain, dataclasses.replace(chain, group="motion", degradation="jitter")], 2.0)
    assert pair_x.shape == (12, 2, len(prior_input(feats[0]))) and margin.shape == (12, 3)
    np.testing.assert_allclose(pair_x[0, 0], prior_input(feats[0]))  # (weaker, stronger)
    np.testing.assert_allclose(pair_x[0, 1], prior_input(feats[1]))
    assert margin[0].tolist()[:2] == pytest.approx([0.7, 0.0]) and np.isnan(margin[0, 2])
    assert margin[2, 0] == pytest.approx(2.0) and margin[6 + 2].tolist()[:2] == pytest.approx([0.0, 2.0])


def test_a_degradation_that_did_not_change_the_clip_is_left_out_of_pairs_and_checks():
    from llmvqa.corpus.chains import changes, ranked_chains
    from llmvqa.evaluation.human import chain_order

    feats = [make_features(i) for i in range(4)]
    changed = Chain("c", "blur", "technical", "", (0.0, 0.35, 0.7, 1.0), feats)
    gray = Chain("g", "desaturate", "technical", "", (0.0, 0.35, 0.7, 1.0), [make_features(9)] * 4)  # grayscale source
    assert changes(changed) and not changes(gray)
    assert ranked_chains([gray, changed, gray]) == [changed]
    assert chain_pairs([changed, gray], 1.0)[0].shape[0] == 6  # the gray chain adds none
    prior = HumanPrior(np.zeros(len(prior_input(feats[0]))), np.ones(len(prior_input(feats[0]))),
                       np.zeros((3, len(prior_input(feats[0])))), np.full(3, 3.0))
    assert chain_order(prior, [gray])[0] != chain_order(prior, [gray])[0]  # no pairs at all: nan
    assert set(chain_order(prior, [changed, gray])[1]) == {"blur"}


def test_heldout_interval_is_a_quantile_of_held_out_errors_checked_fold_by_fold():
    from llmvqa.evaluation.human import heldout_interval

    rng = np.random.default_rng(0)
    human = rng.uniform(1, 5, 600)
    pred = human + rng.normal(0, 0.5, 600)
    folds = np.arange(600) % 6
    iv = heldout_interval(pred, human, folds, rate=0.8)
    assert iv["half_width"] == pytest.approx(0.5 * 1.2816, rel=0.1)  # the 80% quantile of |N(0, 0.5)|
    assert 0.75 <= iv["expected_coverage"] <= 0.85 and iv["folds"] == 6
    # a fold whose errors are far larger than the others' is not covered by their quantile
    pred[folds == 0] = human[folds == 0] + 3.0
    assert heldout_interval(pred, human, folds)["expected_coverage"] <= 5 / 6 + 1e-9


def test_the_scorer_answers_prompt_alignment_however_it_is_named_in_its_own_wording(gemma, tmp_path):
    """HUMAN_ASPECTS names dimensions by key ("prompt_alignment"), the assessor by name ("prompt alignment"): the
    calibrated scorer answers both, asked in the wording it was calibrated on (it once fell to the main adapter)."""
    from llmvqa.dimensions import load_dimensions
    from llmvqa.prompts import aspect_forms

    name = load_dimensions("v1").dimensions["prompt_alignment"].name
    assert set(aspect_forms("dimension:prompt_alignment")) == {"dimension:prompt_alignment", f"dimension:{name}"}
    base = build(gemma, lora=True)
    perturb_lora(base)
    base.save_pretrained(tmp_path / "m")
    base.save_pretrained(tmp_path / "m" / "scorer")
    perturb_lora(base)  # a scorer that differs from the main adapter
    base.save_pretrained(tmp_path / "m" / "scorer")
    cfg = json.loads((tmp_path / "m" / "scorer" / "config.json").read_text())
    (tmp_path / "m" / "scorer" / "config.json").write_text(json.dumps({**cfg, "scorer_reads": list(HUMAN_ASPECTS)}))
    model = QualityLLM.from_pretrained(tmp_path / "m")
    f = make_features()
    by_name = aspect_query(f"dimension:{name}", "a cat")
    by_key = aspect_query("dimension:prompt_alignment", "a cat")
    assert by_name != by_key and model.reads_by_scorer(by_name[1]) and model.reads_by_scorer(by_key[1])
    asked = model.score_queries(f, [by_name], prompt="a cat")[0].score
    with model.scoring():  # what the scorer says to the question in its own (key) wording
        own = model.score_batch([f], ["a cat"], None, *by_key)[0].score
    assert asked == pytest.approx(own, abs=1e-5)
    assert model.score(f, "a cat", by_name[0], answer_prefix=by_name[1]).score == pytest.approx(own, abs=1e-5)


def test_the_shipped_model_was_calibrated_with_the_default_recipe():
    """`llmvqa calibrate` with no options reproduces the shipped scorer's recipe: a change of a
    CalibrationConfig default without a new release (or the reverse) fails here."""
    from llmvqa.assessor import DEFAULT_MODEL_DIR

    record = json.loads((DEFAULT_MODEL_DIR / "calibration.json").read_text())
    defaults = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(CalibrationConfig()).items()}
    assert record["settings"] == defaults
    prior = HumanPrior.load(DEFAULT_MODEL_DIR)
    assert prior.info["margin"] == DEFAULT_MARGIN and prior.info["outside"] == DEFAULT_OUTSIDE


def test_per_pair_weights_weigh_each_pair_and_a_zero_weight_drops_it():
    x, y, (px, pm), _ = _conflict_data()
    same = HumanPrior.fit_ranked(x, y, px, pm, alpha=1.0, weight=2.0)
    per_pair = HumanPrior.fit_ranked(x, y, px, pm, alpha=1.0, weight=np.full(len(px), 2.0))
    np.testing.assert_allclose(per_pair.weights, same.weights, atol=1e-9)
    assert per_pair.info["pair_weight"] == 2.0
    half = len(px) // 2
    w = np.r_[np.full(half, 2.0), np.zeros(len(px) - half)]
    dropped = HumanPrior.fit_ranked(x, y, px, pm, alpha=1.0, weight=w)
    free = pm.copy()
    free[half:] = np.nan  # the same pairs (the same standardization), the second half constraining nothing
    np.testing.assert_allclose(dropped.weights, HumanPrior.fit_ranked(x, y, px, free, alpha=1.0, weight=2.0).weights,
                               atol=1e-8)
    assert dropped.info["pair_weight"] == [0.0, 2.0]
    assert not np.allclose(dropped.weights[0], same.weights[0])
    with pytest.raises(ValueError, match="pair weights"):
        HumanPrior.fit_ranked(x, y, px, pm, weight=np.ones(3))


def test_source_pairs_rank_each_degraded_clip_below_the_clean_clips_of_its_own_source():
    from llmvqa.train.human_data import source_pairs

    def rec(source, *degradations, twin=None):
        return {"source": source, "twin_of": twin, "degradations": [{"name": n, "strength": s} for n, s in degradations]}

    x = {k: np.full(4, float(i)) for i, k in enumerate("abcdefgh")}
    rows = [(rec("A"), x["a"]), (rec("A"), x["b"]),  # two clean clips of source A
            (rec("A", ("blur", 1.0)), x["c"]),  # technical: static must drop, temporal must not rise
            (rec("A", ("jitter", 0.5), ("noise", 0.5)), x["d"]),  # both ratings
            (rec("A", ("wrong_prompt", 1.0)), x["e"]),  # hurts neither quality rating: no pair
            (rec("A", twin="a"), x["f"]),  # an undegraded twin is not a clean reference
            (rec("B", ("blur", 1.0)), x["g"])]  # source B has no clean clip: no pair
    px, pm = source_pairs(rows, 0.5)
    assert px.shape == (4, 2, 4) and pm.shape == (4, 3)
    assert {float(p[0, 0]) for p in px} == {0.0, 1.0} and sorted({float(p[1, 0]) for p in px}) == [2.0, 3.0]
    blur = pm[px[:, 1, 0] == 2.0][0]
    assert blur[0] == pytest.approx(0.5 * 0.95) and blur[1] == 0.0 and np.isnan(blur[2])
    both = pm[px[:, 1, 0] == 3.0][0]
    assert both[0] == pytest.approx(0.5 * 0.5 * 0.9) and both[1] == pytest.approx(0.5 * 0.5 * 0.85)
    with pytest.raises(ValueError, match="no source"):
        source_pairs(rows[-1:], 0.5)
