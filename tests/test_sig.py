"""SIG: levels, experts, CoT, instruction types, rating protection, determinism, round trip, CLI."""

from __future__ import annotations

import argparse
import copy
import json
import random
import re
from pathlib import Path

import pytest

from llmvqa.corpus.datasets import VideoItem
from llmvqa.errors import DataError
from llmvqa.levels import LEVELS
from llmvqa.prompts import load_yaml
from llmvqa.sig.bench import load_bench, make_bench
from llmvqa.sig.build import BuildConfig, DictStats, assign_levels, build, complete_scores, read_jsonl, write_jsonl
from llmvqa.sig.experts import CSVExpert, StatsExpert, calibrate_anchor, load_dimensions
from llmvqa.sig.instructions import TASKS, InstructionConfig
from llmvqa.sig.validate import check_record, check_text, stated_levels
from llmvqa.statistics import STAT_BY_NAME, STATISTICS

REPO = Path(__file__).resolve().parent.parent
LEVEL_RE = re.compile(r"\b(" + "|".join(LEVELS) + r")\b", re.IGNORECASE)


def _dataset(tmp_path: Path, n: int = 12, seed: int = 0) -> tuple[list[VideoItem], DictStats]:
    """n fake videos (files exist) with random statistics across their typical ranges and MOS 0–100."""
    rng = random.Random(seed)
    items, table = [], {}
    for i in range(n):
        name = f"clip{i:02d}.mp4"
        (tmp_path / name).write_bytes(b"\0")
        items.append(VideoItem(video=name, prompt="a red fox in snow" if i % 2 else "", mos=rng.uniform(5, 95),
                               split="test" if i < 3 else "train", line=i + 1, source=name))
        table[name] = {s.name: rng.uniform(*s.typical) for s in STATISTICS if s.name != "prompt_alignment"}
        if i % 2:
            table[name]["prompt_alignment"] = rng.uniform(0, 0.7)
    return items, DictStats(table, tmp_path)


@pytest.fixture
def built(tmp_path):
    items, stats = _dataset(tmp_path)
    return build(items, tmp_path, stats, BuildConfig(seed=3), kind="t2vqa"), items, tmp_path


# ---------------------------------------------------------------- levels and experts


def test_equal_levels_fixed_range_and_dataset_range():
    scores = [{"sharpness": v} for v in (0.05, 0.3, 0.5, 0.7, 0.95)]
    fixed = assign_levels(scores, BuildConfig())
    assert [s["sharpness"] for s in fixed] == ["bad", "poor", "fair", "good", "excellent"]
    narrow = [{"noise": v} for v in (0.35, 0.45, 0.55)]
    assert [s["noise"] for s in assign_levels(narrow, BuildConfig())] == ["poor", "fair", "fair"]
    dataset = assign_levels(narrow, BuildConfig(level_range="dataset"))
    assert [s["noise"] for s in dataset] == ["bad", "fair", "excellent"]


def test_quantile_levels_are_equal_count():
    scores = [{"overall": v / 10} for v in range(10)]
    levels = [s["overall"] for s in assign_levels(scores, BuildConfig(levels="quantile"))]
    assert sorted(levels.count(w) for w in LEVELS) == [2, 2, 2, 2, 2]
    assert levels[0] == "bad" and levels[-1] == "excellent"


def test_mos_levels_use_the_dataset_wide_range_not_per_split(tmp_path):
    mos = {"a.mp4": (10.0, "train"), "b.mp4": (90.0, "train"), "c.mp4": (50.0, "test"), "d.mp4": (60.0, "test")}
    items = []
    for name, (m, split) in mos.items():
        (tmp_path / name).write_bytes(b"\0")
        items.append(VideoItem(video=name, mos=m, split=split, source=name))
    res = build(items, tmp_path, None, BuildConfig(experts=("mos",), instructions=InstructionConfig(tasks=("rating",))))
    overall = {r["video"]: (r["scores"]["overall"], r["levels"]["overall"]) for r in res.records}
    assert overall["c.mp4"] == (0.5, "fair")  # per split it would be "bad" (its own minimum)
    assert overall["d.mp4"] == (0.625, "good")
    assert overall["a.mp4"][1] == "bad" and overall["b.mp4"][1] == "excellent"


