"""Safety limits of the video loader (what a single video may cost)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmvqa.errors import ConfigError

FOLDER_FPS = 8.0
"""Frame rate assumed for a folder of numbered frames (images carry no timing)."""


@dataclass(frozen=True)
class VideoLimits:
    """Caps that keep one video from exhausting memory or time.

    Defaults fit a 24 GiB machine: at most ``max_sampled_frames`` frames of at most
    ``max_pixels`` pixels are ever held (256 x 4096*2304 x 3 bytes ~ 7 GiB worst case).
    Every ``VideoError`` raised for a limit names the field to raise, e.g.
    ``load_clip(path, limits=VideoLimits(max_pixels=8192 * 4320))``.
    """

    max_pixels: int = 4096 * 2304
    """Largest frame (width x height, after rotation) accepted; 4096x2304 covers 4K UHD and DCI 4K."""
    max_duration_s: float = 3 * 3600.0
    """Longest video accepted, in seconds."""
    max_sampled_frames: int = 256
    """Most frames one clip may hold (nframes, or duration x fps when sampling by fps)."""
    max_file_bytes: int = 32 * 2**30
    """Largest file accepted, in bytes (only sampled frames are decoded, so this mostly guards I/O time)."""
    timeout_s: float = 60.0
    """Seconds to wait for probing plus decoding before giving up with a VideoError."""
    min_frames: int = 2
    """Fewest frames a video must have (motion needs two)."""
    min_side: int = 16
    """Smallest width or height, in pixels (the noise and blockiness filters and the flow need room)."""

    def __post_init__(self) -> None:
        for name in ("max_pixels", "max_sampled_frames", "max_file_bytes", "min_frames", "min_side"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError("VideoLimits", f"{name} must be a positive integer, got {value!r}")
        for name in ("max_duration_s", "timeout_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError("VideoLimits", f"{name} must be a positive number of seconds, got {value!r}")

    def fix(self, field: str, needed: float) -> str:
        """The fix sentence of a limit error: the field to raise, how, and a value that would pass."""
        current = getattr(self, field)
        suggested = math.ceil(needed) if isinstance(current, int) else float(math.ceil(needed))
        return (
            f"raise VideoLimits.{field} (now {current}), e.g. load_clip(path, limits=VideoLimits({field}={suggested}))"
        )
