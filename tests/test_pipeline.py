"""Encoder config keys, the feature cache, FeatureExtractor and ``llmvqa features``.

The default run swaps the vision backbone and the text encoder for tiny deterministic
stand-ins (``tiny_models``), so the whole pipeline runs in seconds; the ``slow`` test at the
end runs the real offline EfficientNet-Lite0 + MiniLM. Videos come from llmvqa.video.writer.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import moving_scene

from llmvqa.encoders.backbones import VisionBackbone
from llmvqa.encoders.cache import FeatureCache, content_hash, get_or_extract, load_features, save_features
from llmvqa.encoders.config import EncoderConfig
from llmvqa.encoders.motion import MotionConfig
from llmvqa.encoders.text import TextEncoder
from llmvqa.errors import ConfigError, VideoError
from llmvqa.features import VideoFeatures
from llmvqa.statistics import PROBE_STATISTICS, PROMPT_STATS, STATISTICS
from llmvqa.video.config import VideoLimits
from llmvqa.video.writer import write_video

NFRAMES = 8


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("videos")
    paths = []
    for seed in (0, 1):
        p = root / f"clip{seed}.mp4"
        write_video(p, moving_scene(12, 96, seed=seed), fps=8)
        paths.append(p)
    return paths


class TinyBackbone(VisionBackbone):
    """A fixed random projection of 8x8 thumbnails: a 10-class 'classifier' with 16-d features."""

    name = "tiny-test"
    dim = 16
    classes = tuple(f"thing {i}" for i in range(10))

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.proj = torch.randn(8 * 8 * 3, self.dim, generator=g) / 14
        self.head = torch.randn(self.dim, len(self.classes), generator=g)

    def _embed(self, images: np.ndarray) -> torch.Tensor:
        thumbs = torch.from_numpy(images[:, :: images.shape[1] // 8, :: images.shape[2] // 8][:, :8, :8]).float() / 255
        return torch.tanh(thumbs.reshape(len(images), -1) @ self.proj)  # (N, 16)

    def class_probs(self, images: np.ndarray) -> torch.Tensor:
        return torch.softmax(self.embed(images) @ self.head, dim=-1)  # (N, 10)


class HashText(TextEncoder):
    """Each text maps to a fixed random 12-d vector seeded by its CRC."""

    name = "hash-text"
    dim = 12

    def _embed(self, texts: list[str]) -> torch.Tensor:
        return torch.stack(
            [torch.randn(self.dim, generator=torch.Generator().manual_seed(zlib.crc32(t.encode()))) for t in texts]
        )


@pytest.fixture
def tiny_models(monkeypatch):
    """FeatureExtractor (also the one ``llmvqa features`` builds) gets the tiny stand-ins; counts loads."""
    import llmvqa.encoders.pipeline
    import llmvqa.encoders.semantic

    loads: list[str] = []

    def load_backbone(name, device="cpu", trust_remote_code=False):
        loads.append(name)
        return TinyBackbone()

    monkeypatch.setattr(llmvqa.encoders.pipeline, "load_vision_backbone", load_backbone)
    monkeypatch.setattr(llmvqa.encoders.semantic, "load_text_encoder", lambda name, **kw: HashText())
    return loads


@pytest.fixture
def extractor(tiny_models):
    from llmvqa.encoders.pipeline import FeatureExtractor

    return FeatureExtractor(EncoderConfig(nframes=NFRAMES))


# --- EncoderConfig ---------------------------------------------------------------------------


def test_key_is_stable_and_tracks_every_feature_setting():
    base = EncoderConfig()
    assert base.key() == EncoderConfig().key() and len(base.key()) == 12
    changed = [
        EncoderConfig(nframes=8),
        EncoderConfig(motion=MotionConfig(height=96)),
        dataclasses.replace(base, technical=dataclasses.replace(base.technical, grid=5)),
        dataclasses.replace(base, semantic=dataclasses.replace(base.semantic, top_k=base.semantic.top_k + 1)),
    ]
    keys = {c.key() for c in changed}
    assert base.key() not in keys and len(keys) == len(changed)
    # the loader's safety limits decide whether a video loads, not its features
    assert EncoderConfig(limits=VideoLimits(timeout_s=5.0)).key() == base.key()


def test_config_dict_round_trip_through_json():
    cfg = EncoderConfig(nframes=8, motion=MotionConfig(height=96, winsize=9), limits=VideoLimits(timeout_s=5.0))
    back = EncoderConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg and back.key() == cfg.key()
    assert EncoderConfig.from_dict({}) == EncoderConfig()


@pytest.mark.parametrize("data", [{"nframes": 1}, {"bogus": 1}, {"motion": {"heigth": 96}}, {"motion": 3}])
def test_config_errors(data):
    with pytest.raises(ConfigError):
        EncoderConfig.from_dict(data)


# --- content hash and cache files ------------------------------------------------------------


def test_content_hash_follows_bytes_not_names(tmp_path, videos):
    copy = tmp_path / "renamed.mp4"
    shutil.copy(videos[0], copy)
    assert content_hash(copy) == content_hash(videos[0]) != content_hash(videos[1])
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "0001.png").write_bytes(b"a")
    (frames / "0002.png").write_bytes(b"b")
    h1 = content_hash(frames)
    (frames / "0002.png").write_bytes(b"c")
    h2 = content_hash(frames)
    (frames / "0002.png").rename(frames / "0003.png")
    assert len({h1, h2, content_hash(frames)}) == 3
    with pytest.raises(VideoError, match="does not exist"):
        content_hash(tmp_path / "missing.mp4")


def test_save_load_round_trip_is_exact(tmp_path):
    g = torch.Generator().manual_seed(0)
    feats = VideoFeatures(
        tokens={"technical": torch.randn(4, 6, generator=g), "motion": torch.randn(3, 5, generator=g),
                "semantic": torch.randn(4, 7, generator=g)},
        stats={s.name: float(np.pi * (i + 1) / 7) for i, s in enumerate(STATISTICS) if s.name not in PROMPT_STATS},
        alignment_basis=torch.randn(9, generator=g),
        meta={"path": "x.mp4", "content_hash": "ab" * 32, "encoder_key": "k1"},
    )  # fmt: skip
    save_features(feats, tmp_path / "f.safetensors")
    back = load_features(tmp_path / "f.safetensors")
    assert back.stats == feats.stats and list(back.stats) == list(feats.stats)  # bit-exact, same order
    assert all(torch.equal(back.tokens[k], feats.tokens[k]) for k in feats.tokens)
    assert torch.equal(back.alignment_basis, feats.alignment_basis) and back.meta == feats.meta
    feats.alignment_basis = None
    save_features(feats, tmp_path / "g.safetensors")
    assert load_features(tmp_path / "g.safetensors").alignment_basis is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.safetensors", "g.safetensors"]  # no temp files left


# --- FeatureExtractor + cache ----------------------------------------------------------------


def test_extract_fills_streams_stats_and_meta(extractor, tiny_models, videos):
    feats = extractor.extract(videos[0])
    assert feats.tokens["motion"].shape[0] == NFRAMES - 1
    assert feats.tokens["technical"].shape[0] >= 2 and feats.tokens["semantic"].shape[0] >= 2
    expected = {s.name for s in STATISTICS + PROBE_STATISTICS if s.name not in PROMPT_STATS}
    assert set(feats.stats) == expected
    assert feats.meta["content_hash"] == content_hash(videos[0])
    assert feats.meta["encoder_key"] == extractor.key == extractor.config.key()
    assert feats.meta["alignment_space"] and feats.meta["path"] == str(videos[0])
    assert extractor.shared_backbone and tiny_models == ["efficientnet_lite0"]  # both default to it: loaded once
    assert extractor.technical.backbone is extractor.semantic.backbone
    assert set(extractor.timings) == {"load", "technical", "motion", "semantic"}
    align = extractor.prompt_stats(feats, "an astronaut in a space suit")
    assert set(align) == {"prompt_alignment"} and -1 <= align["prompt_alignment"] <= 1
    assert extractor.prompt_stats(feats, "") == {}


def test_cache_round_trip_and_hits(tmp_path, extractor, videos):
    cache = FeatureCache(tmp_path / "cache")
    first, cached = get_or_extract(extractor, videos[0], cache)
    assert not cached
    files = list((tmp_path / "cache").iterdir())
    assert [f.name for f in files] == [cache.path_for(first.meta["content_hash"], extractor.key).name]
    second, cached = get_or_extract(extractor, videos[0], cache)
    assert cached
    for k in first.tokens:
        assert torch.equal(first.tokens[k], second.tokens[k])
    assert second.stats == first.stats and torch.equal(second.alignment_basis, first.alignment_basis)
    assert {k: v for k, v in second.meta.items()} == first.meta
    # same content under another name hits; another encoder key misses
    copy = tmp_path / "copy.mp4"
    shutil.copy(videos[0], copy)
    hit = cache.get(copy, extractor.key)
    assert hit is not None and hit.meta["path"] == str(copy)
    assert cache.get(videos[0], EncoderConfig(nframes=NFRAMES + 2).key()) is None
    assert cache.get(videos[1], extractor.key) is None


def test_corrupt_cache_file_is_a_miss(tmp_path, extractor, videos):
    cache = FeatureCache(tmp_path)
    feats, _ = get_or_extract(extractor, videos[1], cache)
    file = cache.path_for(feats.meta["content_hash"], extractor.key)
    file.write_bytes(b"not safetensors")
    assert cache.get(videos[1], extractor.key) is None
    again, cached = get_or_extract(extractor, videos[1], cache)
    assert not cached and cache.get(videos[1], extractor.key) is not None


# --- llmvqa features -------------------------------------------------------------------------


def test_cli_features_records_failures_and_keeps_going(tmp_path, videos, tiny_models, monkeypatch, capsys):
    import llmvqa.cli

    monkeypatch.setattr(llmvqa.cli, "COMMANDS", ("features",))  # only this command's module is under test
    folder = tmp_path / "in"
    folder.mkdir()
    for v in videos:
        shutil.copy(v, folder / v.name)
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not a video")
    out = tmp_path / "out"
    argv = ["features", str(folder), str(bad), "--out", str(out), "--nframes", str(NFRAMES)]
    assert llmvqa.cli.main(argv) == 1
    written = sorted(out.glob("*.safetensors"))
    assert len(written) == 2
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert len(failures) == 1 and failures[0]["path"] == str(bad) and "broken.mp4" in failures[0]["error"]
    text = capsys.readouterr().out
    assert "2 done, 0 cached, 1 failed" in text and "dyn" in text and "clip0.mp4" in text
    feats = load_features(written[0])
    assert feats.meta["encoder_key"] == EncoderConfig(nframes=NFRAMES).key()

    # second run over the good videos: everything cached, exit 0, failures.jsonl gone
    assert llmvqa.cli.main(["features", str(folder), "--out", str(out), "--nframes", str(NFRAMES)]) == 0
    assert "0 done, 2 cached, 0 failed" in capsys.readouterr().out
    assert not (out / "failures.jsonl").exists()
    index = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    assert sorted(Path(r["path"]).name for r in index) == ["clip0.mp4", "clip1.mp4"]  # one line per video
    assert {r["file"] for r in index} == {p.name for p in written}


@pytest.mark.slow
def test_real_offline_models_end_to_end(tmp_path, videos):
    """EfficientNet-Lite0 + MiniLM: extract, cache, reload, prompt alignment."""
    from llmvqa.encoders.pipeline import FeatureExtractor

    fx = FeatureExtractor(EncoderConfig(nframes=NFRAMES))
    cache = FeatureCache(tmp_path)
    feats, cached = get_or_extract(fx, videos[0], cache)
    again, cached_again = get_or_extract(fx, videos[0], cache)
    assert (cached, cached_again) == (False, True)
    assert feats.tokens["technical"].shape[1] == feats.tokens["semantic"].shape[1] == 1280
    assert all(torch.equal(feats.tokens[k], again.tokens[k]) for k in feats.tokens) and again.stats == feats.stats
    astronaut = fx.prompt_stats(again, "an astronaut in a white space suit")["prompt_alignment"]
    assert -1 <= astronaut <= 1


def test_upgrading_a_version_3_cache_gives_what_extraction_gives(extractor, videos, tmp_path, monkeypatch):
    """scripts/upgrade_feature_cache.py: a version-3 entry (no PROBE_STATISTICS) becomes the version-4 entry a fresh
    extraction writes — every statistic, token and series the same — and an entry whose video changed is skipped."""
    import importlib.util

    import llmvqa.encoders.config as config

    spec = importlib.util.spec_from_file_location("upgrade", Path(__file__).parents[1] / "scripts/upgrade_feature_cache.py")
    upgrade = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(upgrade)
    clips = []
    for i, v in enumerate(videos):
        clips.append(tmp_path / f"c{i}.mp4")
        shutil.copy(v, clips[-1])
    fresh = extractor.extract(clips[0])
    cache = FeatureCache(tmp_path / "cache")
    monkeypatch.setattr(config, "FEATURE_VERSION", "3")
    old_key = extractor.config.key()
    for clip in clips:
        f = extractor.extract(clip)
        f.stats = {k: v for k, v in f.stats.items() if k not in {s.name for s in PROBE_STATISTICS}}
        f.meta["encoder_key"] = old_key
        cache.put(f)
    monkeypatch.setattr(config, "FEATURE_VERSION", "4")
    shutil.copy(videos[0], clips[1])  # the second clip's video changed since it was extracted
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text(json.dumps({"encoder": extractor.config.to_dict()}))
    assert upgrade.main(["--cache", str(tmp_path / "cache"), "--model", str(tmp_path / "model")]) == 0
    new = cache.get(clips[0], extractor.config.key())
    assert new is not None and new.stats == fresh.stats
    assert all(torch.equal(new.tokens[s], fresh.tokens[s]) for s in fresh.tokens)
    assert len(list((tmp_path / "cache").glob(f"*-{extractor.config.key()}.safetensors"))) == 1  # not the changed one
    assert load_features(next((tmp_path / "cache").glob(f"*-{old_key}.safetensors"))).meta["encoder_key"] == old_key
