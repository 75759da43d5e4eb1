"""A built wheel carries the prompts and the shipped model: installed outside the checkout, the CLI runs
from any directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The wheel of this checkout, installed (without dependencies: they are this environment's) into a folder."""
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp / "dist"), str(ROOT)], check=True, capture_output=True)
    wheel = next((tmp / "dist").glob("llmvqa-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(tmp / "site"),
                    str(wheel)], check=True, capture_output=True)
    return tmp / "site"


def run(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(site))  # ahead of the editable checkout on sys.path
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_the_wheel_runs_the_cli_from_any_directory(installed, tmp_path):
    where = run(installed, tmp_path, "-c", "import llmvqa, llmvqa.assessor as a; print(llmvqa.__file__); "
                "print(a.resolve_model_dir(None))")
    module, model = where.stdout.split()
    assert module.startswith(str(installed)) and model.startswith(str(installed)), where.stdout
    assert run(installed, tmp_path, "-m", "llmvqa", "--help").returncode == 0
    out = run(installed, tmp_path, "-m", "llmvqa", "rate", "example:carphone_pristine", "--no-explain", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)  # JSON and only JSON on stdout
    assert 1 <= result["score"] <= 5 and result["meta"]["model"].startswith(str(installed))
