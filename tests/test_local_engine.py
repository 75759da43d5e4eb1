"""`llmvqa batch`'s local engine: feature workers (spawned processes) and batched scoring, against the
one-process loop; a worker that dies, encoders that cannot load; the real model's rows."""

from __future__ import annotations

import csv
import os

import pytest
from test_assessor import make_assessor
from test_batch import PickyExtractor, make_videos, read_rows

from llmvqa.commands.batch import run_batch
from llmvqa.commands.batch_io import collect_jobs
from llmvqa.engines.local import FIRST_NICE, FeaturePool, LocalOptions, ModelSpec, auto_workers, run_local_batch
from llmvqa.errors import LlmvqaError


# ---- extractors built inside the worker processes (module-level: a spawned worker imports them by name)
def picky_extractor():
    return PickyExtractor()


class CrashingExtractor(PickyExtractor):
    """Kills its own process on a file named crash*, as a segfaulting decoder or the OOM killer would."""

    def extract(self, path):
        if os.path.basename(str(path)).startswith("crash"):
            os._exit(9)
        return super().extract(path)


def crashing_extractor():
    return CrashingExtractor()


def broken_extractor():
    raise OSError("weights file truncated")


class WhoExtractor(PickyExtractor):
    """Notes which process read the video, and at what niceness."""

    def extract(self, path):
        import time

        time.sleep(0.2)  # long enough that a job is still in flight when the next is submitted
        features = super().extract(path)
        features.meta["reader"] = f"{os.getpid()}:{os.nice(0)}"
        return features


def who_extractor():
    return WhoExtractor()


def test_workers_give_the_rows_of_the_one_process_loop_in_order(tmp_path):
    make_videos(tmp_path / "v", n=7)
    jobs = collect_jobs(tmp_path / "v")
    serial = make_assessor()
    serial.extractor = PickyExtractor()
    run_batch(serial, jobs, tmp_path / "serial.csv", progress=False)
    a = make_assessor()
    s = run_local_batch(a, jobs, tmp_path / "workers.csv", options=LocalOptions(workers=2, batch_size=3),
                        progress=False, make_extractor=picky_extractor)
    assert s.done == 7 and [v for v, _ in s.failed] == [str(tmp_path / "v" / "c_bad.mp4")]
    mine, theirs = read_rows(tmp_path / "workers.csv"), read_rows(tmp_path / "serial.csv")
    assert [r["video"] for r in mine] == [r["video"] for r in theirs] == [j.video for j in jobs]
    for m, t in zip(mine, theirs, strict=True):
        assert (m["status"], m["score"], m["level"], m["error"]) == (t["status"], t["score"], t["level"], t["error"])
    assert a.extractor.calls == 0  # every video was read in a worker
    again = run_local_batch(a, jobs, tmp_path / "workers.csv", options=LocalOptions(workers=2), progress=False,
                            make_extractor=picky_extractor)
    assert again.skipped == 7 and again.retried == 1 and again.done == 0  # resumes: only the failure again


def test_a_worker_that_dies_costs_only_its_own_video(tmp_path):
    make_videos(tmp_path / "v", n=5, bad=())
    (tmp_path / "v" / "crash.mp4").write_bytes(b"takes its reader down")
    jobs = collect_jobs(tmp_path / "v")
    s = run_local_batch(make_assessor(), jobs, tmp_path / "r.csv", options=LocalOptions(workers=2, batch_size=2),
                        progress=False, make_extractor=crashing_extractor)
    rows = {os.path.basename(r["video"]): r for r in read_rows(tmp_path / "r.csv")}
    assert len(rows) == 6 and s.done == 5
    assert rows["crash.mp4"]["status"] == "error" and "worker reading this video stopped" in rows["crash.mp4"]["error"]
    assert all(r["status"] == "ok" for name, r in rows.items() if name != "crash.mp4")


def test_encoders_that_cannot_load_stop_the_run_with_the_reason(tmp_path):
    make_videos(tmp_path / "v", n=2, bad=())
    with pytest.raises(LlmvqaError, match="cannot load the encoders.*weights file truncated"):
        run_local_batch(make_assessor(), collect_jobs(tmp_path / "v"), tmp_path / "r.csv",
                        options=LocalOptions(workers=1), progress=False, make_extractor=broken_extractor)


def test_worker_counts_and_options():
    assert auto_workers(1, False, False) == 0 and auto_workers(2, False, False) == 2
    assert auto_workers(2, False, True) == 0 and auto_workers(8, True, True) == 1
    assert auto_workers(64, False, False) == 8  # each worker holds its own encoders
    for bad in ({"workers": -1}, {"batch_size": 0}, {"threads": 0}):
        with pytest.raises(LlmvqaError):
            LocalOptions(**bad)