def test_anchor_calibration_follows_direction():
    for s in STATISTICS:
        if s.higher_is_better is None:
            continue
        lo, hi = s.typical
        lo_score, hi_score = calibrate_anchor(s.name, lo), calibrate_anchor(s.name, hi)
        assert (lo_score, hi_score) == ((0.0, 1.0) if s.higher_is_better else (1.0, 0.0)), s.name
    assert calibrate_anchor("dynamic_degree", 0.0) == 0.0  # a static video is a weakness
    assert calibrate_anchor("dynamic_degree", 0.2) == 1.0
    assert calibrate_anchor("brightness", 0.5) == 1.0 > calibrate_anchor("brightness", 0.85)


def test_stats_expert_scores_dimensions_and_skips_prompt_alignment_without_prompt():
    stats = {s.name: sum(s.typical) / 2 for s in STATISTICS}
    expert = StatsExpert()
    with_prompt = expert.score(VideoItem(video="x", prompt="a cat"), stats)
    without = expert.score(VideoItem(video="x"), stats)
    assert set(with_prompt) == set(load_dimensions().dimensions)
    assert "prompt_alignment" not in without and len(without) == len(with_prompt) - 1
    assert all(0.0 <= v <= 1.0 for v in with_prompt.values())
    noisy = dict(stats, noise=STAT_BY_NAME["noise"].typical[1])
    assert expert.score(VideoItem(video="x"), noisy)["noise"] < without["noise"]


def test_percentile_calibration_spreads_the_dataset():
    values = [{"sharpness": 5.0 + 0.01 * i} for i in range(5)]
    expert = StatsExpert(calibration="percentile")
    expert.fit([None] * 5, values)
    scores = [expert.score(VideoItem(video="x"), v)["sharpness"] for v in values]
    assert scores == sorted(scores) and scores[0] == pytest.approx(0.1) and scores[-1] == pytest.approx(0.9)


def test_csv_expert_overrides_and_rejects_out_of_range(tmp_path):
    items, stats = _dataset(tmp_path, n=4)
    csv_path = tmp_path / "scores.csv"
    csv_path.write_text("video,flicker,overall\nclip00.mp4,0.05,0.97\n")
    cfg = BuildConfig(experts=("stats", f"csv:{csv_path}"), instructions=InstructionConfig(tasks=("rating",)))
    res = build(items, tmp_path, stats, cfg)
    rec = next(r for r in res.records if r["video"] == "clip00.mp4")
    assert rec["scores"]["flicker"] == 0.05 and rec["levels"]["flicker"] == "bad"
    assert rec["levels"]["overall"] == "excellent"
    csv_path.write_text("video,flicker\nclip00.mp4,3\n")
    with pytest.raises(DataError, match=":2"):
        CSVExpert(csv_path)


def test_group_and_overall_scores():
    sc = complete_scores({"sharpness": 0.2, "noise": 0.4, "flicker": 1.0})
    assert sc["technical"] == pytest.approx(0.3) and sc["motion"] == 1.0 and "semantic" not in sc
    w = load_dimensions().group_weights
    assert sc["overall"] == pytest.approx((0.3 * w["technical"] + 1.0 * w["motion"]) / (w["technical"] + w["motion"]))
    assert complete_scores({"sharpness": 0.2, "overall": 0.9})["overall"] == 0.9  # an overall expert wins


# ---------------------------------------------------------------- instructions and rating protection


def test_every_instruction_type_is_generated_and_validated(built):
    res, items, _ = built
    assert set(res.summary()["by_task"]) == set(TASKS)
    assert res.summary()["videos"] == len(items)
    overall_template = load_yaml("answers")["overall"]
    for r in res.records:
        assert set(r) == {"id", "video", "prompt", "conversations", "scores", "levels", "task", "split", "source"}
        assert r["conversations"][0]["from"] == "human" and r["conversations"][0]["value"].startswith("<video>\n")
        assert r["conversations"][1]["from"] == "gpt"
        check_record(r)
        if r["task"] == "rating":
            assert r["conversations"][1]["value"] == overall_template.format(level=r["levels"]["overall"])
        if r["task"] == "defect_yesno":
            (key, level), = stated_levels(r["conversations"][1]["value"])[0]
            assert level != "fair"
            assert r["conversations"][1]["value"].startswith("Yes." if level in ("poor", "bad") else "No.")
    assert len({r["id"] for r in res.records}) == len(res.records)
    asked = [stated_levels(r["conversations"][1]["value"])[0][0][0] for r in res.records if r["task"] == "dimension"]
    spec = load_dimensions()
    assert {a in spec.groups for a in asked} == {True, False}  # single dimensions and single groups are asked


