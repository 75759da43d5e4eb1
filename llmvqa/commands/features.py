"""``llmvqa features VIDEO... [--out DIR] [--nframes N]``: extract and cache encoder features.

Each VIDEO is a video file, a folder of numbered frames, or a folder holding videos
(searched recursively). Features go to ``<out>/<hash>-<key>.safetensors`` (see
llmvqa.encoders.cache); videos already there are skipped. A video that fails is
recorded in ``<out>/failures.jsonl`` ({"path", "error"}) and the run carries on.
``<out>/index.jsonl`` lists every video done or cached (this run and earlier ones), one line
per path, with its feature file and statistics. Failing to load the models stops the run.

Exit code: 0 when every video succeeded, 1 when some failed (the others are still written).

Example (CPU): ``llmvqa features clips/ --out feats --nframes 16``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from llmvqa.errors import LlmvqaError

VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".gif", ".mpg", ".mpeg", ".wmv", ".flv", ".ts"}
)
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})
SUMMARY_STATS: tuple[tuple[str, str], ...] = (
    ("sharpness", "sharp"),
    ("noise", "noise"),
    ("blockiness", "block"),
    ("brightness", "bright"),
    ("contrast", "contr"),
    ("color_cast", "cast"),
    ("dynamic_degree", "dyn"),
    ("jitter", "jitter"),
    ("flicker", "flick"),
    ("warping_error", "warp"),
    ("frozen_ratio", "frozen"),
    ("nonrigid_motion", "nonrigid"),
    ("ghosting", "ghost"),
    ("semantic_consistency", "sem_cons"),
    ("semantic_mutation", "sem_mut"),
)
"""(statistic, column header) of the summary table."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "features",
        help="extract and cache technical/motion/semantic features of videos",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files, frame folders or folders of videos")
    p.add_argument("--out", default="llmvqa_features", help="feature folder (default: %(default)s)")
    p.add_argument("--nframes", type=int, default=None, help="frames sampled per video (default: EncoderConfig's, 16)")
    p.add_argument("--device", default="cpu", help="torch device for the encoders (default: %(default)s)")
    p.set_defaults(func=run)


def expand_videos(inputs: list[str]) -> list[Path]:
    """Video paths from files and folders (a folder of images is one frame-folder video)."""
    out: list[Path] = []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            videos = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in VIDEO_SUFFIXES)
            if videos:
                out.extend(videos)
                continue
        out.append(p)  # a file, a frame folder, or a missing path (its error is recorded)
    return list(dict.fromkeys(out))


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from llmvqa.encoders.cache import FeatureCache, content_hash
    from llmvqa.encoders.config import EncoderConfig

    config = EncoderConfig() if args.nframes is None else EncoderConfig(nframes=args.nframes)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = FeatureCache(out)
    key = config.key()
    failures_file = out / "failures.jsonl"
    failures_file.unlink(missing_ok=True)
    videos = expand_videos(args.videos)
    extractor = None
    rows: list[tuple[str, dict[str, float]]] = []
    counts = {"done": 0, "cached": 0, "failed": 0}
    index: dict[str, dict] = _read_index(out / "index.jsonl")
    for video in tqdm(videos, desc="features", unit="video", file=sys.stderr):
        try:
            digest = content_hash(video)
            feats = cache.get(video, key, content_hash_=digest)
        except LlmvqaError as err:
            _record_failure(failures_file, video, err, counts)
            continue
        cached = feats is not None
        if feats is None:
            if extractor is None:  # models load only when something needs extracting; a load error stops the run
                from llmvqa.encoders.pipeline import FeatureExtractor

                extractor = FeatureExtractor(config, device=args.device)
                if len(videos) >= 16:  # many videos: faster encoders, the same features to float rounding
                    extractor.optimize_for_inference()
            try:
                feats = extractor.extract(video, content_hash_=digest)
            except Exception as err:  # noqa: BLE001 - one bad video must not stop a batch
                _record_failure(failures_file, video, err, counts)
                continue
            cache.put(feats)
        counts["cached" if cached else "done"] += 1
        rows.append((str(video), feats.stats))
        index[str(video)] = {"path": str(video), "file": cache.path_for(digest, key).name, "encoder_key": key,
                             "stats": feats.stats}  # fmt: skip
    _write_index(out / "index.jsonl", index)
    print(format_table(rows))
    print(f"{counts['done']} done, {counts['cached']} cached, {counts['failed']} failed -> {out}")
    if counts["failed"]:
        print(f"failures: {failures_file}")
    return 1 if counts["failed"] else 0


def _record_failure(file: Path, video: Path, err: Exception, counts: dict[str, int]) -> None:
    from tqdm import tqdm

    counts["failed"] += 1
    message = str(err) if isinstance(err, LlmvqaError) else f"{type(err).__name__}: {err}"
    with open(file, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"path": str(video), "error": message}) + "\n")
    tqdm.write(f"failed: {message}", file=sys.stderr)


def _read_index(file: Path) -> dict[str, dict]:
    """Earlier runs' entries by path (a damaged line is dropped)."""
    entries: dict[str, dict] = {}
    if file.is_file():
        for line in file.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
                entries[row["path"]] = row
            except (ValueError, KeyError, TypeError):
                continue
    return entries


def _write_index(file: Path, entries: dict[str, dict]) -> None:
    tmp = file.with_name(file.name + ".tmp")
    tmp.write_text("".join(json.dumps(row) + "\n" for row in entries.values()), encoding="utf-8")
    os.replace(tmp, file)


def format_table(rows: list[tuple[str, dict[str, float]]]) -> str:
    """One line per video, the main statistics as columns."""
    headers = ["video", *(h for _, h in SUMMARY_STATS)]
    body = [[_short(path), *(_fmt(stats.get(name)) for name, _ in SUMMARY_STATS)] for path, stats in rows]
    widths = [max(len(r[i]) for r in [headers, *body]) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in [headers, *body]
    ]
    return "\n".join(lines)


def _short(path: str, width: int = 32) -> str:
    return path if len(path) <= width else "…" + path[-(width - 1) :]


def _fmt(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.3g}"