def test_real_model_rows_match_the_one_process_loop(tmp_path):
    from conftest import real_clips

    from llmvqa.assessor import Assessor

    root = tmp_path / "clips"
    real_clips(root)
    listing = tmp_path / "list.csv"
    with listing.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["video", "prompt"])
        w.writerows([[str(root / "clip0.mp4"), "a red ball"], [str(root / "clip1.mp4"), ""],
                     [str(root / "broken.mp4"), ""], [str(root / "clip2.mp4"), "waves on a beach"]])
    jobs = collect_jobs(listing)
    assessor = Assessor.from_pretrained()
    run_batch(assessor, jobs, tmp_path / "serial.csv", progress=False)
    s = run_local_batch(ModelSpec(), jobs, tmp_path / "workers.csv",  # as the CLI runs it: loads the shipped model
                        options=LocalOptions(workers=2, batch_size=4), progress=False)
    assert s.done == 3 and len(s.failed) == 1
    mine, theirs = read_rows(tmp_path / "workers.csv"), read_rows(tmp_path / "serial.csv")
    assert [r["status"] for r in mine] == [r["status"] for r in theirs] == ["ok", "ok", "error", "ok"]
    for m, t in zip(mine, theirs, strict=True):
        if t["status"] == "ok":  # one batched pass over three clips against one pass each
            assert float(m["score"]) == pytest.approx(float(t["score"]), abs=1e-4) and m["level"] == t["level"]
        else:
            assert m["error"] == t["error"] and "broken.mp4" in m["error"]


def test_ctrl_c_stops_the_batch_and_its_workers_quietly(tmp_path):
    """Ctrl-C reaches the whole process group: the command says it was interrupted (exit 130), no worker prints a
    traceback, every row written stays, and no worker outlives it."""
    import signal
    import subprocess
    import sys
    import time

    from conftest import moving_scene

    from llmvqa.video.writer import write_video

    for i in range(12):
        write_video(tmp_path / "v" / f"clip{i:02d}.mp4", moving_scene(16, 96, seed=i), fps=8)
    out = tmp_path / "r.csv"
    proc = subprocess.Popen([sys.executable, "-m", "llmvqa", "batch", str(tmp_path / "v"), "--out", str(out),
                             "--no-dimensions", "--no-progress", "--workers", "2"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not (out.exists() and len(read_rows(out)) >= 1):
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
    _, err = proc.communicate(timeout=60)
    err = err.decode()
    assert proc.returncode == 130 and "llmvqa batch: interrupted" in err and "Traceback" not in err, err
    rows = read_rows(out)
    assert 1 <= len(rows) < 12 and all(r["status"] == "ok" for r in rows)
    for _ in range(100):  # the workers finish the clip in hand and exit
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("a feature worker outlived the interrupted batch")


class CountingExtractor(PickyExtractor):
    """Appends each file it reads to a log (the test reads it back: workers are other processes)."""

    def __init__(self, log):
        super().__init__()
        self.log = log

    def extract(self, path):
        with open(self.log, "a", encoding="utf-8") as f:
            f.write(os.path.basename(str(path)) + "\n")
        return super().extract(path)


def counting_extractor(log):
    return CountingExtractor(log)


def test_a_file_listed_with_several_prompts_is_read_once(tmp_path):
    from functools import partial

    make_videos(tmp_path / "v", n=3, bad=())
    listing = tmp_path / "list.csv"
    rows = [("a.mp4", "a red fox"), ("b.mp4", ""), ("a.mp4", "a blue boat"), ("c.mp4", "x"), ("a.mp4", ""),
            ("b.mp4", "a dog")]
    listing.write_text("video,prompt\n" + "".join(f"v/{v},{p}\n" for v, p in rows), encoding="utf-8")
    jobs = collect_jobs(listing)
    serial = make_assessor()
    run_batch(serial, jobs, tmp_path / "serial.csv", progress=False)
    log = tmp_path / "reads.log"
    a = make_assessor()
    s = run_local_batch(a, jobs, tmp_path / "workers.csv", options=LocalOptions(workers=2, batch_size=2),
                        progress=False, make_extractor=partial(counting_extractor, str(log)))
    assert s.done == 6
    # each clip was scored with its own prompt's statistics (the fake extractor's: 0.01 per character)
    seen = sorted((p or "", round(st.get("prompt_alignment", 0.0), 6)) for _, _, p, st in a.model.scored)
    assert seen == sorted((p, round(0.01 * len(p), 6)) for _, p in rows)
    assert sorted(log.read_text().split()) == ["a.mp4", "b.mp4", "c.mp4"]  # each file once, whatever its prompts
    mine, theirs = read_rows(tmp_path / "workers.csv"), read_rows(tmp_path / "serial.csv")
    assert [(r["video"], r["prompt"]) for r in mine] == [(r["video"], r["prompt"]) for r in theirs]
    for m, t in zip(mine, theirs, strict=True):
        assert (m["score"], m["level"]) == (t["score"], t["level"])


def test_one_worker_reads_at_low_priority_until_the_others_start(tmp_path):
    make_videos(tmp_path / "v", n=8, bad=())
    jobs = collect_jobs(tmp_path / "v")
    pool = FeaturePool(who_extractor, 3, 1, jobs, one_first=True)
    try:
        early = [pool.submit(j).result() for j in jobs[:3]]  # while the model would load: one process only
        readers = {r[1].meta["reader"] for r in early}
        assert len(readers) == 1
        assert int(readers.pop().split(":")[1]) == min(19, os.nice(0) + FIRST_NICE)
        pool.start_all()
        pool.start_all()  # once only
        assert len(pool.executors) == 2
        futures = [pool.submit(j) for j in jobs[3:]]  # to the group with the fewest in flight: both share them
        late = {f.result()[1].meta["reader"] for f in futures}
        niceness = sorted(int(r.split(":")[1]) for r in late)
        assert niceness[0] == os.nice(0) and niceness[-1] == min(19, os.nice(0) + FIRST_NICE)
    finally:
        pool.close()
    assert pool.in_flight == [0, 0]
