"""Dataset adapters: turn a labelled (or unlabelled) video list into ``VideoItem`` s.

Kinds (``load_items(kind, path, root)``):

- ``t2vqa``: T2VQA-DB ``info.txt``, one ``file|prompt|MOS`` per line.
- ``csv``: LSVQ / KoNViD-1k style CSV; the video column is the first of ``VIDEO_COLUMNS``
  present, the MOS column the first of ``MOS_COLUMNS`` (optional), the prompt column the first
  of ``PROMPT_COLUMNS`` (optional). A name without a suffix is tried with ``VIDEO_SUFFIXES``.
- ``folder``: every video file under a folder (no labels).
- ``jsonl``: one JSON object per line with ``video`` (or ``path`` / ``video_path``),
  optional ``prompt`` and ``mos`` (or ``score``), optional ``split``.
- ``synth``: a synth ``manifest.jsonl`` (``video``, ``prompt``, ``source``, ``split``,
  ``degradations``, ``scores`` {dimension: 0–1, "overall": 0–1}).

Bad rows (missing file, non-numeric MOS, path outside the root, broken JSON) are returned
as ``BadRow`` with their line number and skipped; the build counts them.
Items without a split get a deterministic one from a hash of their prompt (or, with no
prompt, their video), so all videos of one prompt stay in the same split.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from llmvqa.corpus.paths import relative_video, resolve_video
from llmvqa.errors import DataError

KINDS = ("t2vqa", "csv", "folder", "jsonl", "synth")
SPLITS = ("train", "val", "test")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".webm", ".avi", ".gif", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".yuv")
VIDEO_COLUMNS = ("video", "name", "video_name", "file", "file_name", "filename", "path", "video_path", "flickr_id", "video_id", "vid")
MOS_COLUMNS = ("mos", "MOS", "score", "dmos", "label", "mos_score", "overall")
PROMPT_COLUMNS = ("prompt", "text", "caption")


@dataclass
class VideoItem:
    video: str
    """Path relative to the root (POSIX)."""
    prompt: str = ""
    """Text prompt the video was generated from ("" if none)."""
    mos: float | None = None
    """Human mean opinion score on the dataset's own scale."""
    split: str = ""
    """train / val / test ("" = assign by hash)."""
    source: str = ""
    """Content id: videos of one source never straddle splits."""
    line: int = 0
    """Line number in the input file (for messages)."""
    targets: dict[str, float] | None = None
    """Known 0–1 targets (synth manifests)."""
    degradations: list = field(default_factory=list)
    """What a synth manifest says was done to the video."""


@dataclass(frozen=True)
class BadRow:
    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


def hash_split(key: str, val_frac: float = 0.1, test_frac: float = 0.1) -> str:
    """Deterministic split of a key (same key → same split on every machine)."""
    u = int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if u < test_frac else "val" if u < test_frac + val_frac else "train"


def _parse_mos(text) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise ValueError(text)
    return v


def _locate(root: Path, name: str) -> str | None:
    """Relative path of an existing video named ``name`` (suffix optional), else None."""
    rel = name.strip()
    if (resolve_video(root, rel)).is_file():
        return relative_video(root, resolve_video(root, rel))
    if not Path(rel).suffix:
        for suf in VIDEO_SUFFIXES:
            if resolve_video(root, rel + suf).is_file():
                return relative_video(root, resolve_video(root, rel + suf))
    return None


def _finish(items: list[VideoItem]) -> list[VideoItem]:
    for it in items:
        it.source = it.source or it.video
        if it.split not in SPLITS:
            it.split = hash_split(it.prompt or it.source)
    return items


def _item(root: Path, file: str, line: int, name: str, bad: list[BadRow], **kw) -> VideoItem | None:
    try:
        rel = _locate(root, name)
    except DataError as err:
        bad.append(BadRow(file, line, str(err)))
        return None
    if rel is None:
        bad.append(BadRow(file, line, f"video {name!r} not found under {root}"))
        return None
    return VideoItem(video=rel, line=line, **kw)


def read_t2vqa(path: Path, root: Path) -> tuple[list[VideoItem], list[BadRow]]:
    items, bad = [], []
    with path.open(encoding="utf-8") as f:
        for n, raw in enumerate(f, start=1):
            line = raw.rstrip("\n\r")
            if not line.strip():
                continue
            parts = line.split("|")
            if len(parts) < 3:
                bad.append(BadRow(str(path), n, "expected `file|prompt|MOS`"))
                continue
            name, prompt, mos_text = parts[0], "|".join(parts[1:-1]), parts[-1]
            try:
                mos = _parse_mos(mos_text)
            except ValueError:
                bad.append(BadRow(str(path), n, f"MOS is not a number: {mos_text.strip()!r}"))
                continue
            it = _item(root, str(path), n, name, bad, prompt=prompt.strip(), mos=mos)
            if it:
                items.append(it)
    return items, bad


