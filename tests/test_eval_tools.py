"""The analysis code of the eval/ scripts (llmvqa.evaluation: benchkit, items, defects, justification checks,
chains, dimension probe, soak): clip makers, memory readings, item lists, tallies and summaries. No model weights."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


# --- benchkit: clips ---------------------------------------------------------------------------------------------


def test_panned_photo_sizes_and_motion():
    from llmvqa.evaluation.benchkit import panned_photo

    stepped = panned_photo(64, 48, 6, "coffee", zoom=2.0, step=(3, 2))
    assert stepped.shape == (6, 48, 64, 3) and stepped.dtype == np.uint8
    for t in range(1, 6):  # frame t is frame 0 moved by (3t, 2t) pixels: the photo slides up and left
        assert np.array_equal(stepped[t][: 48 - 2 * t, : 64 - 3 * t], stepped[0][2 * t :, 3 * t :])
    swept = panned_photo(64, 48, 5, "coffee", zoom=2.0)
    assert swept.shape == (5, 48, 64, 3)
    assert np.array_equal(swept[0], stepped[0])  # both start at the photo's top-left corner
    assert all(not np.array_equal(swept[i], swept[i + 1]) for i in range(4))
    with pytest.raises(ValueError):
        panned_photo(64, 64, 2, zoom=0.5)


def test_photo_clips_are_written_at_the_size_length_and_rate_asked(tmp_path):
    from llmvqa.evaluation.benchkit import PHOTOS, photo_clips, write_clips
    from llmvqa.video.probe import probe

    frames = list(photo_clips(5, seconds=1.0, size=64, fps=8.0))
    assert [f.shape for f in frames] == [(8, 64, 64, 3)] * 5
    assert np.array_equal(frames[4][0], frames[0][0])  # clip 4 pans PHOTOS[0] again, from the same corner
    assert not np.array_equal(frames[4][-1], frames[0][-1])  # ... at 7 px a frame instead of 3
    assert len(PHOTOS) == 4
    paths = write_clips(tmp_path, frames[:2], 8.0, name="clip_{i:03d}")
    assert [p.name for p in paths] == ["clip_000.mp4", "clip_001.mp4"]
    info = probe(paths[1])
    assert (info.width, info.height, info.num_frames) == (64, 64, 8) and info.fps == pytest.approx(8.0)


def test_write_photo_clip_writes_one_clip_at_path(tmp_path):
    from llmvqa.evaluation.benchkit import write_photo_clip
    from llmvqa.video.probe import probe

    path = write_photo_clip(tmp_path / "wide.mp4", 96, 64, 0.5, 8.0)
    info = probe(path)
    assert path == tmp_path / "wide.mp4"
    assert (info.width, info.height, info.num_frames) == (96, 64, 4)


def test_footage_clips_are_square_windows_of_the_source():
    from llmvqa.evaluation.benchkit import footage_clips

    clips = list(footage_clips(3, size=32, length=8, source="example:carphone_pristine", pool=16))
    assert [c.shape for c in clips] == [(8, 32, 32, 3)] * 3
    assert clips[0].dtype == np.uint8
    assert not np.array_equal(clips[0], clips[1])  # another window (start frame 7, column 37)


# --- benchkit: memory, processes, features -----------------------------------------------------------------------


def _vmrss_mib(pid) -> float:
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def test_rss_of_a_process_and_of_its_tree():
    from llmvqa.evaluation.benchkit import peak_rss_mib, rss_mib

    me = os.getpid()
    assert rss_mib(me) == pytest.approx(_vmrss_mib(me), abs=4)
    before = rss_mib(me)
    block = np.ones(96 * 2**20 // 8)  # 96 MiB, every page touched
    assert rss_mib(me) - before > 80
    assert peak_rss_mib() >= rss_mib(me) - 1
    del block
    child = subprocess.Popen([sys.executable, "-c", "import time; b = b'\\x01' * (64 * 2**20); print(1, flush=True); "
                              "time.sleep(30)"], stdout=subprocess.PIPE)
    try:
        child.stdout.readline()  # the child holds its 64 MiB now
        assert rss_mib(child.pid) > 60
        assert rss_mib(me, tree=True) >= rss_mib(me) + 60
    finally:
        child.kill()
        child.wait()
    with pytest.raises(OSError):
        rss_mib(child.pid)


def test_time_process_sees_the_first_row_and_the_exit(tmp_path):
    from llmvqa.evaluation.benchkit import time_process

    out = tmp_path / "rows.csv"
    code = (f"import sys, time; f = open({str(out)!r}, 'w'); f.write('status\\n'); f.flush(); time.sleep(0.5); "
            "f.write('ok\\n'); f.flush(); time.sleep(0.8); sys.stderr.write('done'); sys.exit(3)")
    t = time_process([sys.executable, "-c", code], out, interval=0.05)
    assert t["returncode"] == 3 and t["stderr_tail"] == "done"
    assert t["first_row_s"] is not None and 0.5 <= t["first_row_s"] < t["wall_s"] - 0.5
    assert t["peak_rss_mib"] > 1
    assert list(csv.DictReader(out.open())) == [{"status": "ok"}]
    assert [n for _, n in t["row_times"]] == [1] and t["row_times"][0][0] == t["first_row_s"]


def test_steady_rate_is_the_rate_over_the_second_half_of_the_rows():
    from llmvqa.evaluation.benchkit import steady_rate

    # a slow start (2 rows in 10 s), then 1 row per 0.5 s: the second half sees the fast rate only
    times = [[8.0, 1], [10.0, 2], [10.5, 3], [11.0, 4], [11.5, 5], [12.0, 6], [12.5, 7], [13.0, 8]]
    assert steady_rate(times) == pytest.approx(2.0)
    assert steady_rate([[3.0, 1]]) is None and steady_rate([]) is None
    from llmvqa.evaluation.benchkit import after_first_rate

    assert after_first_rate(times) == pytest.approx(7 / 5)  # 7 rows after the first, in 5 s
    assert after_first_rate([[20.0, 8], [24.0, 16], [28.0, 32]]) == pytest.approx(3.0)  # 24 rows after a first burst of 8, in 8 s
    assert after_first_rate([[3.0, 1]]) is None


def test_synthetic_features_shapes_seed_and_statistics():
    import torch

    from llmvqa.evaluation.benchkit import synthetic_features
    from llmvqa.statistics import PROBE_STATISTICS, STATISTICS

    dims = {"technical": 12, "motion": 5, "semantic": 7}
    f = synthetic_features(dims, seed=3, frames=6)
    assert {s: tuple(t.shape) for s, t in f.tokens.items()} == {"technical": (6, 12), "motion": (5, 5), "semantic": (6, 7)}
    assert torch.equal(f.tokens["semantic"], synthetic_features(dims, seed=3, frames=6).tokens["semantic"])
    assert not torch.equal(f.tokens["technical"], synthetic_features(dims, seed=4, frames=6).tokens["technical"])
    assert f.stats["sharpness"] == 5.5 and f.stats["noise"] == 10.0  # middles of (2, 9) and (0, 20)
    assert "prompt_alignment" not in f.stats and len(f.stats) == len(STATISTICS) - 1 + len(PROBE_STATISTICS)
    assert f.stats["channel_balance"] == 0.75  # as extracted features: the probe statistics too
    assert f.meta["content_hash"] == "bench3"


# --- items ---------------------------------------------------------------------------------------------------------


def test_fetv_and_synth_items(tmp_path):
    from llmvqa.evaluation.items import fetv_items, synth_items, synth_rows

    fetv = tmp_path / "fetv"
    (fetv / "clips").mkdir(parents=True)
    with (fetv / "labels.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "model", "prompt", "static", "temporal", "alignment"])
        for i in range(6):
            (fetv / "clips" / f"v{i}.mp4").write_bytes(b"")
            w.writerow([f"v{i}.mp4", "gen", "" if i == 2 else f"a cat {i}", 3, 3, 3])
    items = fetv_items(fetv)
    assert items[0] == (str(fetv / "clips" / "v0.mp4"), "a cat 0")
    assert items[2] == (str(fetv / "clips" / "v2.mp4"), None) and len(items) == 6

    manifest = tmp_path / "synth" / "manifest.jsonl"
    manifest.parent.mkdir()
    recs = [{"video": "videos/a.mp4", "split": "test", "prompt": "a dog"}, {"video": "videos/b.mp4", "split": "train"},
            {"video": "videos/c.mp4", "split": "test", "prompt": ""}]
    manifest.write_text("\n".join(json.dumps(r) for r in recs) + "\n\n")
    assert synth_items(manifest, "test") == [(str(manifest.parent / "videos/a.mp4"), "a dog"),
                                             (str(manifest.parent / "videos/c.mp4"), None)]
    assert [r["video"] for r in synth_rows(manifest, "train")] == ["videos/b.mp4"]


def test_one_manifest_reader_names_the_file_and_line_of_a_bad_record(tmp_path):
    from llmvqa.corpus.chains import clean_records
    from llmvqa.corpus.manifest import read_manifest
    from llmvqa.errors import DataError
    from llmvqa.train.dimension_stage import load_synth_items

    manifest = tmp_path / "manifest.jsonl"
    recs = [{"video": "a.mp4", "split": "train", "scores": {"noise": 1.0}},
            {"video": "b.mp4", "split": "train", "degradations": [["noise", 0.5]], "scores": {"noise": 0.5}},
            {"video": "c.mp4", "split": "train", "twin_of": "a", "scores": {"noise": 1.0}}]
    manifest.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    assert [r["video"] for r in read_manifest(manifest)] == ["a.mp4", "b.mp4", "c.mp4"]
    assert [r["video"] for r in clean_records(manifest, "train")] == ["a.mp4"]  # neither degraded nor a twin
    with pytest.raises(DataError, match="not found"):
        read_manifest(tmp_path / "missing.jsonl")
    for bad, what in (("{not json", "not JSON"), ("[1, 2]", "not a clip record"), ('{"split": "train"}', "not a clip")):
        manifest.write_text(json.dumps(recs[0]) + "\n" + bad + "\n")
        for reader in (read_manifest, lambda m: clean_records(m, "train"), lambda m: load_synth_items(m, "train")):
            with pytest.raises(DataError, match=what) as err:
                reader(manifest)
            assert err.value.subject == f"{manifest}:2"
    manifest.write_text(json.dumps({**recs[0], "scores": {"noise": "high"}}) + "\n")
    with pytest.raises(DataError, match="scores"):
        load_synth_items(manifest, "train")


# --- defects -------------------------------------------------------------------------------------------------------


def test_controlled_defect_cases_and_footage():
    from llmvqa.evaluation.defects import DEFECT_KINDS, SEGMENTS, TIMING, cases, load_segment

    all_cases = cases()
    assert len(all_cases) == 72  # 6 segments × 6 kinds × 2 times (the benchmark's 72 clips)
    assert {d.kind for _, d, _ in all_cases} == set(DEFECT_KINDS)
    assert all(sum(d.kind == k for _, d, _ in all_cases) == 12 for k in DEFECT_KINDS)
    assert all(o != s and 0 <= o < len(SEGMENTS) for s, _, o in all_cases)
    assert [(d.start, d.end) for s, d, _ in all_cases if s == 0 and d.kind == "freeze"] == list(TIMING["freeze"])
    frames, fps = load_segment("carphone_pristine", 1.0, seconds=1.0, side=48)
    assert fps == pytest.approx(29.97, abs=0.01)
    assert frames.shape == (29, 48, 48, 3)  # int(1 s × 29.97 fps) frames from 1 s on


def test_evidence_located_and_tally():
    from llmvqa.evaluation.defects import Defect, evidence_located, tally

    ev = [SimpleNamespace(dimension="noise", sentence="noise rises at 0.9 s", start=0.9),
          SimpleNamespace(dimension="flicker", sentence="brightness jumps at 3.0 s", start=3.0)]
    assert evidence_located(ev, Defect("noise", 0.8, 1.8)) == (
        "noise: noise rises at 0.9 s flicker: brightness jumps at 3.0 s", True, True)
    assert evidence_located(ev, Defect("flicker", 0.5, 1.5))[1:] == (True, False)  # 2.5 s off
    assert evidence_located(ev, Defect("blur", 0.0, 2.0))[1:] == (False, False)
    rows = [{"kind": "noise", "named": True, "timed": True}, {"kind": "noise", "named": True, "timed": False},
            {"kind": "blur", "named": False, "timed": False}, {"kind": "noise", "named": False, "timed": True}]
    assert tally(rows) == {"clips": 4, "located_rate": 0.25, "per_kind": {
        "blur": {"located": 0, "named": 0, "clips": 1, "rate": 0.0},
        "noise": {"located": 1, "named": 2, "clips": 3, "rate": 0.333}}}


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"eval_{name}", REPO / "eval" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_defect_localization_rescore_writes_its_report_through_save_report(tmp_path, capsys):
    from llmvqa.dimensions import load_dimensions
    from llmvqa.prompts import level_sentence

    smooth = load_dimensions().dimensions["smoothness"].name
    clips = tmp_path / "clips_justification.jsonl"
    rows = [{"kind": "freeze", "start": 1.0, "end": 1.7,
             "text": f"The picture freezes from 1.0 s to 1.7 s. {level_sentence('dimension', 'poor', smooth)}"},
            {"kind": "freeze", "start": 2.5, "end": 3.2, "text": level_sentence("overall", "good")}]
    clips.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    assert _load_script("defect_localization").main(["--rescore", str(clips), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["report_justification.json"]
    report = json.loads((out / "report_justification.json").read_text())
    assert report["located_rate"] == 0.5 and report["per_kind"]["freeze"] == {"located": 1, "named": 1, "clips": 2,
                                                                               "rate": 0.5}
    assert json.loads(capsys.readouterr().out)["clips"] == 2


# --- justification checks ----------------------------------------------------------------------------------------


class _FakeAssessor:
    """rate/chat of a fixed result: the overall level good, flicker fair, evidence at 1.0 s."""

    def __init__(self, justification: str, answers: list[str], fail: bool = False):
        self.justification, self.answers, self.fail, self.cleared, self.asked = justification, answers, fail, 0, []

    def clear_features(self):
        self.cleared += 1

    def rate(self, video, prompt=None, explain=True):
        if self.fail:
            raise RuntimeError("unreadable")
        return SimpleNamespace(level="good", score=3.87654, groups={"technical": SimpleNamespace(level="good")},
                               dimensions={"flicker": SimpleNamespace(level="fair")}, justification=self.justification,
                               evidence=[{"text": "brightness jumps at 1.0 s"}], meta={"duration": "4.0"})

    def chat(self, video, history, prompt=None):
        self.asked.append(history[-1]["content"])
        return self.answers[len(self.asked) - 1]


def test_check_clip_validates_the_justification_and_each_chat_answer():
    from llmvqa.evaluation.justification import CHAT_QUESTIONS, check_clip, check_summary, rated_levels
    from llmvqa.prompts import level_sentence

    good = level_sentence("overall", "good")
    answers = ["It flickers at 1.0 s.", "The motion stalls at 2.5 s.", "It flickers within the first 1.0 s.",
               "Steadier light would help."]
    fake = _FakeAssessor(f"Brightness jumps at 1.0 s. {good}", answers)
    row, rate_s, chat_s = check_clip(fake, "a.mp4", "a cat", chat=True, cold=True)
    assert fake.cleared == 1 and fake.asked == list(CHAT_QUESTIONS) and len(chat_s) == 4 and rate_s >= 0
    assert row["score"] == 3.877 and row["violations"] == [] and row["evidence"] == ["brightness jumps at 1.0 s"]
    # 2.5 s is in no measurement; 1.0 s is (and is also the first question's window)
    assert [len(a["violations"]) for a in row["chat"]] == [0, 1, 0, 0]
    assert "2.5 s" in row["chat"][1]["violations"][0]

    wrong = _FakeAssessor(f"It is excellent at 3.0 s. {level_sentence('overall', 'poor')}", [])
    bad_row, _, none = check_clip(wrong, "b.mp4")
    assert none == [] and "chat" not in bad_row
    assert len(bad_row["violations"]) == 4  # level word outside a sentence, overall poor ≠ good, no closing, 3.0 s
    failed = check_clip(_FakeAssessor("", [], fail=True), "c.mp4")
    assert failed == ({"video": "c.mp4", "error": "RuntimeError: unreadable"}, None, [])

    assert rated_levels(fake.rate("a.mp4")) == {"overall": "good", "technical": "good", "flicker": "fair"}
    summary = check_summary([row, bad_row, failed[0]], [1.0, 3.0], [0.5, 0.25, 1.5, 2.0])
    assert summary == {"clips": 2, "failed": 1, "justification_violations": 4, "clips_with_violations": 1,
                       "chat_answers": 4, "chat_violations": 1, "rate_explain_s": {"median": 2.0, "max": 3.0},
                       "chat_answer_s": {"median": 1.0, "max": 2.0}}
    assert check_summary([], [], [])["rate_explain_s"] is None


# --- chains, dimension probe, soak -------------------------------------------------------------------------------


def test_chain_orders_and_report():
    from llmvqa.evaluation.chains import chain_orders, chains_markdown, chains_report
    from llmvqa.features import VideoFeatures
    from llmvqa.statistics import STREAMS

    class Model:  # features carry their (overall, group) scores as statistics
        def score_queries(self, f, queries):
            assert queries[0][1].startswith("The overall quality") and "technical" in queries[1][1]
            return [SimpleNamespace(score=f.stats["o"]), SimpleNamespace(score=f.stats["g"])]

    def chain(kind, scores):
        tokens = {s: np.zeros((1, 2), np.float32) for s in STREAMS}
        return SimpleNamespace(degradation=kind, group="technical",
                               features=[VideoFeatures(tokens=tokens, stats={"o": o, "g": g}) for o, g in scores])

    chains = [chain("blur", [(5, 3), (4, 3), (3, 3), (2, 3)]), chain("noise", [(2, 4), (3, 3), (4, 2), (5, 1)]),
              chain("blur", [(4, 4), (4, 3), (3, 2), (1, 1)]),
              chain("desaturate", [(4, 4)] * 4)]  # the degradation did not change the clip: nothing to rank
    by_kind = chain_orders(Model(), chains)
    assert by_kind == {"blur": [6 + 5, 12, 0 + 6, 12], "noise": [0, 6, 6, 6]}
    carphone = {"pristine": {"overall": 4.0, "technical": 4.1}, "distorted": {"overall": 2.0, "technical": 1.9}}
    report = chains_report(by_kind, carphone, model="m", split="test", chains=3, unchanged=1)
    assert report["overall_ordered"] == pytest.approx(11 / 18) and report["group_ordered"] == pytest.approx(12 / 18)
    assert report["by_kind"]["noise"] == {"overall": 0.0, "group": 1.0, "pairs": 6}
    text = chains_markdown(report)
    assert text.startswith("3 chains on the test split") and "| blur | 91.7% | 50.0% | 12 |" in text
    assert "1 more left out: the degradation did not change the clip" in text
    assert "distorted: overall 2.00, technical 1.90" in text


def test_probe_results_and_markdown():
    from llmvqa.evaluation.probe import probe_markdown, probe_results

    ref = [{"sharpness": "good", "noise": "bad"}, {"sharpness": "bad", "noise": "bad"},
           {"sharpness": "good", "noise": "fair"}, {"sharpness": "bad", "noise": "fair"}]
    by_probe = [{"sharpness": "good", "noise": "bad"}, {"sharpness": "bad", "noise": "bad"},
                {"sharpness": "good", "noise": "bad"}, {"sharpness": "good", "noise": "bad"}]
    results = probe_results(ref, by_probe)
    assert list(results) == ["probe"]
    assert results["probe"]["sharpness"]["balanced_accuracy"] == 0.75  # (2/2 good + 1/2 bad) / 2
    assert results["probe"]["noise"]["balanced_accuracy"] == 0.5  # always bad: chance
    both = probe_results(ref, by_probe, ref)
    text = probe_markdown(both, ["sharpness", "noise", "flicker"], "test", 4)
    assert "(4 clips)" in text and "| dimension | probe alone | model's answer | answer at the probe's level |" in text
    assert "| sharpness | 0.750 (+0.250) | 1.000 (+0.500) | 75.0% |" in text  # the answer differs from the probe once
    assert "| noise | 0.500 (+0.000) | 1.000 (+0.500) | 50.0% |" in text and "| flicker | – | – | – |" in text
    assert both["reading"]["noise"] == {"agreement": 0.5, "n": 4}


def test_soak_request_summary():
    from llmvqa.evaluation.soak import EXPECTED, MIX, summarize_requests

    assert set(EXPECTED) == set(MIX) and sum(MIX.values()) == pytest.approx(1.0)
    records = [("good", 200, 1.0, True), ("good", 500, 3.0, False), ("outside", 403, 0.5, True),
               ("good", -1, float("nan"), False)]
    s = summarize_requests(records, wall=2.0)
    assert s["requests"] == 4 and s["requests_per_s"] == 2.0 and s["failed"] == 2 and s["good_failed"] == 2
    assert s["p50_s"] == 1.0  # the median of the finite latencies 0.5, 1.0, 3.0
    assert s["by_kind"]["good"] == {"requests": 3, "failed": 2, "statuses": [-1, 200, 500], "p50_s": 2.0,
                                    "p99_s": pytest.approx(2.98)}
    assert s["by_kind"]["slow"] == {"requests": 0, "failed": 0, "statuses": [], "p50_s": None, "p99_s": None}


def test_bench_scripts_answer_help():
    started = time.perf_counter()
    for name in ("bench_rate", "bench_batch", "bench_train", "bench_soak", "synth_chains", "dimension_probe"):
        with pytest.raises(SystemExit) as exit_:
            _load_script(name).main(["--help"])
        assert exit_.value.code == 0
    assert time.perf_counter() - started < 10


def test_level_tally_counts_flagged_dimensions():
    from llmvqa.evaluation.defects import level_tally

    rows = [{"kind": "noise", "levels": {"noise": "poor", "sharpness": "good"}},
            {"kind": "blur", "levels": {"noise": "fair", "sharpness": "excellent"}},
            {"kind": "freeze", "levels": {"noise": "good", "sharpness": "bad", "smoothness": "fair"}},
            {"kind": "noise", "levels": {}}]  # no levels (evidence only): not counted
    assert level_tally(rows) == {"clips": 3, "affected_flagged": 0.667,
                                 "flagged": {"noise": 0.667, "sharpness": 0.333, "smoothness": 0.333}}
    assert level_tally([{"kind": "noise", "levels": {}}]) == {}


def test_time_process_runs_in_its_folder_with_its_environment_and_a_long_stderr_does_not_block(tmp_path):
    from llmvqa.evaluation.benchkit import time_process

    out = tmp_path / "rows.csv"
    # 200 kB on stderr: more than a pipe holds, so a process whose stderr nobody reads until the end would hang
    code = ("import os, sys; sys.stderr.write('x' * 200_000 + 'end'); "
            "open('rows.csv', 'w').write('status\\n' + os.environ['ROW'] + '\\n')")
    t = time_process([sys.executable, "-c", code], out, interval=0.05, cwd=tmp_path, env={**os.environ, "ROW": "ok"})
    assert t["returncode"] == 0 and t["stderr_tail"].endswith("end") and len(t["stderr_tail"]) == 300
    assert list(csv.DictReader(out.open())) == [{"status": "ok"}]


def test_bench_batch_exports_an_old_revision_or_says_why_not(tmp_path, capsys):
    bench_batch = _load_script("bench_batch")
    assert bench_batch.export_revision("no-such-revision-here", tmp_path / "x") is None
    assert "no-such-revision-here not timed" in capsys.readouterr().err
    if subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", "HEAD^{commit}"], capture_output=True).returncode:
        pytest.skip("no git history in this checkout")
    code = bench_batch.export_revision("HEAD", tmp_path / "head")
    assert (code / "llmvqa" / "cli.py").is_file()


def test_bench_commands_repeats_rated_rows_with_a_generator_column(tmp_path):
    bench = _load_script("bench_commands")
    src = tmp_path / "results.csv"
    src.write_text("video,status,score\na.mp4,ok,3.5\nbad.mp4,error,\nb.mp4,ok,2.0\n")
    assert bench.repeat_rows(src, tmp_path / "many.csv", 7) == 7
    rows = list(csv.DictReader((tmp_path / "many.csv").open()))
    assert [r["score"] for r in rows] == ["3.5", "2.0"] * 3 + ["3.5"]  # error rows are not repeated
    assert [r["generator"] for r in rows[:6]] == [*bench.GENERATORS, bench.GENERATORS[0]]
    assert len({r["video"] for r in rows}) == 7
    (tmp_path / "none.csv").write_text("video,status,score\nbad.mp4,error,\n")
    with pytest.raises(SystemExit, match="no rated rows"):
        bench.repeat_rows(tmp_path / "none.csv", tmp_path / "x.csv", 3)


def test_print_report_prints_the_table_and_saves_it_only_when_asked(tmp_path, capsys):
    from llmvqa.evaluation.report import print_report

    print_report("| a |\n|---|", None, {"a": 1})
    assert capsys.readouterr().out == "| a |\n|---|\n" and not list(tmp_path.iterdir())
    print_report("| a |\n", tmp_path / "r", [{"a": 1}])
    assert capsys.readouterr().out == "| a |\n"
    assert json.loads((tmp_path / "r" / "report.json").read_text()) == [{"a": 1}]
    assert (tmp_path / "r" / "report.md").read_text() == "| a |\n"
