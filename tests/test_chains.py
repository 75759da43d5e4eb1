"""Degradation chains: the compression step is a real codec pass, and chain features are cached."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from llmvqa.corpus.chains import CHAIN_KINDS, build_chain, degrade
from llmvqa.encoders.cache import FeatureCache
from llmvqa.features import VideoFeatures
from llmvqa.statistics import STREAMS
from llmvqa.video.writer import write_video


def _frames(seed=0, t=8, h=256, w=256):  # large enough that no step hits the 4 kbit/s floor
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(1, h // 8, w // 8, 3)).repeat(8, 1).repeat(8, 2)  # blocks of detail
    noise = rng.integers(0, 40, size=(t, h, w, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def _psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def test_compression_is_a_chain_kind_and_a_stronger_step_loses_more():
    assert CHAIN_KINDS["compression"] == "technical"
    frames = _frames()
    out = [degrade(frames, "compression", s, np.random.default_rng(0)) for s in (0.35, 0.7, 1.0)]
    assert all(o.shape == frames.shape and o.dtype == np.uint8 for o in out)
    psnr = [_psnr(frames, o) for o in out]
    assert psnr[0] > psnr[1] > psnr[2]
    blurred = degrade(frames, "blur", 0.7, np.random.default_rng(0))  # the frame degradations pass through
    assert blurred.shape == frames.shape and not np.array_equal(blurred, frames)


class _CountingExtractor:
    """The extractor interface build_chain uses, counting real extractions."""

    def __init__(self):
        self.config = SimpleNamespace(nframes=4, limits=None)
        self.key = "test-key"
        self.calls = 0

    def extract_clip(self, clip):
        self.calls += 1
        mean = float(clip.frames.astype(np.float32).mean())
        return VideoFeatures(tokens={s: torch.full((1, 2), mean) for s in STREAMS}, stats={"sharpness": mean},
                             meta={"timestamps": json.dumps([0.0])})

    def prompt_stats(self, features, prompt):
        return {"prompt_alignment": 0.25} if prompt else {}


def test_chain_features_come_from_the_cache_the_second_time(tmp_path):
    from llmvqa.video.config import VideoLimits

    write_video(tmp_path / "clip.mp4", _frames(1), fps=8.0)
    ex = _CountingExtractor()
    ex.config.limits = VideoLimits()
    record = {"id": "clip", "video": "clip.mp4", "prompt": "a cat"}
    cache = FeatureCache(tmp_path / "cache")
    first = build_chain(ex, record, tmp_path, "noise", cache=cache)
    assert ex.calls == 4 and len(list((tmp_path / "cache").glob("*.safetensors"))) == 4
    again = build_chain(ex, record, tmp_path, "noise", cache=cache)
    assert ex.calls == 4  # nothing extracted again
    assert [f.stats["sharpness"] for f in again.features] == [f.stats["sharpness"] for f in first.features]
    assert again.prompt_stats == [{"prompt_alignment": 0.25}] * 4
    build_chain(ex, record, tmp_path, "noise", seed=1, cache=cache)  # another draw is another key
    assert ex.calls == 8


def test_the_calibrate_command_builds_as_many_chains_as_the_library_default():
    from llmvqa.commands.calibrate import DEFAULT_CHAINS as COMMAND_DEFAULT
    from llmvqa.corpus.chains import DEFAULT_CHAINS

    assert COMMAND_DEFAULT == DEFAULT_CHAINS  # kept apart only so that `calibrate --help` stays light


def test_the_calibrate_command_reads_the_prior_settings():
    import argparse

    from llmvqa.commands import calibrate as command

    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers())
    args = parser.parse_args(["calibrate", "--model", "m", "--ratings", "r", "--out", "o", "--prior-outside", "none",
                              "--prior-margin", "0.5"])
    assert args.prior_outside == "none" and args.prior_margin == 0.5
    assert parser.parse_args(["calibrate", "--model", "m", "--ratings", "r", "--out", "o"]).prior_outside is None  # the config default
    assert command._outside("0.1") == 0.1
    for bad in ("0.5", "-0.1", "wide"):
        with pytest.raises(argparse.ArgumentTypeError, match="quantile"):
            command._outside(bad)
