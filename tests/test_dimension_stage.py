"""The dimension stage (llmvqa.train.dimension_stage): class-balanced draws, training, what it leaves alone."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from test_model import _save_backbone, build, make_features, perturb_lora

from llmvqa.levels import level_of_score
from llmvqa.model import QualityLLM
from llmvqa.model.dimension_probe import estimate_of
from llmvqa.prompts import aspect_query
from llmvqa.statistics import STATISTICS
from llmvqa.train.dimension_stage import (
    DimensionItem,
    DimensionStageConfig,
    answer_margins,
    balanced_draws,
    level_margin,
    load_synth_items,
    refit_probe,
    select_dimensions,
    tune_dimensions,
)


def test_balanced_draws_give_every_level_of_a_dimension_the_same_share():
    items = [DimensionItem(Path(f"v{i}.mp4"), None, {"noise": 5.0 if i < 95 else (3.0 if i < 99 else 1.0)})
             for i in range(100)]  # 95% excellent, 4% fair, 1% bad: as the corpus' dimensions are
    draws = balanced_draws(items, ["noise"], 3000, np.random.default_rng(0))
    share = Counter(level_of_score(items[i].targets["noise"]) for i, _ in draws)
    assert set(share) == {"excellent", "fair", "bad"}
    assert all(abs(n / 3000 - 1 / 3) < 0.04 for n in share.values())


def test_synth_items_carry_dimension_targets_on_1_to_5(tmp_path):
    rec = {"video": "videos/a.mp4", "prompt": "a cat", "split": "train", "scores": {"noise": 0.25, "overall": 0.5}}
    (tmp_path / "manifest.jsonl").write_text(json.dumps(rec) + "\n" + json.dumps({**rec, "split": "test"}) + "\n")
    (item,) = load_synth_items(tmp_path / "manifest.jsonl", "train")
    assert item.targets == {"noise": 2.0} and item.prompt == "a cat" and item.path == tmp_path / "videos/a.mp4"


def _sharpness_items(n: int) -> tuple[list[DimensionItem], dict]:
    """Clips whose clarity target follows their sharpness statistic: sharp → excellent, blurred → poor (few)."""
    lo, hi = next(s.typical for s in STATISTICS if s.name == "sharpness")
    items, feats = [], {}
    for i in range(n):
        f = make_features(i)
        blurred = i % 4 == 0
        f = dataclasses.replace(f, stats={**f.stats, "sharpness": lo if blurred else hi})
        item = DimensionItem(Path(f"v{i}.mp4"), None, {"sharpness": 2.0 if blurred else 5.0})
        items.append(item)
        feats[item.path] = (f, {})
    return items, feats


def test_the_stage_teaches_a_rare_level_and_keeps_the_rest_of_the_model(tmp_path):
    gemma = _save_backbone(tmp_path / "gemma", "gemma")
    base = build(gemma, lora=True)
    perturb_lora(base)
    base.save_pretrained(tmp_path / "base")
    (tmp_path / "base" / "interval.json").write_text(json.dumps({"coverage": 0.8, "half_width": 0.7}))
    items, feats = _sharpness_items(16)
    q = aspect_query("dimension:clarity", None, "v1")

    def clarity(model, item):
        return model.score_queries(feats[item.path][0], [q])[0].score

    before = QualityLLM.from_pretrained(tmp_path / "base")
    out = tune_dimensions(tmp_path / "base", items, lambda it: feats[it.path], tmp_path / "out",
                          DimensionStageConfig(steps=60, batch_size=8, lr=3e-2, prior_lr=3e-2, lora_lr=1e-2, folds=4, probe_balance=1.0, probe_kind="linear",
                                               read_steps=2, data_steps=1, read_estimates=0.0, no_prompt_share=0.0,
                                               dimensions=("sharpness",)))
    after = QualityLLM.from_pretrained(out)
    scores = {name: {t: [clarity(m, it) for it in items if it.targets["sharpness"] == t] for t in (2.0, 5.0)}
              for name, m in (("before", before), ("after", after))}
    gap = {name: np.mean(s[5.0]) - np.mean(s[2.0]) for name, s in scores.items()}
    # the tiny random model's logits are small (its head is random), so the gap is tenths, not levels; what it
    # learned is the order: every blurred clip (the rare level) below every sharp one, which it did not know before
    assert abs(gap["before"]) < 0.02 and gap["after"] > gap["before"] + 0.04
    assert max(scores["after"][2.0]) < min(scores["after"][5.0])
    assert after.dimension_probe is not None and after.dimension_probe.dimensions == ("sharpness",)
    est = [after.dimension_probe.estimates(*feats[it.path])["sharpness"] for it in items]
    assert all(e < 2.6 for e, it in zip(est, items, strict=True) if it.targets["sharpness"] == 2.0)  # the probe tells them apart
    assert all(e >= 4.2 for e, it in zip(est, items, strict=True) if it.targets["sharpness"] == 5.0)
    assert json.loads((out / "interval.json").read_text())["half_width"] == 0.7  # the model's own files, as they were
    assert (out / "config.json").read_text() == (tmp_path / "base" / "config.json").read_text()
    assert json.loads((out / "dimension_stage.json").read_text())["dimensions"] == ["sharpness"]

    # selection on held-out clips: a dimension is kept when its answers beat the majority level by the margin
    margin = answer_margins(after, items, lambda it: feats[it.path], ["sharpness"])["sharpness"]["margin"]
    assert select_dimensions(out, items, lambda it: feats[it.path], min_margin=margin - 0.01) == ["sharpness"]
    kept = QualityLLM.from_pretrained(out).dimension_probe
    assert [kept.estimates(*feats[it.path])["sharpness"] for it in items] == pytest.approx(est)  # kept as it was
    assert select_dimensions(out, items, lambda it: feats[it.path], min_margin=margin + 0.01) == []
    dropped = QualityLLM.from_pretrained(out).dimension_probe
    base = {dropped.estimates(*feats[it.path])["sharpness"] for it in items}
    assert len(base) == 1 and base.pop() >= 4.2  # the base rate: 3 in 4 clips are sharp, so every clip reads excellent
    state = json.loads((out / "dimension_stage.json").read_text())["selection"]
    assert state["kept"] == [] and state["margins"]["sharpness"] == pytest.approx(margin, abs=1e-4)

    # the probe fitted again (--probe-only): the base rate the selection set is gone with the old probe, the
    # selection made on it is set aside (select again), and the refit's settings are recorded
    refit_probe(out, items, lambda it: feats[it.path], DimensionStageConfig(folds=4, probe_kind="linear",
                                                                            probe_balance=1.0, probe_offsets=True))
    record = json.loads((out / "dimension_stage.json").read_text())
    assert "selection" not in record and record["selection_before_refit"]["kept"] == []
    assert record["probe_refit"]["offsets"] is True and record["probe_refit"]["balance"] == 1.0
    again = QualityLLM.from_pretrained(out).dimension_probe
    assert "base_rate_only" not in again.info and set(again.offsets) == {"sharpness"}
    assert len({round(again.estimates(*feats[it.path])["sharpness"], 6) for it in items}) > 1


def test_dimensions_the_scorer_reads_are_not_trained(tmp_path):
    gemma = _save_backbone(tmp_path / "gemma", "gemma")
    base = build(gemma, lora=True)
    base.save_pretrained(tmp_path / "base")
    base.save_pretrained(tmp_path / "base" / "scorer")
    cfg = json.loads((tmp_path / "base" / "scorer" / "config.json").read_text())
    cfg["scorer_reads"] = ["overall", "dimension:clarity"]
    (tmp_path / "base" / "scorer" / "config.json").write_text(json.dumps(cfg))
    items, feats = _sharpness_items(8)
    with pytest.raises(Exception, match="no dimension"):
        tune_dimensions(tmp_path / "base", items, lambda it: feats[it.path], tmp_path / "out",
                        DimensionStageConfig(steps=1, dimensions=("sharpness",)))


def test_reading_steps_also_ask_without_the_prompt(tmp_path, monkeypatch):
    """no_prompt_share: some reading steps drop the clip's text prompt (question clause and prompt statistics),
    as `rate` asks when given none."""
    import llmvqa.train.human as human

    gemma = _save_backbone(tmp_path / "gemma", "gemma")
    build(gemma, lora=True).save_pretrained(tmp_path / "base")
    items, feats = _sharpness_items(16)
    items = [dataclasses.replace(it, prompt="a sharp photo of a street") for it in items]
    asked, original = [], human._example

    def spy(model, aspect, features, stats, prompt, version):
        asked.append(prompt)
        return original(model, aspect, features, stats, prompt, version)

    monkeypatch.setattr(human, "_example", spy)
    tune_dimensions(tmp_path / "base", items, lambda it: feats[it.path], tmp_path / "out",
                    DimensionStageConfig(steps=4, batch_size=8, folds=4, no_prompt_share=0.5, dimensions=("sharpness",)))
    assert None in asked and "a sharp photo of a street" in asked


def test_the_default_probe_is_trees_over_statistics_and_a_token_summary():
    from llmvqa.train.dimension_stage import _fit_probe

    items, feats = _sharpness_items(16)
    levels = {"sharpness": [level_of_score(it.targets["sharpness"]) for it in items]}
    probe, x = _fit_probe([feats[it.path] for it in items], levels, DimensionStageConfig(), len(items))
    assert probe.info["kind"] == "trees" and probe.basis is not None
    assert x.shape[1] == probe.mean.shape[0] and probe.basis.components.shape[0] == min(16, DimensionStageConfig().probe_tokens)
    est = [probe.estimates(*feats[it.path])["sharpness"] for it in items]
    assert all((e < 2.6) == (it.targets["sharpness"] == 2.0) for e, it in zip(est, items, strict=True))


def test_probed_dimension_questions_share_the_start_and_match_one_forward_each(tmp_path):
    """score_queries runs the dimension questions with probe estimates on one cached start (up to the first
    statistics token that differs): the same numbers as asking each question alone."""
    from llmvqa.model.dimension_probe import DimensionProbe

    model = build(_save_backbone(tmp_path / "gemma", "gemma"), lora=True)
    perturb_lora(model)
    items, feats = _sharpness_items(24)
    rng = np.random.default_rng(0)
    pairs = [feats[it.path] for it in items]
    levels = {"sharpness": ["poor" if it.targets["sharpness"] == 2.0 else "excellent" for it in items],
              "flicker": [("excellent", "fair", "bad")[int(rng.integers(3))] for _ in items]}
    model.dimension_probe = DimensionProbe.fit(DimensionProbe.input_matrix(pairs), levels, kind="linear")
    model._probe_slots = None
    f = pairs[0][0]
    queries = [aspect_query(a, "a cat", "v1") for a in ("dimension:clarity", "dimension:flicker", "overall",
                                                         "dimension:noise")]
    fast = model.score_queries(f, queries, prompt="a cat", prompt_stats={"prompt_alignment": 0.3})
    for (q, a), got in zip(queries, fast, strict=True):
        ref = model.score(f, prompt="a cat", question=q, prompt_stats={"prompt_alignment": 0.3}, answer_prefix=a)
        np.testing.assert_allclose(list(got.distribution.values()), list(ref.distribution.values()), atol=1e-5)
    assert model.probe_slot(queries[0][1]) and model.probe_slot(queries[1][1]) and not model.probe_slot(queries[3][1])


def test_the_shipped_dimension_stage_used_the_default_settings():
    """`llmvqa tune-dimensions` with no options reproduces the shipped dimension stage: its recorded settings are
    DimensionStageConfig()'s and its probe was fitted with the default kind and class balance, so changing a
    default without a new release (or the reverse) fails here."""
    from llmvqa.assessor import DEFAULT_MODEL_DIR
    from llmvqa.model.dimension_probe import TREE_BALANCE, DimensionProbe

    record = json.loads((DEFAULT_MODEL_DIR / "dimension_stage.json").read_text())
    defaults = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(DimensionStageConfig()).items()}
    assert set(record["settings"]) <= set(defaults)
    assert record["settings"] == {k: defaults[k] for k in record["settings"]}  # a setting added since: its default
    probe = DimensionProbe.load(DEFAULT_MODEL_DIR)
    assert probe.info["kind"] == DimensionStageConfig().probe_kind == "trees"
    refit = record.get("probe_refit")
    if refit is None:
        assert probe.info["balance"] == TREE_BALANCE
    else:  # the probe was fitted again after the stage (--probe-only): train.sh step 6 does it with these settings
        assert probe.info["balance"] == refit["balance"]
        assert refit["offsets"] == bool(probe.offsets)
        assert refit["offsets_min_recall"] == DimensionStageConfig().offsets_min_recall
        recipe = (Path(__file__).resolve().parents[1] / "train.sh").read_text()
        assert f"--probe-only --probe-balance {refit['balance']}" + (" --probe-offsets" if refit["offsets"] else "") in recipe
    assert sorted(probe.info.get("base_rate_only", [])) == sorted(set(probe.dimensions) - set(record["selection"]["kept"]))
    centred = record.get("reading_centres")
    if centred is None:
        assert probe.reading_centres == {}
    else:  # the slot values centred after the selection (--reading-centres): train.sh step 6 does it
        assert probe.reading_centres == {d: centred["measured"][d] for d in centred["kept"]}
        for d in centred["kept"]:  # a gain one way, no loss the other
            gains = [centred[k][d][1] - centred[k][d][0] for k in ("margins", "margins_no_prompt")]
            assert max(gains) > 0 and min(gains) >= 0
        assert "--reading-centres" in (Path(__file__).resolve().parents[1] / "train.sh").read_text()


def test_probe_masks_give_each_input_set_its_columns():
    from llmvqa.model.prior import STAT_INPUTS
    from llmvqa.model.probe_trees import TokenBasis
    from llmvqa.statistics import PROMPT_STATS
    from llmvqa.train.dimension_stage import probe_masks

    extra = ["highlight_cast", "channel_balance"]
    basis = TokenBasis(np.zeros(6), np.eye(3, 6))
    width = STAT_INPUTS + len(extra) + 3
    masks = probe_masks(width, basis, extra, {"color": "stream", "noise": "all", "flicker": "stream"})
    cols = [st.name for st in STATISTICS for _ in range(2 if st.name in PROMPT_STATS else 1)] + extra + ["t"] * 3
    read = {d: {c for c, m in zip(cols, mask, strict=True) if m} for d, mask in masks.items()}
    technical = {st.name for st in STATISTICS if st.stream == "technical"}
    assert read["color"] == technical | set(extra)  # its stream's statistics and the colour statistics, no tokens
    assert read["noise"] == set(cols) - set(extra)  # everything but statistics given to another dimension
    assert read["flicker"] == {st.name for st in STATISTICS if st.stream == "motion"}
    with pytest.raises(ValueError, match="does not match"):
        probe_masks(width + 1, basis, extra, {"color": "all"})


def test_cv_inputs_pick_the_set_that_tells_a_dimension_apart_and_record_why():
    """A dimension whose levels follow its own stream's statistic, buried under noisy token coordinates: the
    source-grouped cross-fitting on the training clips chooses per dimension and records both margins."""
    from llmvqa.model.dimension_probe import DimensionProbe
    from llmvqa.train.dimension_stage import _fit_probe

    rng = np.random.default_rng(0)
    lo, hi = next(s.typical for s in STATISTICS if s.name == "sharpness")
    feats, levels, sources = [], [], []
    for i in range(240):
        f = make_features(i)
        blurred = i % 3 == 0
        sharp = (lo + 0.3 * (hi - lo) if blurred else hi - 0.3 * (hi - lo)) + rng.normal(0, 0.05 * (hi - lo))
        feats.append((dataclasses.replace(f, stats={**f.stats, "sharpness": sharp}), {}))
        levels.append("poor" if blurred else "excellent")
        sources.append(f"s{i % 12}")
    cfg = DimensionStageConfig(probe_tokens=8, folds=3, probe_inputs="cv")
    probe, x = _fit_probe(feats, {"sharpness": levels}, cfg, len(feats), sources)
    margins = probe.info["inputs_cv"]["sharpness"]
    assert set(margins) == {"all", "stream"} and probe.info["inputs"]["sharpness"] == max(margins, key=margins.get)
    assert max(margins.values()) > 0.4  # the statistic tells the two levels apart from held-out sources
    fixed, _ = _fit_probe(feats, {"sharpness": levels}, dataclasses.replace(cfg, probe_inputs="stream"), len(feats))
    assert fixed.info["inputs"] == {"sharpness": "stream"} and "inputs_cv" not in fixed.info
    assert isinstance(fixed, DimensionProbe)
    with pytest.raises(ValueError, match="probe_inputs"):
        DimensionStageConfig(probe_inputs="tokens")


def test_level_offsets_find_the_rare_level_a_fit_leaves_under_the_common_one():
    """Probabilities that rank the rare level right but never let it win: the offsets move its threshold so
    balanced accuracy rises, while the floor on the majority level's recall holds."""
    from llmvqa.train.dimension_stage import _offset_probs, tune_level_offsets

    rng = np.random.default_rng(0)
    n = 400
    rare = rng.random(n) < 0.1
    reference = ["poor" if r else "excellent" for r in rare]
    p_poor = np.clip(np.where(rare, 0.35, 0.12) + rng.normal(0, 0.06, n), 0.01, 0.49)
    probs = np.zeros((n, 5))
    probs[:, 3], probs[:, 0] = p_poor, 1 - p_poor  # argmax: always excellent
    before = level_margin(estimate_of(probs), reference)
    assert before == pytest.approx(0.0)
    for floor in (0.9, 0.97):
        off = tune_level_offsets(probs, reference, min_recall=floor)
        assert off[1] == off[2] == off[4] == 0.0  # levels the reference lacks are left alone
        est = estimate_of(_offset_probs(probs, off))
        kept = np.mean([level_of_score(e) == "excellent" for e, r in zip(est, rare, strict=True) if not r])
        assert kept >= floor
        assert level_margin(est, reference) > 0.3
    assert tune_level_offsets(probs, ["excellent"] * n) == [0.0] * 5


