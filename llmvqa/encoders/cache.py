"""Feature cache: one safetensors file per (video content, encoder settings).

File ``<root>/<content_hash[:16]>-<encoder_key>.safetensors`` holds

- tensors ``tokens.<stream>`` (T, D) float32, ``alignment_basis`` (E,) float32 when present,
  ``series.<name>`` (T,) float32 per-frame series, and ``stats`` (S,) float64 whose names are the JSON list ``stats_names`` in the metadata;
- metadata ``format``, ``stats_names`` and every ``VideoFeatures.meta`` entry as ``meta.<key>``.

Keys use the content (not the path), so a renamed or copied video still hits; a change
of any encoder setting changes ``encoder_key`` and misses. Writes are atomic (temporary
file + rename), so a crash never leaves a half-written entry behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from llmvqa.errors import DataError, VideoError
from llmvqa.features import VideoFeatures

CACHE_FORMAT = "llmvqa-features/1"
_CHUNK = 1 << 20


def cache_root() -> Path:
    """Where llmvqa keeps what it builds once per machine: converted backbones, the class-name embedding table
    (``LLMVQA_CACHE`` or ``~/.cache/llmvqa``)."""
    return Path(os.environ.get("LLMVQA_CACHE", Path.home() / ".cache" / "llmvqa"))


def content_hash(path: str | os.PathLike) -> str:
    """sha256 hex digest of a video's bytes (streamed); for a frame folder, of its sorted file names + bytes."""
    p = Path(path)
    h = hashlib.sha256()
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file())
        if not files:
            raise VideoError(str(p), "is an empty folder", "give a video file or a folder of numbered frames")
        for f in files:
            h.update(f.relative_to(p).as_posix().encode() + b"\0")
            _update_with_file(h, f)
            h.update(b"\0")
    elif p.is_file():
        _update_with_file(h, p)
    else:
        raise VideoError(str(p), "does not exist", "check the path")
    return h.hexdigest()


def _update_with_file(h: hashlib._Hash, path: Path) -> None:
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
    except OSError as err:
        raise VideoError(str(path), f"cannot be read ({err.strerror or err})", "check the file's permissions") from err


class FeatureCache:
    """A folder of cached ``VideoFeatures`` (created on first write)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path_for(self, content_hash: str, encoder_key: str) -> Path:
        return self.root / f"{content_hash[:16]}-{encoder_key}.safetensors"

    def get(self, path: str | os.PathLike, encoder_key: str, content_hash_: str | None = None) -> VideoFeatures | None:
        """Cached features of the video at ``path`` for ``encoder_key``, or None on a miss.

        ``content_hash_`` skips hashing the file again when the caller already has it.
        An unreadable cache file counts as a miss (it is overwritten by the next ``put``).
        """
        digest = content_hash_ or content_hash(path)
        file = self.path_for(digest, encoder_key)
        if not file.is_file():
            return None
        try:
            features = load_features(file)
        except (SafetensorError, OSError, ValueError, KeyError):
            return None
        if features.meta.get("content_hash") != digest or features.meta.get("encoder_key") != encoder_key:
            return None
        features.meta["path"] = str(path)
        return features

    def put(self, features: VideoFeatures) -> Path:
        """Store ``features`` (its meta must name ``content_hash`` and ``encoder_key``); returns the file."""
        missing = [k for k in ("content_hash", "encoder_key") if not features.meta.get(k)]
        if missing:
            raise ValueError(f"VideoFeatures.meta lacks {missing}; FeatureExtractor.extract fills them")
        file = self.path_for(features.meta["content_hash"], features.meta["encoder_key"])
        save_features(features, file)
        return file


def save_features(features: VideoFeatures, file: str | os.PathLike) -> None:
    """Write ``features`` to one safetensors file atomically."""
    file = Path(file)
    file.parent.mkdir(parents=True, exist_ok=True)
    names = list(features.stats)
    tensors = {f"tokens.{s}": t.detach().to("cpu", torch.float32).contiguous() for s, t in features.tokens.items()}
    tensors.update({f"series.{k}": v.detach().to("cpu", torch.float32).contiguous() for k, v in features.series.items()})
    tensors["stats"] = torch.tensor([float(features.stats[n]) for n in names], dtype=torch.float64)
    if features.alignment_basis is not None:
        tensors["alignment_basis"] = features.alignment_basis.detach().to("cpu", torch.float32).contiguous()
    metadata = {"format": CACHE_FORMAT, "stats_names": json.dumps(names)}
    metadata.update({f"meta.{k}": str(v) for k, v in features.meta.items()})
    fd, tmp = tempfile.mkstemp(prefix=f".{file.name}.", suffix=".tmp", dir=file.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_features(file: str | os.PathLike) -> VideoFeatures:
    """Read a file written by ``save_features``."""
    from safetensors import safe_open

    with safe_open(str(file), framework="pt") as f:
        metadata = f.metadata() or {}
    if metadata.get("format") != CACHE_FORMAT:
        raise ValueError(f"{file}: not an {CACHE_FORMAT} file (format={metadata.get('format')!r})")
    tensors = load_file(str(file))
    names = json.loads(metadata["stats_names"])
    values = tensors["stats"].tolist()
    if len(names) != len(values):
        raise ValueError(f"{file}: {len(names)} stats names but {len(values)} values")
    tokens = {k.removeprefix("tokens."): v for k, v in tensors.items() if k.startswith("tokens.")}
    meta = {k.removeprefix("meta."): v for k, v in metadata.items() if k.startswith("meta.")}
    return VideoFeatures(
        tokens=tokens,
        stats=dict(zip(names, values, strict=True)),
        alignment_basis=tensors.get("alignment_basis"),
        meta=meta,
        series={k.removeprefix("series."): v for k, v in tensors.items() if k.startswith("series.")},
    )


def get_or_extract(extractor, path: str | os.PathLike, cache: FeatureCache | None, *, key: str | None = None,
                   compute_missing: bool = True) -> tuple[VideoFeatures, bool]:
    """Features of ``path`` from ``cache`` when present, else extracted (and stored). Returns (features, was_cached).

    The one get-or-extract of the project (rating, training, evaluation). ``extractor``: a FeatureExtractor, or a
    function that builds one, called only when a video must be extracted (then ``key`` names the encoder
    settings). ``compute_missing=False``: a video missing from the cache is a DataError instead."""
    build = extractor if callable(extractor) and not hasattr(extractor, "extract") else (lambda: extractor)
    if cache is None:
        if not compute_missing:
            raise DataError(str(path), "no feature cache to read", "pass a cache folder or allow extraction")
        return build().extract(path), False
    digest = content_hash(path)
    hit = cache.get(path, key or build().key, content_hash_=digest)
    if hit is not None:
        return hit, True
    if not compute_missing:
        raise DataError(str(path), "features not in the cache",
                        "extract them first (`llmvqa train --fill-cache` or `llmvqa features`), "
                        "or set data.compute_missing: true")
    features = build().extract(path, content_hash_=digest)
    cache.put(features)
    return features, False
