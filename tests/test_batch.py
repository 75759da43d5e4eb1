"""`llmvqa batch`: row-by-row output, resuming, failure rows, CSV input (fake model and encoders)."""

from __future__ import annotations

import csv

import pytest
from test_assessor import FakeExtractor, expected_overall, make_assessor

from llmvqa.commands.batch import collect_jobs, run_batch
from llmvqa.errors import DataError, VideoError


class PickyExtractor(FakeExtractor):
    """Fails like the real loader on files whose name says 'bad'."""

    def extract(self, path):
        if "bad" in str(path):
            raise VideoError(str(path), "not a video (no video stream)", "check the file")
        return super().extract(path)


def make_videos(folder, n=4, bad=("c_bad.mp4",)):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"{chr(97 + i)}.mp4"
        p.write_bytes(f"clip {i}".encode() * 40)
        paths.append(p)
    for name in bad:
        (folder / name).write_bytes(b"oops")
    (folder / "notes.txt").write_text("not a video")
    return paths


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_folder_batch_writes_rows_and_failures(tmp_path):
    paths = make_videos(tmp_path / "v")
    a = make_assessor()
    a.extractor = PickyExtractor()
    out = tmp_path / "out" / "results.csv"
    s = run_batch(a, collect_jobs(tmp_path / "v"), out, progress=False)
    rows = read_rows(out)
    assert [r["video"] for r in rows] == sorted(str(p) for p in [*paths, tmp_path / "v" / "c_bad.mp4"])
    assert s.done == 4 and len(s.failed) == 1 and s.skipped == 0
    bad = next(r for r in rows if "bad" in r["video"])
    assert bad["status"] == "error" and "no video stream" in bad["error"] and bad["score"] == ""
    for p in paths:
        row = next(r for r in rows if r["video"] == str(p))
        assert row["status"] == "ok"
        assert float(row["score"]) == pytest.approx(expected_overall(p), abs=1e-4)
    assert "1 failed" in s.text() and "c_bad.mp4" in s.text()
    assert s.text().count("c_bad.mp4") == 1  # the message names the file; the summary does not say it twice


def test_batch_resumes_and_skips_done_videos(tmp_path):
    make_videos(tmp_path / "v", n=3, bad=())
    out = tmp_path / "results.csv"
    a = make_assessor()
    jobs = collect_jobs(tmp_path / "v")
    run_batch(a, jobs[:2], out, progress=False)  # an interrupted run
    assert a.extractor.calls == 2
    s = run_batch(a, jobs, out, progress=False)
    assert s.skipped == 2 and s.done == 1 and a.extractor.calls == 3
    rows = read_rows(out)
    assert [r["video"] for r in rows] == [j.video for j in jobs]  # header once, no duplicates


def test_rows_are_flushed_as_they_come(tmp_path):
    make_videos(tmp_path / "v", n=3, bad=())
    out = tmp_path / "results.csv"
    a = make_assessor()
    seen_rows = []
    original = a.rate

    def spying_rate(*args, **kwargs):
        seen_rows.append(len(read_rows(out)) if out.exists() else -1)
        return original(*args, **kwargs)

    a.rate = spying_rate
    run_batch(a, collect_jobs(tmp_path / "v"), out, progress=False)
    assert seen_rows == [0, 1, 2]  # each earlier row was on disk before the next video started


def test_unexpected_exception_is_a_failure_row_not_a_crash(tmp_path):
    make_videos(tmp_path / "v", n=2, bad=())
    a = make_assessor()

    def boom(path):
        raise RuntimeError("decoder exploded\nline two")

    a.extractor.extract = boom
    out = tmp_path / "r.csv"
    s = run_batch(a, collect_jobs(tmp_path / "v"), out, progress=False)
    rows = read_rows(out)
    assert len(rows) == 2 and all(r["status"] == "error" for r in rows)
    assert "RuntimeError: decoder exploded line two" == rows[0]["error"]
    assert len(s.failed) == 2


def test_csv_input_with_prompts_and_dimensions(tmp_path):
    paths = make_videos(tmp_path / "v", n=2, bad=())
    listing = tmp_path / "list.csv"
    listing.write_text("video,caption\nv/a.mp4,a red fox\nv/b.mp4,\n", encoding="utf-8")
    jobs = collect_jobs(listing, prompt_column="caption")
    assert [j.path for j in jobs] == [str(p) for p in paths]
    assert [j.prompt for j in jobs] == ["a red fox", None]
    out = tmp_path / "r.csv"
    run_batch(make_assessor(), jobs, out, explain=True, dimensions=True, progress=False)
    rows = read_rows(out)
    assert rows[0]["prompt"] == "a red fox" and rows[0]["prompt_alignment_level"] != ""
    assert rows[1]["prompt_alignment_level"] == "" and rows[1]["sharpness_level"] != ""
    assert 1 <= float(rows[1]["sharpness_score"]) <= 5 and 1 <= float(rows[0]["technical_score"]) <= 5
    assert rows[0]["justification"].startswith("Value")


def test_bad_sources(tmp_path):
    with pytest.raises(DataError):
        collect_jobs(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError):
        collect_jobs(tmp_path / "empty")
    bad = tmp_path / "l.csv"
    bad.write_text("path\nx.mp4\n")
    with pytest.raises(DataError, match="video"):
        collect_jobs(bad)


def test_resume_repairs_a_torn_row_keys_by_file_and_prompt_and_retries_failures(tmp_path, monkeypatch):
    make_videos(tmp_path / "v", n=3, bad=("d_bad.mp4",))
    out = tmp_path / "results.csv"
    a = make_assessor()
    a.extractor = PickyExtractor()
    monkeypatch.chdir(tmp_path)
    first = run_batch(a, collect_jobs("v"), out, progress=False)  # relative paths as typed
    assert first.done == 3 and len(first.failed) == 1
    with out.open("a", encoding="utf-8") as f:  # a run killed in the middle of writing a row
        f.write(f"{tmp_path / 'v' / 'zz.mp4'},{tmp_path / 'v' / 'zz.mp4'},,ok,4.1")
    again = run_batch(a, collect_jobs(tmp_path / "v"), out, progress=False)  # the same folder, absolute
    assert again.repaired and again.skipped == 3 and again.done == 0
    assert again.retried == 1 and len(again.failed) == 1  # the bad file is tried again and still fails
    rows = read_rows(out)
    assert all(r["video"] != str(tmp_path / "v" / "zz.mp4") for r in rows)  # the torn row is gone
    assert len(rows) == 5 and rows[-1]["status"] == "error"  # 3 ok + the failure, twice
    twins = tmp_path / "twins.csv"
    twins.write_text("video,prompt\nv/a.mp4,a red car\nv/a.mp4,a blue boat\nv/a.mp4,a red car\n")
    s = run_batch(a, collect_jobs(twins), tmp_path / "twins_out.csv", progress=False)
    assert s.done == 2 and s.skipped == 1  # one video, two prompts: two rows; the repeated pair once