def test_probe_offsets_move_the_levels_keep_the_fit_and_survive_saving(tmp_path):
    from llmvqa.model.dimension_probe import DimensionProbe
    from llmvqa.train.dimension_stage import _fit_probe

    items, feats = _sharpness_items(160)
    pairs = [feats[it.path] for it in items]
    levels = {"sharpness": [level_of_score(it.targets["sharpness"]) for it in items]}
    sources = [f"s{i // 20}" for i in range(len(items))]
    cfg = DimensionStageConfig(probe_tokens=4, folds=4)
    plain, x = _fit_probe(pairs, levels, cfg, len(items), sources)
    moved, _ = _fit_probe(pairs, levels, dataclasses.replace(cfg, probe_offsets=True), len(items), sources)
    assert plain.offsets == {} and set(moved.offsets) == {"sharpness"} and len(moved.offsets["sharpness"]) == 5
    shift = np.asarray(moved.offsets["sharpness"])
    q = plain.probs_inputs(x)[:, 0] * np.exp(shift)[None]  # the same fit, its level logits moved by the offsets
    assert np.allclose(moved.probs_inputs(x)[:, 0], q / q.sum(-1, keepdims=True))
    moved.save(tmp_path)
    back = DimensionProbe.load(tmp_path)
    assert back.offsets == moved.offsets
    assert np.allclose(back.probs_inputs(x), moved.probs_inputs(x))
    assert np.allclose(back.with_offsets({"sharpness": [0.0] * 5}).probs_inputs(x), moved.probs_inputs(x))
    with pytest.raises(ValueError, match="does not have"):
        moved.with_offsets({"noise": [0.0] * 5})
    with pytest.raises(ValueError, match="offsets"):
        DimensionStageConfig(offsets_min_recall=1.5)


