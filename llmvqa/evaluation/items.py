"""Clip lists of the evaluation scripts: (video path, text prompt or None) of a rated FETV-style folder or of
one split of a synth manifest, and the manifest's records of a split."""

from __future__ import annotations

from pathlib import Path

from llmvqa.corpus.manifest import read_manifest


def synth_rows(manifest: str | Path, split: str) -> list[dict]:
    """The records of ``split`` in a synth ``manifest.jsonl``, in file order (``llmvqa.corpus.manifest``)."""
    return read_manifest(manifest, split)


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