def test_cot_is_hierarchical_and_ends_with_the_overall_sentence(built):
    res, _, _ = built
    cot = next(r for r in res.records if r["task"] == "rating_cot")
    stated = [k for k, _ in stated_levels(cot["conversations"][1]["value"])[0]]
    spec = load_dimensions()
    for group in spec.groups:
        dims = [d for d in spec.groups[group] if d in cot["levels"] and cot["levels"][d] not in ("excellent", "good")]
        # every criticised dimension of a group is stated before the group's own rating; the rest is praised
        assert all(stated.index(d) < stated.index(group) for d in dims)
        praised = [d for d in spec.groups[group] if d in cot["levels"] and d not in dims]
        assert not set(praised) & set(stated)
    assert cot["conversations"][0]["value"].startswith("<video>\nMeasured in this clip: ")
    assert stated[-1] == "overall"
    assert cot["conversations"][1]["value"].endswith(load_yaml("answers")["overall"].format(level=cot["levels"]["overall"]))


def test_score_tasks_end_in_the_overall_level(built):
    """The trainer's score loss reads the last level word of these answers as the overall level."""
    from llmvqa.train.config import OVERALL_TASKS, SCORE_TASKS

    res, _, _ = built
    assert set(SCORE_TASKS) <= set(OVERALL_TASKS) <= set(TASKS)
    for task in TASKS:
        recs = [r for r in res.records if r["task"] == task]
        assert recs, task
        for r in recs:
            last = stated_levels(r["conversations"][-1]["value"])[0][-1]
            if task in OVERALL_TASKS:
                assert last == ("overall", r["levels"]["overall"]), (task, r["id"])
            elif task in ("dimension", "defect_yesno", "worst_aspect"):
                assert last[0] != "overall", (task, r["id"])


def _other(level: str) -> str:
    return LEVELS[(LEVELS.index(level) + 2) % 5]


def test_rating_protection_catches_tampered_texts(built):
    res, _, _ = built
    spec = load_dimensions()
    cot = next(r for r in res.records if r["task"] == "rating_cot"
               and any(k in spec.dimensions for k, _ in stated_levels(r["conversations"][1]["value"])[0]))
    check_record(cot)
    dim = next(k for k, _ in stated_levels(cot["conversations"][1]["value"])[0] if k in spec.dimensions)
    name = spec.dimensions[dim].name
    bad = copy.deepcopy(cot)
    lv = cot["levels"][dim]
    bad["conversations"][1]["value"] = cot["conversations"][1]["value"].replace(
        f"In terms of {name}, this video is {lv}.", f"In terms of {name}, this video is {_other(lv)}.")
    assert bad != cot
    with pytest.raises(DataError, match=dim):
        check_record(bad)
    stray = copy.deepcopy(cot)
    stray["conversations"][1]["value"] = "Honestly the colors look good. " + cot["conversations"][1]["value"]
    with pytest.raises(DataError, match="level word"):
        check_record(stray)
    tampered_levels = copy.deepcopy(cot)
    tampered_levels["levels"]["overall"] = _other(cot["levels"]["overall"])
    with pytest.raises(DataError):
        check_record(tampered_levels)
    missing = copy.deepcopy(cot)
    missing["conversations"][1]["value"] = re.sub(rf"In terms of {name}, this video is \w+\. ", "", cot["conversations"][1]["value"])
    with pytest.raises(DataError, match=dim):
        check_record(missing)
    yesno = copy.deepcopy(next(r for r in res.records if r["task"] == "defect_yesno"))
    text = yesno["conversations"][1]["value"]
    yesno["conversations"][1]["value"] = ("No." + text[4:]) if text.startswith("Yes.") else ("Yes." + text[3:])
    with pytest.raises(DataError):
        check_record(yesno)