def _probed_model(tmp_path, n: int = 24):
    """A tiny model with a linear sharpness probe, saved; its items and features."""
    from llmvqa.model.dimension_probe import DimensionProbe

    model = build(_save_backbone(tmp_path / "gemma", "gemma"), lora=True)
    perturb_lora(model)
    items, feats = _sharpness_items(n)
    levels = {"sharpness": [level_of_score(it.targets["sharpness"]) for it in items]}
    model.dimension_probe = DimensionProbe.fit(DimensionProbe.input_matrix([feats[it.path] for it in items]), levels,
                                               kind="linear", balance=1.0)
    model._probe_slots = None
    model.save_pretrained(tmp_path / "model")
    return model, items, feats


def test_reading_centres_move_what_the_model_is_given_not_the_probe_level(tmp_path):
    from llmvqa.levels import LEVELS, WEIGHTS
    from llmvqa.model.dimension_probe import DimensionProbe

    model, items, feats = _probed_model(tmp_path)
    probe = model.dimension_probe
    centres = [4.6, 3.5, 3.0, 2.4, 1.0]
    moved = probe.with_reading_centres({"sharpness": centres})
    prefix = aspect_query("dimension:clarity", None, "v1")[1]
    seen = set()
    for it in items:
        f, ps = feats[it.path]
        own, slot = probe.estimates(f, ps)["sharpness"], moved.slot_values(f, ps)["sharpness"]
        assert moved.estimates(f, ps)["sharpness"] == own == probe.slot_values(f, ps)["sharpness"]
        k = LEVELS.index(level_of_score(own))
        assert slot == pytest.approx(own - WEIGHTS[k] + centres[k])  # the same offset from its level's centre
        seen.add(k)
        model.dimension_probe = moved
        assert model.query_stats(f, ps, prefix)[model.probe_slot(prefix)[1]] == pytest.approx(slot)  # what the model reads
        model.dimension_probe = probe
    assert len(seen) == 2  # sharp clips (excellent) and blurred ones (poor) both moved
    (tmp_path / "saved").mkdir()
    moved.save(tmp_path / "saved")
    back = DimensionProbe.load(tmp_path / "saved")
    assert back.reading_centres == {"sharpness": centres} and back.with_reading_centres({}).reading_centres == {}
    with pytest.raises(ValueError, match="does not have"):
        probe.with_reading_centres({"noise": centres})
    with pytest.raises(ValueError, match="1–5"):
        probe.with_reading_centres({"sharpness": [5.5, 4, 3, 2, 1]})