def _pick(columns: list[str], wanted: tuple[str, ...]) -> str | None:
    lower = {c.strip().lower(): c for c in columns}
    for w in wanted:
        if w.lower() in lower:
            return lower[w.lower()]
    return None


def read_csv(path: Path, root: Path) -> tuple[list[VideoItem], list[BadRow]]:
    items, bad = [], []
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        cols = list(reader.fieldnames or [])
        vcol, mcol, pcol = _pick(cols, VIDEO_COLUMNS), _pick(cols, MOS_COLUMNS), _pick(cols, PROMPT_COLUMNS)
        if vcol is None:
            raise DataError(str(path), f"no video column among {cols}", f"name it one of {VIDEO_COLUMNS}")
        for n, row in enumerate(reader, start=2):
            mos = None
            if mcol is not None:
                try:
                    mos = _parse_mos(row.get(mcol))
                except (TypeError, ValueError):
                    bad.append(BadRow(str(path), n, f"MOS is not a number: {row.get(mcol)!r}"))
                    continue
            split = (row.get("split") or "").strip()
            it = _item(root, str(path), n, row.get(vcol) or "", bad, mos=mos,
                       prompt=(row.get(pcol) or "").strip() if pcol else "", split=split)
            if it:
                items.append(it)
    return items, bad


def read_folder(path: Path, root: Path) -> tuple[list[VideoItem], list[BadRow]]:
    if not path.is_dir():
        raise DataError(str(path), "not a folder", "pass a folder of videos with --kind folder")
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    return [VideoItem(video=relative_video(root, p), line=i) for i, p in enumerate(files, start=1)], []


def _read_json_lines(path: Path, root: Path, synth: bool) -> tuple[list[VideoItem], list[BadRow]]:
    items, bad = [], []
    with path.open(encoding="utf-8") as f:
        for n, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
                if not isinstance(rec, dict):
                    raise ValueError("not an object")
            except ValueError as err:
                bad.append(BadRow(str(path), n, f"not a JSON object ({err})"))
                continue
            name = rec.get("video") or rec.get("path") or rec.get("video_path")
            if not name:
                bad.append(BadRow(str(path), n, "no `video` field"))
                continue
            mos = rec.get("mos", rec.get("score"))
            if mos is not None:
                try:
                    mos = _parse_mos(mos)
                except (TypeError, ValueError):
                    bad.append(BadRow(str(path), n, f"MOS is not a number: {mos!r}"))
                    continue
            kw: dict = {"prompt": str(rec.get("prompt") or ""), "mos": mos, "split": str(rec.get("split") or "")}
            if synth:
                scores = rec.get("scores") or {}
                try:
                    kw["targets"] = {k: float(v) for k, v in scores.items()}
                except (TypeError, ValueError, AttributeError):
                    bad.append(BadRow(str(path), n, f"`scores` must map names to numbers, got {scores!r}"))
                    continue
                kw["degradations"] = list(rec.get("degradations") or [])
                kw["source"] = str(rec.get("source") or "")
                kw["mos"] = None
            it = _item(root, str(path), n, str(name), bad, **kw)
            if it:
                items.append(it)
    return items, bad


def load_items(kind: str, path: str | Path, root: str | Path | None = None) -> tuple[list[VideoItem], list[BadRow]]:
    """Items and bad rows of a dataset. ``root`` defaults to the input's folder (the folder itself for ``folder``)."""
    if kind not in KINDS:
        raise DataError(str(path), f"unknown dataset kind {kind!r}", f"use --kind one of {KINDS}")
    path = Path(path)
    if not path.exists():
        raise DataError(str(path), "input not found", "check --input")
    root = Path(root) if root else (path if kind == "folder" else path.parent)
    if not root.is_dir():
        raise DataError(str(root), "root folder not found", "check --root")
    reader = {"t2vqa": read_t2vqa, "csv": read_csv, "folder": read_folder}.get(kind)
    if reader:
        items, bad = reader(path, root)
    else:
        items, bad = _read_json_lines(path, root, synth=(kind == "synth"))
    return _finish(items), bad
