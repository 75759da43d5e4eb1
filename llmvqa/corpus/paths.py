"""Video paths in instruct records are relative to a root; resolve them safely.

A record written on one machine must load on another, so records never store
absolute paths. Reading a record must never reach outside the root it names
(an absolute path or ``..`` that escapes is refused with a DataError).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

from llmvqa.errors import DataError


def resolve_video(root: str | Path, rel: str) -> Path:
    """Absolute path of ``rel`` under ``root``; DataError if it is absolute or leaves the root."""
    if not rel or not str(rel).strip():
        raise DataError(str(root), "empty video path", "give each record a path relative to the root")
    if PurePosixPath(rel).is_absolute() or PureWindowsPath(rel).is_absolute() or PureWindowsPath(rel).drive:
        raise DataError(rel, "absolute video path in a record", "store paths relative to the dataset root (--root)")
    # lexical normalisation: `..` is judged on the path as written, symlinks inside the root are allowed
    root_abs = Path(os.path.abspath(root))
    path = Path(os.path.normpath(root_abs / rel))
    if path != root_abs and root_abs not in path.parents:
        raise DataError(rel, f"video path leaves the root {root_abs}", "remove the '..' parts or choose a higher --root")
    return path


def relative_video(root: str | Path, path: str | Path) -> str:
    """POSIX path of ``path`` relative to ``root`` (for writing records); DataError if outside it."""
    root_abs = Path(os.path.abspath(root))
    p = Path(path)
    p = Path(os.path.normpath(p if p.is_absolute() else root_abs / p))
    try:
        return p.relative_to(root_abs).as_posix()
    except ValueError:
        raise DataError(str(path), f"video is outside the root {root_abs}", "choose a --root that contains every video") from None