def test_centres_move_each_level_against_its_bias_within_limits():
    from llmvqa.train.dimension_stage import centres_from_bias

    bias = {"excellent": [-1.2] * 9, "good": [0.3, 0.5] * 5, "fair": [0.5] * 3, "poor": [], "bad": [0.2] * 8}
    # excellent: +0.8 at most, then 5 at most; good: 0.4 down; fair: too few clips; bad: 0.2 down, then 1 at least
    assert centres_from_bias(bias) == pytest.approx([5.0, 3.6, 3.0, 2.0, 1.0])
    assert centres_from_bias(bias, min_clips=3, max_move=0.3) == pytest.approx([5.0, 3.7, 2.7, 2.0, 1.0])


def test_reading_centres_are_kept_only_where_the_held_out_answers_gain(tmp_path):
    from llmvqa.model.dimension_probe import DimensionProbe
    from llmvqa.train.dimension_stage import centres_from_bias, tune_reading_centres

    _, items, feats = _probed_model(tmp_path, 48)
    measure, select = items[:32], items[32:]  # 8 blurred clips to measure on, 4 to choose on
    model_dir = tmp_path / "model"
    (model_dir / "dimension_stage.json").write_text(json.dumps({"stage": "dimensions"}))
    before = QualityLLM.from_pretrained(model_dir)
    bias = {lv: [] for lv in ("excellent", "poor")}
    for it in measure:
        f, ps = feats[it.path]
        est = before.dimension_probe.estimates(f, ps)["sharpness"]
        got = before.score_queries(f, [aspect_query("dimension:clarity", None, "v1")], prompt_stats=ps)[0].score
        bias[level_of_score(est)].append(got - est)
    assert len(bias["poor"]) == 8
    kept = tune_reading_centres(model_dir, measure, select, lambda it: feats[it.path], clips=32)
    record = json.loads((model_dir / "dimension_stage.json").read_text())["reading_centres"]
    assert record["clips"] == 32 and record["select_clips"] == 16
    for lv, b in bias.items():  # the bias it measured is the model's (answer − slot) by probe level
        assert record["bias"]["sharpness"][lv] == {"n": len(b), "mean": pytest.approx(np.mean(b), abs=1e-4)}
    # the tiny random model answers near the middle whatever the slot says: "poor" moves (down, at most 0.8)
    assert record["measured"]["sharpness"] == pytest.approx(centres_from_bias(bias), abs=1e-4)
    assert record["measured"]["sharpness"][3] < 2.0
    gains = [record[k]["sharpness"][1] - record[k]["sharpness"][0] for k in ("margins", "margins_no_prompt")]
    assert ("sharpness" in kept) == (max(gains) > 0 and min(gains) >= 0) and record["kept"] == sorted(kept)
    assert DimensionProbe.load(model_dir).reading_centres == kept
    assert json.loads((model_dir / "dimension_stage.json").read_text())["stage"] == "dimensions"  # the rest kept


