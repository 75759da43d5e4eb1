"""`llmvqa batch` under a launcher (accelerate launch / torchrun): shards, parts, the merge, and a real 2-process run."""

from __future__ import annotations

import csv
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from test_batch import make_videos, read_rows

from llmvqa.commands.batch_io import Job, collect_jobs
from llmvqa.engines.shards import Shard, done_keys, launcher_shard, merge_parts, part_path, shard_jobs
from llmvqa.errors import LlmvqaError


def test_launcher_environment_gives_the_shard():
    assert launcher_shard({}) is None
    assert launcher_shard({"WORLD_SIZE": "1", "RANK": "0"}) is None
    env = {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    assert launcher_shard(env) == Shard(3, 4, 1, 2)
    with pytest.raises(LlmvqaError, match="do not fit"):
        launcher_shard({"WORLD_SIZE": "2", "RANK": "2"})
    with pytest.raises(LlmvqaError, match="integers"):
        launcher_shard({"WORLD_SIZE": "two"})


def test_every_pair_goes_to_exactly_one_rank_and_a_repeat_stays_with_it(tmp_path):
    jobs = [Job(f"v{i}.mp4", str(tmp_path / f"v{i}.mp4"), p) for i in range(5) for p in (None, "a cat")]
    jobs.append(Job("again", str(tmp_path / "v1.mp4"), "a cat"))  # listed twice
    shards = [shard_jobs(jobs, Shard(r, 3)) for r in range(3)]
    keys = [[j.key for j in s] for s in shards]
    assert sorted(k for ks in keys for k in set(ks)) == sorted({j.key for j in jobs})  # all, none twice
    assert sum(jobs[-1].key in ks for ks in keys) == 1
    assert [len(set(ks)) for ks in keys] == [4, 3, 3]  # 10 distinct pairs, round robin
    assert part_path(tmp_path / "r.csv", Shard(1, 3)) == tmp_path / "r.rank1-of-3.csv"
    assert part_path(tmp_path / "r.parquet", Shard(0, 2)) == tmp_path / "r.rank0-of-2.parquet"


def test_a_launch_that_cannot_work_says_why(tmp_path, monkeypatch, capsys):
    from llmvqa.cli import main

    make_videos(tmp_path / "v", n=1, bad=())
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    for extra, why in ((["--engine", "ray"], "does not run under a launcher"), ([], "not MASTER_ADDR or MASTER_PORT")):
        assert main(["batch", str(tmp_path / "v"), "--out", str(tmp_path / "r.csv"), *extra]) == 2
        err = capsys.readouterr().err
        assert why in err and "Traceback" not in err
    assert not list(tmp_path.glob("r*.csv"))


def _write(path: Path, rows: list[dict], torn: str = "") -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["video", "path", "prompt", "status", "score"])
        w.writeheader()
        w.writerows(rows)
        f.write(torn)


def test_parts_merge_into_the_output_in_list_order(tmp_path):
    jobs = [Job(f"v{i}", str(tmp_path / f"v{i}.mp4")) for i in range(5)]
    out = tmp_path / "results.csv"
    _write(out, [{"video": "v0", "path": jobs[0].path, "status": "ok", "score": "3"}],
           torn=f"v4,{jobs[4].path},,ok")  # a row torn by a killed run: not done
    assert done_keys(out) == {jobs[0].key}
    parts = [part_path(out, Shard(r, 2)) for r in range(2)]
    _write(parts[0], [{"video": f"v{i}", "path": jobs[i].path, "status": "ok", "score": str(i)} for i in (4, 2)])
    _write(parts[1], [{"video": f"v{i}", "path": jobs[i].path, "status": "error", "score": ""} for i in (3, 1)])
    assert merge_parts(out, parts, jobs) == 4
    rows = read_rows(out)
    assert [r["video"] for r in rows] == ["v0", "v1", "v2", "v3", "v4"]  # the torn row was cut, the rest appended
    assert [r["status"] for r in rows] == ["ok", "error", "ok", "error", "ok"]
    assert not any(p.exists() for p in parts)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_launched_processes_rate_one_list_into_one_output(tmp_path):
    """torchrun (what accelerate launch runs) starts 2 CPU processes; their rows equal one process's."""
    from conftest import real_clips

    from llmvqa.assessor import Assessor
    from llmvqa.commands.batch import run_batch

    root = tmp_path / "clips"
    real_clips(root)
    out = tmp_path / "results.csv"

    def launch():
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(_free_port()), "-m", "llmvqa.cli", "batch", str(root), "--out", str(out),
               "--no-dimensions", "--no-progress"]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)

    done = launch()
    assert done.returncode == 1, done.stderr[-3000:]  # one rank had the broken file: the launch fails as one run would
    assert "merged 4 row(s) of 2 processes" in done.stderr, done.stderr[-3000:]
    assert not list(tmp_path.glob("results.rank*"))
    mine = read_rows(out)
    jobs = collect_jobs(root)
    run_batch(Assessor.from_pretrained(encoders=True), jobs, tmp_path / "one.csv", dimensions=False, progress=False)
    theirs = read_rows(tmp_path / "one.csv")
    assert [r["video"] for r in mine] == [r["video"] for r in theirs] == [j.video for j in jobs]
    for m, t in zip(mine, theirs, strict=True):
        assert m["status"] == t["status"]
        if t["status"] == "ok":
            assert float(m["score"]) == pytest.approx(float(t["score"]), abs=1e-4)
    again = launch()  # resumed: only the broken file is tried again
    assert "merged 1 row(s)" in again.stderr, again.stderr[-3000:]
    assert len(read_rows(out)) == 5
