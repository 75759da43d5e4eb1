"""Clip lists of the evaluation scripts: (video path, text prompt or None) of a rated FETV-style folder or of
one split of a synth manifest, and the manifest's records of a split."""

from __future__ import annotations

import json
from pathlib import Path

from llmvqa.errors import DataError


def synth_rows(manifest: str | Path, split: str) -> list[dict]:
    """The records of ``split`` in a synth ``manifest.jsonl``, in file order."""
    path = Path(manifest)
    if not path.is_file():
        raise DataError(str(path), "not found", "build the corpus first: llmvqa sig synth --out data/synth")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if r.get("split") == split]


def synth_items(manifest: str | Path, split: str) -> list[tuple[str, str | None]]:
    """(video path, prompt or None) of every record of ``split``; paths are relative to the manifest's folder."""
    root = Path(manifest).parent
    return [(str(root / r["video"]), r.get("prompt") or None) for r in synth_rows(manifest, split)]


def fetv_items(folder: str | Path) -> list[tuple[str, str | None]]:
    """(video path, prompt or None) of every clip of a rated folder (``labels.csv`` and ``clips/``,
    ``llmvqa.train.human_data.load_rated``)."""
    from llmvqa.train.human_data import load_rated

    return [(str(c.path), c.prompt or None) for c in load_rated(folder)]


__all__ = ["fetv_items", "synth_items", "synth_rows"]
