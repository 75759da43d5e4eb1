"""`llmvqa batch --engine ray` on a local Ray with 2 CPUs, against the one-process engine; Parquet lists and results."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from conftest import moving_scene

from llmvqa.commands.batch_io import ParquetSink, collect_jobs, read_results
from llmvqa.video.writer import write_video


@pytest.fixture(scope="module")
def listing(tmp_path_factory) -> Path:
    """Two real clips (panned photo, two speeds) and one corrupt file, listed in Parquet with prompts."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path_factory.mktemp("ray")
    write_video(root / "slow.mp4", moving_scene(16, 96, seed=1), fps=8)
    write_video(root / "fast.mp4", moving_scene(16, 96, seed=2)[::-1], fps=8)
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video")
    pq.write_table(pa.table({"video": ["slow.mp4", "fast.mp4", "broken.mp4"],
                             "prompt": ["an astronaut portrait", None, "a cat"]}), root / "list.parquet")
    return root / "list.parquet"


def test_a_parquet_list_gives_the_jobs_of_its_rows(listing):
    jobs = collect_jobs(listing)
    assert [Path(j.path).name for j in jobs] == ["slow.mp4", "fast.mp4", "broken.mp4"]
    assert [j.prompt for j in jobs] == ["an astronaut portrait", None, "a cat"]


def test_parquet_results_resume_and_drop_a_part_torn_by_a_kill(tmp_path):
    out = tmp_path / "r.parquet"
    sink = ParquetSink(out, rows_per_part=2)
    sink.start(["video", "path", "prompt", "status", "score", "error", "seconds"])
    for i, status in enumerate(["ok", "error", "ok"]):
        sink.write({"video": f"v{i}.mp4", "path": f"/d/v{i}.mp4", "prompt": "", "status": status,
                    "score": "3.5" if status == "ok" else "", "error": "bad" if status == "error" else "",
                    "seconds": "1.0"})
    sink.close()
    assert sorted(p.name for p in out.iterdir()) == ["part-00000.parquet", "part-00001.parquet"]
    (out / ".part-00002.tmp").write_bytes(b"half a part")  # a run killed while writing
    again = ParquetSink(out)
    assert again.repaired and not (out / ".part-00002.tmp").exists()
    assert again.done == {("/d/v0.mp4", ""), ("/d/v2.mp4", "")} and again.failed_before == {("/d/v1.mp4", "")}
    rows = read_results(out)
    assert [r["score"] for r in rows] == [3.5, None, 3.5]  # numbers stay numbers
    from llmvqa.report import build_report
    from llmvqa.report import read_results as report_rows

    board = build_report(report_rows(out), "folder")  # llmvqa report reads the Parquet folder too
    assert [(g.group, g.n) for g in board] == [("d", 2)]


def test_ray_engine_gives_the_rows_of_the_local_engine_and_resumes(listing, tmp_path):
    pytest.importorskip("ray")
    import ray

    from llmvqa.assessor import Assessor
    from llmvqa.commands.batch import run_batch
    from llmvqa.engines.ray_batch import RayOptions, run_ray_batch

    jobs = collect_jobs(listing)
    local = run_batch(Assessor.from_pretrained(), jobs, tmp_path / "local.csv", dimensions=True, progress=False)
    assert local.done == 2 and len(local.failed) == 1
    try:
        options = RayOptions(num_cpus=2, replicas=2)
        remote = run_ray_batch(jobs, tmp_path / "ray.parquet", dimensions=True, options=options, progress=False)
        assert remote.done == 2 and [v for v, _ in remote.failed] == ["broken.mp4"]
        with (tmp_path / "local.csv").open(newline="") as f:
            mine = {r["video"]: r for r in csv.DictReader(f)}
        theirs = {r["video"]: r for r in read_results(tmp_path / "ray.parquet")}
        assert set(mine) == set(theirs)
        for video, row in mine.items():
            assert theirs[video]["status"] == row["status"]
            if row["status"] == "ok":
                score_cols = [c for c in row if c.endswith("_score") or c == "score"]
                assert len(score_cols) > 10  # overall, groups, dimensions
                for c in score_cols:  # "" where the local row has none (prompt alignment without a prompt)
                    want = float(row[c]) if row[c] else None
                    assert theirs[video][c] == (want if want is None else pytest.approx(want, abs=2e-3)), (video, c)
                assert theirs[video]["level"] == row["level"]
            else:
                assert "broken.mp4" in theirs[video]["error"] or theirs[video]["error"]
        again = run_ray_batch(jobs, tmp_path / "ray.parquet", dimensions=True, options=options, progress=False)
        assert again.skipped == 2 and again.retried == 1 and again.done == 0  # only the failure is tried again
        # score only: a replica scores its batch of clips in one pass; the rows are the local loop's
        run_batch(Assessor.from_pretrained(), jobs, tmp_path / "local_scores.csv", dimensions=False, progress=False)
        only = RayOptions(num_cpus=2, replicas=1, batch_size=3)
        scores = run_ray_batch(jobs, tmp_path / "scores.parquet", dimensions=False, options=only, progress=False)
        assert scores.done == 2 and len(scores.failed) == 1
        with (tmp_path / "local_scores.csv").open(newline="") as f:
            want = {r["video"]: r for r in csv.DictReader(f)}
        for row in read_results(tmp_path / "scores.parquet"):
            assert row["status"] == want[row["video"]]["status"]
            if row["status"] == "ok":
                assert row["score"] == pytest.approx(float(want[row["video"]]["score"]), abs=1e-4)
                assert row["level"] == want[row["video"]]["level"] and "sharpness_score" not in row
    finally:
        ray.shutdown()


def test_replicas_fill_the_cluster_unless_given():
    from llmvqa.engines.ray_batch import RayOptions, replica_count
    from llmvqa.errors import LlmvqaError

    with pytest.raises(LlmvqaError, match="batch-size"):
        RayOptions(batch_size=0)
    assert replica_count(RayOptions(), {"CPU": 8.0}) == 8
    assert replica_count(RayOptions(cpus_per_replica=3), {"CPU": 8.0}) == 2
    assert replica_count(RayOptions(gpus_per_replica=1), {"CPU": 64.0, "GPU": 4.0}) == 4
    assert replica_count(RayOptions(replicas=3), {"CPU": 1.0}) == 3
    with pytest.raises(LlmvqaError, match="replicas"):
        RayOptions(replicas=0)
