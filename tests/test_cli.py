"""`llmvqa rate / chat / batch` through llmvqa.cli.main (fake model) and as a subprocess (errors, real model)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_assessor import expected_overall, make_assessor

import llmvqa.cli
from llmvqa.assessor import Assessor
from llmvqa.result import bar
from llmvqa.video.writer import write_video

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def fake_cli(monkeypatch):
    """main() with only the interface commands and Assessor.from_pretrained returning one fake assessor."""
    assessor = make_assessor()
    loaded = []

    def from_pretrained(path_or_id=None, device=None, encoders=True):
        loaded.append(path_or_id)
        return assessor

    monkeypatch.setattr(llmvqa.cli, "COMMANDS", ("rate", "chat", "batch", "serve"))
    monkeypatch.setattr(Assessor, "from_pretrained", staticmethod(from_pretrained))
    assessor.loaded = loaded
    return assessor


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    return write_video(tmp_path_factory.mktemp("v") / "clip.mp4", rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8))


def test_rate_json(fake_cli, clip, capsys):
    assert llmvqa.cli.main(["rate", str(clip), "--json", "--prompt", "a cat", "--model", "some/dir"]) == 0
    out = json.loads(capsys.readouterr().out)
    import jsonschema

    from llmvqa.result import json_schema

    jsonschema.validate(out, json_schema())  # what `rate --json` prints satisfies the published schema
    assert out["score"] == pytest.approx(expected_overall(clip))
    assert out["prompt"] == "a cat" and "prompt_alignment" in out["dimensions"] and out["justification"]
    assert fake_cli.loaded == ["some/dir"]


def test_rate_text_report(fake_cli, clip, capsys):
    assert llmvqa.cli.main(["rate", str(clip), "--no-explain"]) == 0
    text = capsys.readouterr().out
    result = fake_cli.rate(clip, explain=False)
    assert f"{result.score:.2f} / 5" in text and "Why:" not in text
    flicker = result.dimensions["flicker"]
    assert any(ln.strip().startswith("flicker") and bar(flicker.score) in ln and flicker.level in ln
               for ln in text.splitlines())
    assert llmvqa.cli.main(["rate", str(clip), "--no-explain", "--no-dimensions"]) == 0
    text = capsys.readouterr().out
    assert "█" in text and not any(ln.strip().startswith("flicker") for ln in text.splitlines())


def test_chat_messages_are_multi_turn(fake_cli, clip, capsys):
    code = llmvqa.cli.main(["chat", str(clip), "-m", "why is the motion poor?", "-m", "which part looks worst?"])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("answer 3") and lines[1].endswith("which part looks worst?")
    first, second = fake_cli.model.chats
    assert [m["role"] for m in second] == ["user", "assistant", "user"]
    assert second[1]["content"] == lines[0] and second[0] == first[0]
    assert fake_cli.extractor.calls == 1  # features extracted once for all turns


def test_chat_reads_stdin_until_exit(fake_cli, clip, capsys, monkeypatch):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("first?\n\nexit\nnever asked\n"))
    assert llmvqa.cli.main(["chat", str(clip)]) == 0
    assert len(fake_cli.model.chats) == 1 and fake_cli.model.chats[0][-1]["content"] == "first?"


def test_batch_command(fake_cli, clip, tmp_path, capsys):
    listing = tmp_path / "list.csv"
    listing.write_text(f"video,prompt\n{clip},a cat\nmissing.mp4,\n", encoding="utf-8")
    out = tmp_path / "r.csv"
    assert llmvqa.cli.main(["batch", str(listing), "--out", str(out), "--no-progress", "--workers", "0"]) == 1
    err = capsys.readouterr().err
    assert "1 failed" in err and "missing.mp4" in err
    rows = list(csv.DictReader(out.open()))
    assert [r["status"] for r in rows] == ["ok", "error"] and "not found" in rows[1]["error"]


def test_serve_refuses_a_missing_root(fake_cli, tmp_path, capsys):
    assert llmvqa.cli.main(["serve", "--allowed-root", str(tmp_path / "nope")]) == 2
    assert "--allowed-root" in capsys.readouterr().err


def _run(*args, timeout=120):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "llmvqa", *args], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=REPO)


def _one_line_error(proc, *words):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("llmvqa rate: error:")
    for w in words:
        assert w in lines[0]


def test_a_reader_that_closes_the_pipe_stops_the_command_quietly():
    """`llmvqa … | head`: when the reader leaves, the command ends without a traceback."""
    code = ("import sys, llmvqa.cli as c, llmvqa.commands.rate as r\n"
            "def loud(args):\n"
            "    for _ in range(20000): print('{\"score\": 3.77}')\n"
            "r.run = loud\n"
            "sys.exit(c.main(['rate', 'x.mp4', '--json']))\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout.read(10) == b'{"score": '
    proc.stdout.close()  # what `head -c 10` does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_missing_file_is_one_line(tmp_path):
    _one_line_error(_run("rate", str(tmp_path / "nope.mp4")), "nope.mp4", "not found")


def test_text_file_renamed_mp4_is_one_line(tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("just some text, not a video\n" * 50)
    _one_line_error(_run("rate", str(fake)), "notes.mp4")


@pytest.mark.slow
def test_rate_end_to_end_with_default_model():
    proc = _run("rate", "example:bikes", "--json", "--no-explain", timeout=900)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    import jsonschema

    from llmvqa.result import json_schema

    jsonschema.validate(out, json_schema())
    assert 1 <= out["score"] <= 5 and out["level"] in ("excellent", "good", "fair", "poor", "bad")
    assert "sharpness" in out["dimensions"] and out["statistics"]["sharpness"] > 0
    text = _run("rate", "example:carphone", timeout=900)
    assert text.returncode == 0, text.stderr
    assert "Why:" in text.stdout and "/ 100" in text.stdout


def test_help_imports_no_heavy_library():
    """`llmvqa --help` and every `llmvqa CMD --help` build the parsers without torch, scipy, sklearn or
    transformers (the commands import them when they run); start-up time is measured in the README, not here."""
    import subprocess
    import sys

    code = ("import sys; from llmvqa.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'scipy', 'sklearn', 'transformers', 'peft') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_dimensions_is_one_switch_with_one_meaning_in_rate_batch_and_evaluate(tmp_path):
    from llmvqa.cli import build_parser

    parser = build_parser()
    base = {"rate": ["rate", "v.mp4"], "batch": ["batch", "videos", "--out", str(tmp_path / "r.csv")],
            "evaluate": ["evaluate", "data.csv"]}
    defaults = {name: parser.parse_args(argv).dimensions for name, argv in base.items()}
    assert defaults == {"rate": True, "batch": True, "evaluate": None}  # evaluate: where the data has levels
    for argv in base.values():
        assert parser.parse_args([*argv, "--no-dimensions"]).dimensions is False
        assert parser.parse_args([*argv, "--dimensions"]).dimensions is True


@pytest.mark.slow
def test_the_shipped_model_ranks_the_distorted_carphone_below_the_pristine_one():
    """Issue 17: overall and on the technical group (the shipped model, through the command users run)."""
    scores = {}
    for name in ("carphone_pristine", "carphone_distorted"):
        proc = _run("rate", f"example:{name}", "--json", "--no-explain", timeout=900)
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        scores[name] = (out["score"], out["groups"]["technical"]["score"])
    assert scores["carphone_distorted"][0] < scores["carphone_pristine"][0]
    assert scores["carphone_distorted"][1] < scores["carphone_pristine"][1]
