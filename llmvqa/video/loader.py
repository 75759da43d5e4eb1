"""The one video loader: probe, pick evenly spaced frames, decode only those.

Sampling follows qwen-vl-utils: either ``nframes`` or ``fps`` (never both), the count
capped by the real frame count, indices ``round(linspace(0, N-1, n))``. Decoding tries
decord first (fast random access) and falls back to PyAV (seek + decode to the needed
timestamps) when decord fails, reports no frame count, or the video carries rotation
metadata (decord ignores it and mis-sizes such frames). GIFs go through PIL, folders of
numbered frames through PIL. Probe + decode run in a worker thread under
``VideoLimits.timeout_s``; only the sampled frames are ever held in memory.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from llmvqa.errors import ConfigError, VideoError
from llmvqa.video.config import VideoLimits
from llmvqa.video.probe import PIL_ERRORS, frame_files, pil_problem, probe_now, run_with_timeout
from llmvqa.video.types import Clip, VideoInfo

log = logging.getLogger(__name__)

DEFAULT_NFRAMES = 16
SEEK_GAP_S = 2.0
"""PyAV seeks instead of decoding forward when the next target is this far ahead."""
DECODE_THREADS = 0
"""decord's decoding threads: 0 lets it pick (fastest wall time for one video); a batch worker that shares the CPUs
with others sets its own thread count (``set_decode_threads``): one thread spends a fifth less CPU per video."""


def set_decode_threads(threads: int) -> None:
    """Decode with ``threads`` threads in this process from now on (0: decord picks)."""
    global DECODE_THREADS
    if not isinstance(threads, int) or threads < 0:
        raise ConfigError("set_decode_threads", f"threads must be an integer >= 0, got {threads!r}", "pass 0 or more")
    DECODE_THREADS = threads


class _DecodeFailed(Exception):
    """A backend could not decode; the next backend is tried."""


def sample_indices(
    num_frames: int, video_fps: float, *, nframes: int | None = None, fps: float | None = None
) -> np.ndarray:
    """Evenly spaced frame indices, int64 (n,): ``nframes`` of them, or ``fps`` per second of video.

    The count is capped by ``num_frames``; sampling by fps takes at least two frames.
    """
    if nframes is not None and fps is not None:
        raise ConfigError("load_clip", f"both nframes={nframes} and fps={fps} were given", "pass only one of them")
    if nframes is None and fps is None:
        nframes = DEFAULT_NFRAMES
    if nframes is not None:
        if int(nframes) < 1:
            raise ConfigError("load_clip", f"nframes must be >= 1, got {nframes}", "pass nframes=16 for example")
        n = int(nframes)
    else:
        if not fps > 0:
            raise ConfigError("load_clip", f"fps must be > 0, got {fps}", "pass fps=2 for example")
        n = max(2, int(round(num_frames / video_fps * fps)))
    n = max(1, min(n, num_frames))
    return np.linspace(0, num_frames - 1, n).round().astype(np.int64)  # (n,)


def load_clip(
    path: str | Path, *, nframes: int | None = None, fps: float | None = None, limits: VideoLimits | None = None,
    first_frames: int | None = None,
) -> Clip:
    """Probe ``path`` and decode evenly sampled frames: Clip with uint8 (T, H, W, 3) RGB, rotation applied.

    Exactly one of ``nframes`` / ``fps`` (default ``nframes=16``). ``first_frames``: sample among the first
    that many frames only (``nframes=first_frames=N``: the first N frames, every one). Raises VideoError for
    anything wrong with the video, ConfigError for bad arguments.
    """
    if first_frames is not None and first_frames < 1:
        raise ConfigError("load_clip", f"first_frames must be ≥ 1, got {first_frames}", "pass a frame count")
    limits = limits or VideoLimits()
    if nframes is not None and fps is not None:
        sample_indices(2, 1.0, nframes=nframes, fps=fps)  # raises the ConfigError
    return run_with_timeout(
        lambda cancel: _load(Path(path), nframes, fps, limits, cancel, first_frames), limits, str(path),
        "probing and decoding"
    )


def _load(path: Path, nframes: int | None, fps: float | None, limits: VideoLimits, cancel: threading.Event,
          first_frames: int | None = None) -> Clip:
    info = probe_now(path, limits)

    def sample(num_frames: int) -> np.ndarray:
        num_frames = min(num_frames, first_frames) if first_frames else num_frames
        indices = sample_indices(num_frames, info.fps, nframes=nframes, fps=fps)
        if len(indices) > limits.max_sampled_frames:
            raise VideoError(
                str(path),
                f"sampling asks for {len(indices)} frames, above max_sampled_frames={limits.max_sampled_frames}",
                limits.fix("max_sampled_frames", len(indices)) + ", or sample fewer (lower nframes or fps)",
            )
        return indices

    times = None  # the decoder's own presentation times; index / fps only where there are none
    if info.container == "frames":
        frames, indices = _decode_folder(path, sample(info.num_frames))
    elif info.container == "gif":
        frames, indices = _decode_gif(path, sample(info.num_frames), info.num_frames, cancel)
    else:
        frames = None
        if info.rotation == 0:
            try:
                frames, indices, count, times = _decode_decord(path, sample, info.num_frames)
                info = dataclasses.replace(info, num_frames=count)
            except _DecodeFailed as err:
                log.debug("decord failed on %s (%s); falling back to PyAV", path, err)
        if frames is None:
            indices = sample(info.num_frames)
            frames, times = _decode_pyav(path, indices, info, cancel)
    frames = _rotate(frames, info.rotation)  # (T, H, W, 3) as displayed
    timestamps = indices.astype(np.float64) / info.fps  # (T,)
    if times is not None and len(times) == len(indices) and np.all(np.isfinite(times)) and np.all(np.diff(times) >= 0):
        timestamps = np.asarray(times, dtype=np.float64) - float(times[0]) + timestamps[0]  # variable frame rate
    return Clip(info=info, frames=frames, indices=indices, timestamps=timestamps)


def _rotate(frames: np.ndarray, rotation: int) -> np.ndarray:
    """Turn stored frames (T, h, w, 3) clockwise by ``rotation`` degrees (the display orientation)."""
    if rotation % 360 == 0:
        return frames
    k = (-rotation // 90) % 4  # np.rot90 turns counter-clockwise
    return np.ascontiguousarray(np.rot90(frames, k=k, axes=(1, 2)))


def _decode_decord(
    path: Path, sample: Callable[[int], np.ndarray], expected: int
) -> tuple[np.ndarray, np.ndarray, int, np.ndarray | None]:
    """Frames at ``sample(len(video))`` via decord, with their presentation times (seconds; None if decord
    has none); raises _DecodeFailed on any decord problem.

    A count far from the probed ``expected`` (a truncated file whose header states the
    full length) is a failure too: PyAV then decodes by time and reports the truncation.
    """
    try:
        import decord
    except ImportError as err:
        raise _DecodeFailed("decord is not installed") from err
    try:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=DECODE_THREADS)
        count = len(reader)
        if count <= 0:
            raise _DecodeFailed("decord reports no frame count")
        if abs(count - expected) > max(2, 0.1 * expected):
            raise _DecodeFailed(f"decord counts {count} frames, the container states {expected}")
        indices = sample(count)
        frames = reader.get_batch(indices.tolist()).asnumpy()  # (T, h, w, 3)
        try:
            times = np.asarray(reader.get_frame_timestamp(indices.tolist()), dtype=np.float64)[:, 0]  # (T,) starts
        except Exception:  # noqa: BLE001 — no timestamps: index / fps
            times = None
    except (VideoError, _DecodeFailed):
        raise
    except Exception as err:  # decord raises DECORDError, RuntimeError, ValueError ...
        raise _DecodeFailed(f"{type(err).__name__}: {err}") from err
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) != len(indices) or frames.dtype != np.uint8:
        raise _DecodeFailed(f"decord returned {frames.dtype} {frames.shape} for {len(indices)} frames")
    return frames, indices, count, times


def _decode_pyav(path: Path, indices: np.ndarray, info: VideoInfo,
                 cancel: threading.Event) -> tuple[np.ndarray, np.ndarray]:
    """Frames nearest the times ``indices / fps`` by seeking and decoding forward with PyAV, and the
    presentation time (seconds from the stream start) of each frame returned."""
    import av  # PyAV, imported where it is used: cached-feature users (training) need no FFmpeg
    subject = str(path)
    targets = indices / info.fps  # (T,) seconds from the stream start
    half = 0.5 / info.fps
    out: list[np.ndarray | None] = [None] * len(indices)
    times = np.full(len(indices), np.nan)
    k, last_t, last_rgb, failure, seek_k = 0, -np.inf, None, None, -1
    with av.open(subject, metadata_errors="ignore") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        tb = stream.time_base
        start = float(stream.start_time * tb) if stream.start_time is not None else 0.0
        while k < len(targets):
            reseek, ended = False, True
            try:
                if targets[k] - last_t > SEEK_GAP_S and k != seek_k:  # once per target: a long GOP lands far back
                    seek_k = k
                    container.seek(int((start + targets[k]) / tb), stream=stream, backward=True, any_frame=False)
                for frame in container.decode(stream):
                    if cancel.is_set():
                        raise VideoError(subject, "decoding was cancelled after the timeout")
                    if frame.time is not None:
                        t = float(frame.time) - start
                    else:  # no timestamp: count frames
                        t = last_t + 1.0 / info.fps if last_t > -np.inf else 0.0
                    last_t, rgb = t, None
                    while k < len(targets) and t >= targets[k] - half:
                        rgb = frame.to_ndarray(format="rgb24") if rgb is None else rgb  # (h, w, 3)
                        out[k] = rgb
                        times[k] = t
                        k += 1
                    last_rgb = rgb if rgb is not None else last_rgb
                    if k == len(targets):
                        ended = False
                        break
                    if targets[k] - t > SEEK_GAP_S and k != seek_k:
                        reseek, ended = True, False
                        break
            except av.FFmpegError as err:
                failure = err
            if not reseek or ended:
                break
    if k < len(targets):
        missing_s = targets[-1] - max(last_t, 0.0)  # tolerance: frame counts estimated from duration x fps
        if last_rgb is None or missing_s > max(3.0 / info.fps, 0.05 * info.duration):
            why = f"decoding stopped at {max(last_t, 0.0):.2f} s of {info.duration:.2f} s"
            if failure is not None:
                why += f" ({getattr(failure, 'strerror', None) or failure})"
            raise VideoError(subject, f"the stream is truncated or corrupt: {why}", "re-encode or re-download the file")
        for j in range(k, len(targets)):  # frame count slightly over-estimated (e.g. webm): repeat the last frame
            out[j] = last_rgb
            times[j] = max(last_t, 0.0)
    shapes = {o.shape for o in out}
    if len(shapes) != 1:
        raise VideoError(subject, f"frame size changes within the stream {sorted(shapes)}", "re-encode to a fixed size")
    return np.stack(out), times  # (T, h, w, 3), (T,)


def _decode_gif(
    path: Path, indices: np.ndarray, num_frames: int, cancel: threading.Event
) -> tuple[np.ndarray, np.ndarray]:
    """Frames of an animated GIF with PIL. A truncated tail (last 5% of frames, at least one)
    is tolerated as browsers do: those frames repeat the last complete one."""
    tail = num_frames - max(1, round(0.05 * num_frames))
    frames: list[np.ndarray] = []
    broken = False
    with Image.open(path) as im:
        for i in indices:
            if cancel.is_set():
                raise VideoError(str(path), "decoding was cancelled after the timeout")
            if not broken:
                try:
                    im.seek(int(i))
                    frames.append(np.asarray(im.convert("RGB")))  # (h, w, 3)
                    continue
                except PIL_ERRORS as err:
                    if i < tail or not frames:
                        raise VideoError(
                            str(path), pil_problem(err, f"a corrupt or truncated GIF at frame {i}"), "re-export the GIF"
                        ) from err
                    broken = True
            frames.append(frames[-1])
    return np.stack(frames), indices  # (T, h, w, 3)


def _decode_folder(folder: Path, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    files = frame_files(folder)
    frames = []
    for i in indices:
        try:
            with Image.open(files[i]) as im:
                frames.append(np.asarray(im.convert("RGB")))  # (h, w, 3)
        except PIL_ERRORS as err:
            raise VideoError(str(files[i]), pil_problem(err, "not a readable image"), "remove or replace the frame") from err
        if frames[-1].shape != frames[0].shape:
            raise VideoError(
                str(files[i]),
                f"frame is {frames[-1].shape[1]}x{frames[-1].shape[0]} but the first frame is "
                f"{frames[0].shape[1]}x{frames[0].shape[0]}",
                "resize all frames of the folder to one size",
            )
    return np.stack(frames), indices  # (T, h, w, 3)