def test_phrasings_never_contain_level_words():
    phr = load_yaml("cot")
    texts = [phr["praise"], phr["minor"], *(t for lv in LEVELS for t in phr["dimension"][lv])]
    texts += list(load_yaml("evidence")["sentences"].values())
    chat = load_yaml("chat")
    texts += [*chat["answers"].values(), *chat["fixes"].values()]
    assert not [t for t in texts if LEVEL_RE.search(t)]
    q = load_yaml("instructions")
    assert not [t for t in [*q["answers"].values(), *q["fixes"].values()] if LEVEL_RE.search(t)]
    spec = load_dimensions()
    assert not [d for d in spec.dimensions.values() if LEVEL_RE.search(d.name + " " + d.definition)]
    assert not [t for t in spec.group_definitions.values() if LEVEL_RE.search(t)]
    assert check_text("In terms of clarity, this video is good.", {"sharpness": "good"}) == [("sharpness", "good")]


def test_deterministic_for_a_seed(tmp_path):
    items, stats = _dataset(tmp_path)
    a = build(items, tmp_path, stats, BuildConfig(seed=7)).records
    b = build(list(reversed(items)), tmp_path, stats, BuildConfig(seed=7)).records
    c = build(items, tmp_path, stats, BuildConfig(seed=8)).records
    assert a == sorted(b, key=lambda r: [x["id"] for x in a].index(r["id"]))
    assert [r["conversations"] for r in a] != [r["conversations"] for r in c]
    assert [r["levels"] for r in a] == [r["levels"] for r in c]  # the seed changes wording, never levels


def test_unreadable_videos_are_counted_as_bad_rows(tmp_path):
    items, stats = _dataset(tmp_path, n=4)
    items.append(VideoItem(video="broken.mp4", line=9, source="broken.mp4", split="train"))
    res = build(items, tmp_path, stats, BuildConfig(), input_name="info.txt")
    assert res.summary()["bad_rows"] == 1 and res.summary()["videos"] == 4
    assert res.bad_rows[0].line == 9 and "broken.mp4" in str(res.bad_rows[0])


# ---------------------------------------------------------------- output: JSONL, datasets, bench, CLI


def test_jsonl_round_trip_through_datasets(built, tmp_path):
    datasets = pytest.importorskip("datasets")
    res, _, _ = built
    out = write_jsonl(res.records, tmp_path / "out" / "sig.jsonl")
    assert read_jsonl(out) == res.records
    ds = datasets.load_dataset("json", data_files=str(out), split="train", cache_dir=str(tmp_path / "hf"))
    assert len(ds) == len(res.records)
    for row, rec in zip(ds, res.records, strict=True):
        assert row["id"] == rec["id"] and row["conversations"] == rec["conversations"]
        assert row["levels"]["overall"] == rec["levels"]["overall"] and row["task"] == rec["task"]


def test_bench_from_test_split_and_liberal_reader(built, tmp_path):
    res, items, _ = built
    bench = make_bench(res.records)
    test_videos = {it.video for it in items if it.split == "test"}
    assert bench and {e["video"] for e in bench} == test_videos
    for e in bench:
        assert set(e) == {"id", "video", "prompt", "question", "reference", "levels", "dimensions_asked"}
        assert not e["question"].startswith("<video>")
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(bench))
    assert load_bench(path) == bench
    s2i = tmp_path / "s2i.json"
    s2i.write_text(json.dumps({"data": [{"video_path": "v/1.mp4", "question": "<video>\nWhy?", "answer": "Blur.", "question_id": 5}]}))
    (entry,) = load_bench(s2i)
    assert (entry["id"], entry["video"], entry["question"], entry["reference"]) == ("5", "v/1.mp4", "Why?", "Blur.")
    jl = tmp_path / "s2i.jsonl"
    jl.write_text(json.dumps({"video": "a.mp4", "query": "Q", "gt": "A"}) + "\n" + json.dumps({"video": "b.mp4", "query": "Q"}) + "\n")
    with pytest.raises(DataError, match=r"\[1\].*reference"):
        load_bench(jl)


