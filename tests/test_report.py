"""`llmvqa report`: leaderboard numbers, the files, and the page a person sees."""

from __future__ import annotations

import csv
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest

from llmvqa.cli import main
from llmvqa.errors import DataError
from llmvqa.report import bootstrap_interval, build_report, read_results


def write_results(path, per_group=20):
    rng = np.random.default_rng(0)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["video", "path", "prompt", "status", "score", "sharpness_score", "motion_score", "generator"])
        for gen, mu in (("gen_a", 4.2), ("gen_b", 3.1), ("gen_c", 2.4)):
            for i in range(per_group):
                s = float(np.clip(mu + rng.normal(0, 0.3), 1, 5))
                w.writerow([f"{gen}/{i}.mp4", f"/data/{gen}/{i}.mp4", "", "ok", f"{s:.4f}", f"{s - 0.1:.4f}",
                            f"{s + 0.1:.4f}", gen])
        w.writerow(["gen_a/bad.mp4", "/data/gen_a/bad.mp4", "", "error", "", "", "", "gen_a"])


class Table(HTMLParser):
    def __init__(self):
        super().__init__()
        self.cells, self.images, self._in = [], [], False

    def handle_starttag(self, tag, attrs):
        if tag == "td":
            self._in = True
            self.cells.append("")
        if tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_endtag(self, tag):
        if tag == "td":
            self._in = False

    def handle_data(self, data):
        if self._in:
            self.cells[-1] += data


def test_bootstrap_interval_holds_the_mean_and_narrows_with_n():
    rng = np.random.default_rng(1)
    small, big = rng.normal(3, 1, 10), rng.normal(3, 1, 1000)
    lo, hi = bootstrap_interval(small, np.random.default_rng(0))
    assert lo < small.mean() < hi
    lo2, hi2 = bootstrap_interval(big, np.random.default_rng(0))
    assert hi2 - lo2 < (hi - lo) / 4 and lo2 < 3 < hi2


def test_leaderboard_by_column_and_folder(tmp_path):
    results = tmp_path / "results.csv"
    write_results(results)
    board = build_report(read_results(results), "generator")
    assert [g.group for g in board] == ["gen_a", "gen_b", "gen_c"] and [g.n for g in board] == [20, 20, 20]
    assert all(g.low < g.mean < g.high for g in board) and board[0].aspects["sharpness"] < board[0].mean
    assert [g.group for g in build_report(read_results(results), "folder")] == ["gen_a", "gen_b", "gen_c"]
    with pytest.raises(DataError, match="no column"):
        build_report(read_results(results), "model")


def test_report_command_writes_a_self_contained_page(tmp_path, capsys):
    results = tmp_path / "results.csv"
    write_results(results)
    assert main(["report", str(results), "--by", "generator", "--out", str(tmp_path / "rep")]) == 0
    assert capsys.readouterr().out.splitlines()[0].split()[1] == "gen_a"
    for name in ("leaderboard.csv", "leaderboard.json", "score.png", "dimensions.png", "index.html"):
        assert (tmp_path / "rep" / name).stat().st_size > 0
    page = Table()
    page.feed((tmp_path / "rep" / "index.html").read_text())
    assert page.cells[1] == "gen_a" and "gen_c" in page.cells  # rank 1 is the best generator
    assert len(page.images) == 2 and all(src.startswith("data:image/png;base64,") for src in page.images)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium package is not installed")
def test_the_page_renders_in_headless_chromium(tmp_path):
    results = tmp_path / "results.csv"
    write_results(results)
    assert main(["report", str(results), "--by", "generator", "--out", str(tmp_path / "rep")]) == 0
    page = (tmp_path / "rep" / "index.html").resolve()
    dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    assert "gen_a" in dom and 'id="leaderboard"' in dom
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    "--window-size=1200,900", page.as_uri()], capture_output=True, timeout=120)
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.std() > 10  # not a blank page: the table and the plots are drawn


def test_save_report_writes_json_markdown_and_rows_to_a_folder_or_beside_a_file(tmp_path):
    import json

    from llmvqa.evaluation.report import save_report

    paths = save_report(tmp_path / "out", {"srcc": 0.5, "n": 3}, markdown="| a |\n", rows=[{"v": 1}, {"v": 2}],
                        name="report_x", rows_name="clips_x")
    assert json.loads((tmp_path / "out" / "report_x.json").read_text()) == {"srcc": 0.5, "n": 3}
    assert (tmp_path / "out" / "report_x.md").read_text() == "| a |\n"
    assert [json.loads(line) for line in (tmp_path / "out" / "clips_x.jsonl").read_text().splitlines()] == [{"v": 1}, {"v": 2}]
    assert set(paths) == {"json", "markdown", "rows"}
    only = save_report(tmp_path / "bench.json", [1, 2], markdown="x")
    assert json.loads((tmp_path / "bench.json").read_text()) == [1, 2]
    assert (tmp_path / "bench.md").read_text() == "x\n" and set(only) == {"json", "markdown"}
