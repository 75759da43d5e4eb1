"""Reading a synth corpus' ``manifest.jsonl`` (written by ``llmvqa sig synth``, ``llmvqa.corpus.synth``).

One record per clip: ``video`` (relative to the manifest's folder), ``prompt``, ``source``, ``split``,
``scores`` (0–1 targets), ``degradations`` and, for a wrong-prompt clip, ``twin_of``. The dimension stage,
the degradation chains and the evaluation scripts read it through :func:`read_manifest`; the generic
dataset loader (``llmvqa.corpus.datasets``, ``--kind synth``) reads it leniently, bad rows reported.
"""

from __future__ import annotations

import json
from pathlib import Path

from llmvqa.errors import DataError


def read_manifest(manifest: str | Path, split: str | None = None) -> list[dict]:
    """The records of ``split`` (all records when None) in file order.

    Raises ``DataError`` naming the file when it is missing and the file and line when a record is not a
    JSON object with a ``video`` field."""
    path = Path(manifest)
    if not path.is_file():
        raise DataError(str(path), "not found", "build the corpus first: llmvqa sig synth --out data/synth")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as err:
            raise DataError(f"{path}:{n}", f"not JSON ({err})", "re-run llmvqa sig synth") from err
        if not isinstance(rec, dict) or not rec.get("video"):
            raise DataError(f"{path}:{n}", "not a clip record (a JSON object with `video`)", "re-run llmvqa sig synth")
        if split is None or rec.get("split") == split:
            rows.append(rec)
    return rows


__all__ = ["read_manifest"]
