"""Probe a video without decoding it: stream, frame count, fps, duration, size, rotation.

Containers and codecs go through PyAV (FFmpeg); animated GIFs through PIL; a folder of
numbered images is a video at ``FOLDER_FPS``. Only the first frame is decoded, to read
the rotation side data and to prove the stream decodes at all.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from PIL import Image

from llmvqa.errors import VideoError
from llmvqa.video.config import FOLDER_FPS, VideoLimits
from llmvqa.video.types import VideoInfo

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
"""Files that count as frames in a folder of numbered frames."""

PIL_ERRORS = (OSError, EOFError, IndexError, ValueError, SyntaxError, Image.DecompressionBombError)
"""What PIL raises on a broken or truncated image/GIF (it is not consistent), or on a header that claims
more pixels than PIL will decode (``DecompressionBombError``: a hostile or broken file)."""


def pil_problem(err: Exception, what: str) -> str:
    """The problem part of a VideoError for a PIL failure."""
    if isinstance(err, Image.DecompressionBombError):
        return f"its header claims a picture larger than {Image.MAX_IMAGE_PIXELS} pixels (refused before decoding)"
    return f"{what} ({err})"

FORMATS_HINT = "use a video file (mp4, webm, mkv, avi, mov, gif) or a folder of numbered png/jpg frames"

T = TypeVar("T")


def natural_key(name: str) -> list:
    """Sort key that orders "frame2.png" before "frame10.png"."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def frame_files(folder: Path) -> list[Path]:
    """The image files of a numbered-frames folder, in natural order."""
    files = [f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=lambda f: natural_key(f.name))


def run_with_timeout(fn: Callable[[threading.Event], T], limits: VideoLimits, subject: str, what: str) -> T:
    """Run ``fn(cancel)`` in a daemon worker thread; give up after ``limits.timeout_s`` with a VideoError.

    The worker cannot be killed, so ``cancel`` is set on timeout and decoders check it
    between frames to stop early; a daemon thread never blocks interpreter exit.
    """
    box: dict = {}
    done = threading.Event()
    cancel = threading.Event()

    def work() -> None:
        try:
            box["result"] = fn(cancel)
        except BaseException as err:  # noqa: BLE001 — re-raised in the caller's thread
            box["error"] = err
        finally:
            done.set()

    threading.Thread(target=work, name="llmvqa-video", daemon=True).start()
    if not done.wait(limits.timeout_s):
        cancel.set()
        raise VideoError(
            subject,
            f"{what} did not finish within timeout_s={limits.timeout_s:g} s (huge file, slow codec or stalled read)",
            limits.fix("timeout_s", limits.timeout_s * 4),
        )
    if "error" in box:
        raise box["error"]
    return box["result"]


def probe(path: str | Path, limits: VideoLimits | None = None) -> VideoInfo:
    """Learn a video's size, length and rotation without decoding it; raises VideoError if it is unusable."""
    limits = limits or VideoLimits()
    return run_with_timeout(lambda cancel: probe_now(path, limits), limits, str(path), "probing")


def probe_now(path: str | Path, limits: VideoLimits) -> VideoInfo:
    """``probe`` in the calling thread (the loader runs it inside its own timeout)."""
    p = Path(path)
    subject = str(p)
    if not p.exists():
        raise VideoError(subject, "file not found", "check the path (relative paths are taken from the current folder)")
    if p.is_dir():
        info = _probe_folder(p)
    else:
        size = p.stat().st_size
        if size == 0:
            raise VideoError(subject, "the file is empty (0 bytes)", "re-download or re-export the video")
        if size > limits.max_file_bytes:
            raise VideoError(
                subject,
                f"the file has {size} bytes, above the limit of {limits.max_file_bytes}",
                limits.fix("max_file_bytes", size),
            )
        with open(p, "rb") as f:
            head = f.read(6)
        info = _probe_gif(p) if head in (b"GIF87a", b"GIF89a") else _probe_av(p)
    check_limits(info, limits)
    return info


def check_limits(info: VideoInfo, limits: VideoLimits) -> None:
    """Raise VideoError when the video has too few frames or exceeds a size/length cap."""
    if info.num_frames < limits.min_frames:
        raise VideoError(
            info.path,
            f"has {info.num_frames} frame(s), fewer than the {limits.min_frames} needed",
            "use a video with at least two frames (a still image is not a video)",
        )
    if min(info.width, info.height) < limits.min_side:
        raise VideoError(
            info.path,
            f"frames are {info.width}x{info.height} pixels, smaller than min_side={limits.min_side} on a side",
            "use a video at least 16 px wide and high (the statistics and encoders cannot measure less)",
        )
    pixels = info.width * info.height
    if pixels > limits.max_pixels:
        raise VideoError(
            info.path,
            f"frames are {info.width}x{info.height} = {pixels} pixels, above max_pixels={limits.max_pixels}",
            limits.fix("max_pixels", pixels) + " or downscale the video first",
        )
    if info.duration > limits.max_duration_s:
        raise VideoError(
            info.path,
            f"lasts {info.duration:.1f} s, above max_duration_s={limits.max_duration_s:g}",
            limits.fix("max_duration_s", info.duration) + " or cut the video first",
        )