def test_cli_build_and_bench(tmp_path, capsys):
    from llmvqa.commands import sig as sig_cmd

    items, stats = _dataset(tmp_path, n=6)
    info = tmp_path / "info.txt"
    info.write_text("".join(f"{it.video}|{it.prompt}|{it.mos:.2f}\n" for it in items) + "missing.mp4|x|50\n")
    stats_file = tmp_path / "stats.jsonl"
    stats_file.write_text("".join(json.dumps({"video": k, "stats": v}) + "\n" for k, v in stats.table.items()))
    parser = argparse.ArgumentParser()
    sig_cmd.register(parser.add_subparsers(dest="command"))
    out = tmp_path / "sig.jsonl"
    args = parser.parse_args(["sig", "build", "--input", str(info), "--kind", "t2vqa", "--out", str(out),
                              "--stats", str(stats_file), "--seed", "1"])
    assert args.func(args) == 0
    printed = capsys.readouterr()
    summary = json.loads(printed.out[: printed.out.rindex("}") + 1])
    assert summary["videos"] == 6 and summary["bad_rows"] == 1 and "info.txt:7" in printed.err
    assert sum(summary["by_task"].values()) == len(read_jsonl(out))
    bench_out = tmp_path / "bench.json"
    args = parser.parse_args(["sig", "bench", "--input", str(out), "--out", str(bench_out), "--split", "train"])
    assert args.func(args) == 0 and load_bench(bench_out)


@pytest.mark.parametrize("name", ["sample_skvideo.jsonl", "sample_aigc_examples.jsonl"])
def test_committed_samples_validate(name):
    path = REPO / "instruct_data" / name
    if not path.is_file():
        pytest.skip(f"{name} not built yet")
    records = read_jsonl(path)
    assert records
    for r in records:
        check_record(r)
        assert not Path(r["video"]).is_absolute() and ".." not in Path(r["video"]).parts


def test_committed_samples_load_together_with_record_features(tmp_path):
    datasets = pytest.importorskip("datasets")
    from llmvqa.sig.build import record_features

    files = [REPO / "instruct_data" / n for n in ("sample_skvideo.jsonl", "sample_aigc_examples.jsonl")]
    if not all(f.is_file() for f in files):
        pytest.skip("samples not built yet")
    ds = datasets.load_dataset("json", data_files=[str(f) for f in files], split="train",
                               cache_dir=str(tmp_path / "hf"), features=record_features())
    records = [r for f in files for r in read_jsonl(f)]
    assert len(ds) == len(records)
    for row, rec in zip(ds, records, strict=True):
        assert {k: v for k, v in row["levels"].items() if v is not None} == rec["levels"]


@pytest.mark.slow
def test_real_encoders_rank_the_distorted_carphone_below_the_pristine(carphone_paths, tmp_path):
    """Real offline weights on real footage: the stats expert sees the codec damage."""
    from llmvqa.sig.build import ExtractorStats

    pristine, distorted = (Path(p) for p in carphone_paths)
    items = [VideoItem(video=p.name, split="train", source=p.name) for p in (pristine, distorted)]
    res = build(items, pristine.parent, ExtractorStats(tmp_path / "cache"), BuildConfig(instructions=InstructionConfig(tasks=("rating_cot",))))
    by = {r["video"]: r for r in res.records}
    for key in ("sharpness", "compression", "overall"):
        assert by[distorted.name]["scores"][key] < by[pristine.name]["scores"][key], key
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 2  # features went through the cache


def test_cot_spends_prose_on_weak_dimensions_only():
    import random

    from llmvqa.sig.cot import build_cot

    spec = load_dimensions()
    levels = {k: "excellent" for k in spec.dimensions if k != "prompt_alignment"}
    levels.update({g: "excellent" for g in spec.groups}, overall="good")
    levels["flicker"] = "poor"
    text = build_cot(levels, random.Random(0))
    flicker = spec.dimensions["flicker"]
    assert flicker.definition in text  # the weak dimension is explained
    assert spec.dimensions["noise"].definition not in text  # the flawless one is only stated
    assert "7.5" not in text  # no numbers the model would have to invent
    assert text.endswith("The overall quality of this video is good.")
