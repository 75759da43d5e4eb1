"""Write frames to a video file (tests, the SIG synth corpus, examples).

H.264 through PyAV with a real rate control (crf or bitrate), so "compression"
degradations are genuine codec artifacts; VP9/webm, MJPEG/avi and animated GIF too.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

_CODEC_BY_SUFFIX = {".mp4": "libx264", ".mkv": "libx264", ".mov": "libx264", ".webm": "libvpx-vp9", ".avi": "mjpeg"}


def write_video(
    path: str | Path,
    frames: np.ndarray,
    fps: float = 8.0,
    codec: str | None = None,
    crf: int | None = 18,
    bitrate: int | None = None,
) -> Path:
    """Write uint8 (T, H, W, 3) RGB frames. codec defaults by suffix; crf/bitrate set quality (bitrate wins)."""
    import av  # PyAV, imported where it is used: cached-feature users (training) need no FFmpeg
    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        images = [Image.fromarray(f) for f in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=int(round(1000 / fps)), loop=0)
        return path
    codec = codec or _CODEC_BY_SUFFIX.get(path.suffix.lower(), "libx264")
    h, w = frames.shape[1:3]
    if codec in ("libx264", "libx265", "libvpx-vp9", "libvpx") and (h % 2 or w % 2):
        frames = frames[:, : h - h % 2, : w - w % 2]
        h, w = frames.shape[1:3]
    rate = Fraction(fps).limit_denominator(1000)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        if bitrate is not None:
            stream.bit_rate = int(bitrate)
        elif crf is not None and codec in ("libx264", "libx265"):
            stream.options = {"crf": str(int(crf))}
        elif crf is not None and codec.startswith("libvpx"):
            stream.options = {"crf": str(int(crf)), "b": "0"}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