def _probe_folder(folder: Path) -> VideoInfo:
    files = frame_files(folder)
    if not files:
        raise VideoError(str(folder), "the folder holds no image frames", FORMATS_HINT)
    try:
        with Image.open(files[0]) as im:
            width, height = im.size
    except PIL_ERRORS as err:
        raise VideoError(str(files[0]), pil_problem(err, "not a readable image"), "remove or replace the broken frame") from err
    n = len(files)
    return VideoInfo(
        path=str(folder),
        width=width,
        height=height,
        num_frames=n,
        fps=FOLDER_FPS,
        duration=n / FOLDER_FPS,
        codec=files[0].suffix.lower().lstrip("."),
        container="frames",
    )


def _probe_gif(path: Path) -> VideoInfo:
    try:
        with Image.open(path) as im:
            width, height = im.size
            n = getattr(im, "n_frames", 1)
            durations = []
            for i in range(n):
                im.seek(i)
                durations.append(im.info.get("duration", 0) or 0)
    except PIL_ERRORS as err:
        raise VideoError(str(path), pil_problem(err, "a corrupt or truncated GIF"), "re-export the GIF") from err
    mean_ms = sum(durations) / len(durations)
    fps = 1000.0 / mean_ms if mean_ms > 0 else 10.0  # browsers show 0-delay GIFs at 10 fps
    return VideoInfo(
        path=str(path),
        width=width,
        height=height,
        num_frames=n,
        fps=fps,
        duration=n / fps,
        codec="gif",
        container="gif",
    )


def _probe_av(path: Path) -> VideoInfo:
    import av  # PyAV, imported where it is used: cached-feature users (training) need no FFmpeg
    subject = str(path)
    try:
        container = av.open(subject, metadata_errors="ignore")
    except av.FFmpegError as err:
        raise VideoError(subject, f"not a readable video ({_reason(err)})", FORMATS_HINT) from err
    with container:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams})
            problem = (
                "holds only audio, no video stream"
                if kinds == ["audio"]
                else f"has no video stream (streams: {kinds or 'none'})"
            )
            raise VideoError(subject, problem, FORMATS_HINT)
        stream = container.streams.video[0]
        ctx = stream.codec_context
        codec = ctx.name if ctx is not None and ctx.codec is not None else ""
        if not codec or codec == "none":
            raise VideoError(
                subject,
                "the video codec is unknown or has no decoder in this FFmpeg build (unsupported codec)",
                "re-encode to H.264 (e.g. ffmpeg -i in -c:v libx264 out.mp4)",
            )
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        duration = 0.0
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / av.time_base
        num_frames = int(stream.frames or 0)
        if num_frames <= 0 and duration > 0 and fps > 0:
            num_frames = int(round(duration * fps))  # webm/mkv often store no frame count
        first = _first_frame(container, stream, subject)
        if num_frames <= 0:
            num_frames = _count_packets(subject)
        if fps <= 0:
            fps = num_frames / duration if duration > 0 else 25.0
        if duration <= 0:
            duration = num_frames / fps
        rotation = (-int(round((first.rotation or 0) / 90.0)) * 90) % 360  # display matrix is counter-clockwise
        width, height = (first.height, first.width) if rotation in (90, 270) else (first.width, first.height)
        fmt = container.format.name.split(",")
        suffix = path.suffix.lower().lstrip(".")
        return VideoInfo(
            path=subject,
            width=width,
            height=height,
            num_frames=num_frames,
            fps=fps,
            duration=duration,
            rotation=rotation,
            codec=codec,
            container=suffix if suffix in fmt else fmt[0],
        )


def _first_frame(container, stream, subject: str):
    import av  # PyAV, imported where it is used: cached-feature users (training) need no FFmpeg
    try:
        for frame in container.decode(stream):
            return frame
    except av.FFmpegError as err:
        raise VideoError(
            subject,
            f"the video stream does not decode ({_reason(err)})",
            "the file is corrupt; re-encode or re-download it",
        ) from err
    raise VideoError(
        subject, "the video stream holds no decodable frame (truncated or corrupt)", "re-encode or re-download the file"
    )


def _count_packets(subject: str) -> int:
    """Frame count by demuxing (no decoding) when the container states neither count nor duration."""
    import av  # PyAV, imported where it is used: cached-feature users (training) need no FFmpeg
    with av.open(subject, metadata_errors="ignore") as container:
        stream = container.streams.video[0]
        return sum(1 for packet in container.demux(stream) if packet.size > 0)


def _reason(err: Exception) -> str:
    return getattr(err, "strerror", None) or str(err) or type(err).__name__