def test_answer_margins_without_the_prompt_ask_as_rate_clip_asks(tmp_path):
    model, items, feats = _probed_model(tmp_path)
    items = [dataclasses.replace(it, prompt="a cat on a sofa") for it in items]
    ps = {"prompt_alignment": 0.3}
    asked = []
    real = model.score_queries

    def spy(f, queries, prompt=None, prompt_stats=None):
        asked.append((prompt, dict(prompt_stats or {}), [q for q, _ in queries]))
        return real(f, queries, prompt=prompt, prompt_stats=prompt_stats)

    model.score_queries = spy
    with_prompt = answer_margins(model, items, lambda it: (feats[it.path][0], ps), ["sharpness"])
    assert all(p == "a cat on a sofa" and s == ps and "a cat on a sofa" in q[0] for p, s, q in asked)
    asked.clear()
    bare = answer_margins(model, items, lambda it: (feats[it.path][0], ps), ["sharpness"], with_prompt=False)
    assert all(p is None and s == {} and "a cat on a sofa" not in q[0] for p, s, q in asked) and len(asked) == len(items)
    plain = answer_margins(model, [dataclasses.replace(it, prompt=None) for it in items], lambda it: (feats[it.path][0], {}),
                           ["sharpness"])
    assert bare == plain and set(with_prompt) == {"sharpness"}
