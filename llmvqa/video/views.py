"""Views of a clip's frames that the encoders consume.

- ``fragments``: FAST-VQA grid mini-patch sampling (GMS). Each frame is cut into a
  ``grid x grid`` lattice and one ``patch x patch`` crop is taken per cell at native
  resolution, at the same position in every frame (temporally aligned), then the crops
  are spliced into one ``grid*patch`` square. Blur, noise and compression artifacts
  survive because nothing is resized (unless the frame is smaller than the mosaic).
- ``resized``: short side to ``size`` then a center crop (semantic encoders).
- ``gray_lowres``: grayscale at a low height keeping the aspect (motion statistics).
"""

from __future__ import annotations

import cv2
import numpy as np


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"frames must be non-empty uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    return frames


def _resize_all(frames: np.ndarray, width: int, height: int, interpolation: int) -> np.ndarray:
    """Resize every frame of uint8 (T, H, W, 3) to (T, height, width, 3)."""
    return np.stack([cv2.resize(f, (width, height), interpolation=interpolation) for f in frames])


def fragments(frames: np.ndarray, grid: int = 7, patch: int = 32, rng: np.random.Generator | None = None) -> np.ndarray:
    """FAST-VQA fragments: uint8 (T, H, W, 3) -> uint8 (T, grid*patch, grid*patch, 3).

    Cell (i, j) of the output holds a ``patch x patch`` crop of cell (i, j) of the frame.
    The crop is at the cell center when ``rng`` is None, else at a random offset inside
    the cell (one draw per cell, shared by all frames). Frames smaller than ``grid*patch``
    on a side are first upsampled (bicubic, aspect kept) so every cell holds a patch.
    """
    frames = _check_frames(frames)
    if grid < 1 or patch < 1:
        raise ValueError(f"grid and patch must be >= 1, got grid={grid}, patch={patch}")
    side = grid * patch
    t, h, w = frames.shape[:3]
    if h < side or w < side:
        scale = side / min(h, w)
        w, h = max(side, round(w * scale)), max(side, round(h * scale))
        frames = _resize_all(frames, w, h, cv2.INTER_CUBIC)
    # cell edges (cells may differ by one pixel when h or w is not a multiple of grid)
    ys = np.linspace(0, h, grid + 1).astype(np.int64)  # (grid+1,)
    xs = np.linspace(0, w, grid + 1).astype(np.int64)  # (grid+1,)
    out = np.empty((t, side, side, 3), dtype=np.uint8)
    for i in range(grid):
        for j in range(grid):
            room_y = max(0, ys[i + 1] - ys[i] - patch)
            room_x = max(0, xs[j + 1] - xs[j] - patch)
            if rng is None:
                oy, ox = room_y // 2, room_x // 2
            else:
                oy, ox = int(rng.integers(0, room_y + 1)), int(rng.integers(0, room_x + 1))
            y0 = min(ys[i] + oy, h - patch)
            x0 = min(xs[j] + ox, w - patch)
            out[:, i * patch : (i + 1) * patch, j * patch : (j + 1) * patch] = frames[
                :, y0 : y0 + patch, x0 : x0 + patch
            ]
    return out


def resized(frames: np.ndarray, size: int = 224) -> np.ndarray:
    """Short side to ``size`` (cv2.INTER_AREA), then center crop: uint8 (T, size, size, 3)."""
    frames = _check_frames(frames)
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    h, w = frames.shape[1:3]
    scale = size / min(h, w)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    frames = _resize_all(frames, new_w, new_h, interp)  # (T, new_h, new_w, 3)
    y0, x0 = (new_h - size) // 2, (new_w - size) // 2
    return np.ascontiguousarray(frames[:, y0 : y0 + size, x0 : x0 + size])


def gray_lowres(frames: np.ndarray, height: int = 144) -> np.ndarray:
    """Grayscale at ``height`` rows keeping the aspect (width rounded, >= 1): uint8 (T, h, w)."""
    frames = _check_frames(frames)
    if height < 1:
        raise ValueError(f"height must be >= 1, got {height}")
    h, w = frames.shape[1:3]
    new_w = max(1, round(w * height / h))
    interp = cv2.INTER_AREA if height < h else cv2.INTER_LINEAR
    return np.stack(
        [cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), (new_w, height), interpolation=interp) for f in frames]
    )  # (T, height, new_w)
