"""Plain data types of the video loader (see llmvqa.video.loader)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class VideoInfo:
    """What a probe learns about a video without decoding its frames."""

    path: str
    width: int
    """Display width after rotation is applied."""
    height: int
    num_frames: int
    fps: float
    duration: float
    """Seconds."""
    rotation: int = 0
    """Clockwise degrees from container metadata (0/90/180/270); frames come back already rotated."""
    codec: str = ""
    container: str = ""
    """File format ("mp4", "gif", "frames" for a folder of numbered images ...)."""


@dataclass
class Clip:
    """Evenly sampled RGB frames of one video."""

    info: VideoInfo
    frames: np.ndarray
    """uint8 (T, H, W, 3) RGB at native resolution, rotation applied."""
    indices: np.ndarray
    """int64 (T,) source frame indices of the sampled frames."""
    timestamps: np.ndarray
    """float64 (T,) seconds of the sampled frames."""

    def __post_init__(self) -> None:
        if self.frames.ndim != 4 or self.frames.shape[-1] != 3 or self.frames.dtype != np.uint8:
            raise ValueError(f"Clip.frames must be uint8 (T, H, W, 3), got {self.frames.dtype} {self.frames.shape}")
        if not (len(self.frames) == len(self.indices) == len(self.timestamps)):
            raise ValueError(
                f"Clip has {len(self.frames)} frames but {len(self.indices)} indices and {len(self.timestamps)} timestamps"
            )
