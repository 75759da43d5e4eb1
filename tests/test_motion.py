"""Motion encoder: shapes, statistic names, and the direction of every statistic.

Each direction test degrades a clip in one way (shake, flicker, duplicated frames,
shuffled frames) and checks that the matching statistic rises, on a generated pan of a
real photo and on one shot of the real bikes.mp4 clip.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from conftest import moving_scene

from llmvqa.encoders.motion import PAIR_DIM, MotionConfig, MotionEncoder
from llmvqa.errors import ConfigError, ModelError, VideoError
from llmvqa.statistics import stats_of_stream
from llmvqa.video.loader import load_clip
from llmvqa.video.types import Clip, VideoInfo

FPS = 8.0


def clip_of(frames: np.ndarray, fps: float = FPS) -> Clip:
    t, h, w, _ = frames.shape
    info = VideoInfo(path="generated", width=w, height=h, num_frames=t, fps=fps, duration=t / fps)
    return Clip(info=info, frames=np.ascontiguousarray(frames), indices=np.arange(t), timestamps=np.arange(t) / fps)


@pytest.fixture(scope="module")
def encoder() -> MotionEncoder:
    return MotionEncoder()


@pytest.fixture(scope="module")
def bikes_shot(bikes_path: str) -> np.ndarray:
    """16 frames of one continuous shot of bikes.mp4 (source frames 30-70; the clip has scene cuts)."""
    clip = load_clip(bikes_path, nframes=125)  # every second frame
    inside = (clip.indices >= 30) & (clip.indices <= 70)
    return clip.frames[inside][:16]


@pytest.fixture(params=["generated", "bikes"])
def frames(request, bikes_shot) -> np.ndarray:
    return moving_scene(16, 128) if request.param == "generated" else bikes_shot


def shaken(frames: np.ndarray, amplitude: int, seed: int = 0) -> np.ndarray:
    """Each frame translated by its own random offset of up to ``amplitude`` pixels (camera shake)."""
    rng = np.random.default_rng(seed)
    h, w = frames.shape[1:3]
    out = []
    for f in frames:
        dx, dy = rng.integers(-amplitude, amplitude + 1, size=2)
        m = np.float32([[1, 0, dx], [0, 1, dy]])
        out.append(cv2.warpAffine(f, m, (w, h), borderMode=cv2.BORDER_REFLECT))
    return np.stack(out)


def flickering(frames: np.ndarray, strength: float = 0.12, seed: int = 0) -> np.ndarray:
    gains = 1 + strength * np.random.default_rng(seed).uniform(-1, 1, size=len(frames))  # (T,)
    return np.clip(frames.astype(np.float32) * gains[:, None, None, None], 0, 255).astype(np.uint8)


def test_tokens_and_stat_names(encoder, scene):
    tokens, stats = encoder(clip_of(scene))
    assert tokens.dtype == torch.float32 and tokens.shape == (len(scene) - 1, PAIR_DIM)
    assert torch.isfinite(tokens).all()
    assert tuple(stats) == stats_of_stream("motion")
    assert all(np.isfinite(v) for v in stats.values())


def test_static_clip_moves_less_than_moving_clip(encoder, frames):
    rng = np.random.default_rng(1)
    still = np.repeat(frames[:1], len(frames), axis=0).astype(np.float32)
    still = np.clip(still + rng.normal(0, 1.5, still.shape), 0, 255).astype(np.uint8)  # sensor noise, no motion
    _, moving = encoder(clip_of(frames))
    _, static = encoder(clip_of(still))
    assert static["dynamic_degree"] < 0.2 * moving["dynamic_degree"]
    assert moving["dynamic_degree"] > 0.005


def test_dynamic_degree_is_per_second(encoder, scene):
    _, slow = encoder(clip_of(scene, fps=4.0))
    _, fast = encoder(clip_of(scene, fps=8.0))
    assert fast["dynamic_degree"] == pytest.approx(2 * slow["dynamic_degree"], rel=1e-6)


def test_shake_raises_jitter(encoder, frames):
    _, base = encoder(clip_of(frames))
    _, shake = encoder(clip_of(shaken(frames, amplitude=max(4, frames.shape[1] // 40))))
    assert shake["jitter"] > 2 * base["jitter"] + 1e-3


def test_flicker_raises_flicker(encoder, frames):
    _, base = encoder(clip_of(frames))
    _, flick = encoder(clip_of(flickering(frames)))
    assert flick["flicker"] > 3 * base["flicker"] + 2.0


def test_steady_fade_is_not_flicker(encoder, scene):
    gains = np.linspace(1.0, 0.7, len(scene))  # a linear fade: trend, not flicker
    fade = (scene.astype(np.float32) * gains[:, None, None, None]).astype(np.uint8)
    _, faded = encoder(clip_of(fade))
    _, flick = encoder(clip_of(flickering(scene)))
    assert faded["flicker"] < 0.25 * flick["flicker"]


def test_duplicated_frames_raise_frozen_ratio(encoder, frames):
    dup = frames.copy()
    dup[1::2] = frames[0::2]  # every other frame repeats the previous one
    _, base = encoder(clip_of(frames))
    _, frozen = encoder(clip_of(dup))
    assert base["frozen_ratio"] == 0.0
    assert frozen["frozen_ratio"] >= 0.4


def test_shuffled_frames_raise_warping_error(encoder, frames):
    order = np.random.default_rng(3).permutation(len(frames))
    _, base = encoder(clip_of(frames))
    _, shuffled = encoder(clip_of(frames[order]))
    assert shuffled["warping_error"] > 1.5 * base["warping_error"]


def test_content_swap_raises_warping_error(encoder, scene):
    from skimage import data

    other = cv2.resize(data.chelsea(), scene.shape[1:3][::-1], interpolation=cv2.INTER_AREA)
    swapped = scene.copy()
    swapped[len(scene) // 2 :: 2] = other  # content alternates with an unrelated photo
    _, base = encoder(clip_of(scene))
    _, swap = encoder(clip_of(swapped))
    assert swap["warping_error"] > 2 * base["warping_error"]


def test_one_frame_is_a_video_error(encoder, scene):
    with pytest.raises(VideoError, match="motion needs two"):
        encoder(clip_of(scene[:1]))


@pytest.mark.parametrize(
    "kwargs", [{"height": 8}, {"pyr_scale": 1.5}, {"poly_n": 6}, {"smoothing_window": 4}, {"levels": 0}]
)
def test_config_checks(kwargs):
    with pytest.raises(ConfigError):
        MotionConfig(**kwargs)


def test_videomae_backbone_appends_clip_embedding(tmp_path, scene):
    from transformers import VideoMAEConfig, VideoMAEModel

    torch.manual_seed(0)
    cfg = VideoMAEConfig(
        image_size=32, patch_size=16, num_channels=3, num_frames=4, tubelet_size=2,
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
    )  # fmt: skip
    VideoMAEModel(cfg).save_pretrained(tmp_path)
    enc = MotionEncoder(MotionConfig(backbone=str(tmp_path)))
    assert enc.dim == PAIR_DIM + 32
    tokens, stats = enc(clip_of(scene))
    assert tokens.shape == (len(scene) - 1, PAIR_DIM + 32)
    flow_only, flow_stats = MotionEncoder()(clip_of(scene))
    assert torch.equal(tokens[:, :PAIR_DIM], flow_only) and stats == flow_stats
    clip_vec = tokens[:, PAIR_DIM:]
    assert torch.equal(clip_vec, clip_vec[:1].expand_as(clip_vec))  # one clip embedding on every pair
    other, _ = enc(clip_of(scene[::-1].copy()))
    assert not torch.allclose(other[0, PAIR_DIM:], clip_vec[0])  # it depends on the frames


def test_missing_backbone_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="motion backbone"):
        MotionEncoder(MotionConfig(backbone=str(tmp_path / "nope")))


def _synth(source: str) -> np.ndarray:
    """A 16-frame, 128-px clip of a corpus source (a panned photo or a real video shot)."""
    from llmvqa.corpus import sources as S

    return S.render(S.SOURCE_BY_NAME[source], 128, 16, FPS, np.random.default_rng(0))


@pytest.mark.parametrize("source", ["chelsea", "bikes_railing"])
def test_morphing_raises_nonrigid_motion(encoder, source):
    from llmvqa.corpus import degradations as D

    clean = _synth(source)
    _, base = encoder(clip_of(clean))
    _, morph = encoder(clip_of(D.morphing(clean, 0.6, np.random.default_rng(1))))
    assert morph["nonrigid_motion"] > 1.8 * base["nonrigid_motion"]


def test_rigid_pan_has_little_nonrigid_motion(encoder, scene):
    _, stats = encoder(clip_of(scene))
    assert 0 <= stats["nonrigid_motion"] < 0.001


@pytest.mark.parametrize("source", ["chelsea", "bikes_cyclist"])
def test_ghosting_raises_ghosting(encoder, source):
    from llmvqa.corpus import degradations as D

    clean = _synth(source)
    _, base = encoder(clip_of(clean))
    _, ghost = encoder(clip_of(D.ghosting(clean, 0.6, np.random.default_rng(0))))
    assert ghost["ghosting"] > base["ghosting"] + 0.15
    assert -1.0 <= base["ghosting"] <= 1.0
