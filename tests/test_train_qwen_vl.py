"""Qwen2.5-VL semantic stream on a tiny random Qwen2_5_VLConfig built in code (pixel_values fed directly)."""

from __future__ import annotations

import pytest
import torch

from llmvqa.errors import ModelError
from llmvqa.features import VideoFeatures
from llmvqa.model.qwen_vl import QwenVisionSemantic, vision_tower, with_semantic_tokens

PATCH, TPATCH, MERGE = 14, 2, 2


@pytest.fixture(scope="module")
def tiny_qwen_vl():
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(0)
    cfg = Qwen2_5_VLConfig(
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=48,
                           patch_size=PATCH, temporal_patch_size=TPATCH, spatial_merge_size=MERGE,
                           window_size=112, fullatt_block_indexes=[1], in_channels=3),
        text_config=dict(hidden_size=48, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=128, max_position_embeddings=256,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                          "mrope_section": [2, 2, 2]}),
    )
    return Qwen2_5_VLForConditionalGeneration(cfg).eval()


def _pixels(t: int, h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(t * h * w, 3 * TPATCH * PATCH * PATCH, generator=g)  # (patches, C·t·p·p)


def test_vision_tower_gives_one_semantic_token_per_temporal_patch(tiny_qwen_vl):
    sem = QwenVisionSemantic(vision_tower(tiny_qwen_vl))
    assert sem.dim == 48 and not any(p.requires_grad for p in sem.parameters())  # frozen by default
    grids = torch.tensor([[3, 4, 4], [2, 4, 6]])
    pixels = torch.cat([_pixels(3, 4, 4, 0), _pixels(2, 4, 6, 1)])
    with torch.no_grad():
        out = sem(pixels, grids)
    assert [tuple(o.shape) for o in out] == [(3, 48), (2, 48)]
    assert all(torch.isfinite(o).all() for o in out)
    assert not torch.allclose(out[0][0], out[0][1])  # different frames, different tokens
    with torch.no_grad():
        alone = sem(_pixels(2, 4, 6, 1), grids[1:])[0]
    torch.testing.assert_close(alone, out[1], rtol=1e-4, atol=1e-5)  # videos in one call do not mix
    with pytest.raises(ValueError, match="96 patches"):
        sem(pixels, torch.tensor([[3, 4, 4]]))


def test_semantic_stream_replacement_keeps_the_rest():
    f = VideoFeatures(tokens={s: torch.zeros(4, 8) for s in ("technical", "motion", "semantic")}, stats={"a": 1.0})
    g = with_semantic_tokens(f, torch.ones(3, 48))
    assert g.tokens["semantic"].shape == (3, 48) and g.tokens["technical"] is f.tokens["technical"]
    assert g.stats == f.stats and f.tokens["semantic"].shape == (4, 8)


def test_video_patches_follow_qwen_patch_order():
    """Our torch patchify against transformers' own numpy image processor (an independent implementation):
    a video whose frames come in identical pairs is, patch for patch, the images processed one by one (the
    image path repeats each frame over the temporal patch)."""
    import numpy as np
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from llmvqa.model.qwen_vl import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, video_patches

    rng = np.random.default_rng(0)
    a, b, c = (rng.integers(0, 255, (56, 84, 3), dtype=np.uint8) for _ in range(3))
    pixels, grid = video_patches(np.stack([a, a, b, b, c]), PATCH, TPATCH, MERGE)  # 5 frames: c is repeated
    assert grid.tolist() == [[3, 4, 6]] and pixels.shape == (3 * 4 * 6, 3 * TPATCH * PATCH * PATCH)
    proc = Qwen2VLImageProcessorPil(patch_size=PATCH, temporal_patch_size=TPATCH, merge_size=MERGE, do_resize=False,
                                    image_mean=list(OPENAI_CLIP_MEAN), image_std=list(OPENAI_CLIP_STD))
    want = proc(images=[a, b, c], return_tensors="np")
    assert want["image_grid_thw"].tolist() == [[1, 4, 6]] * 3
    np.testing.assert_allclose(pixels.numpy(), want["pixel_values"], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="multiples of 28"):
        video_patches(np.zeros((2, 50, 84, 3), np.uint8))


def test_the_vision_stream_turns_a_video_file_into_tokens(tiny_qwen_vl, tmp_path):
    """File → loader → patches → tower, with the checkpoint's own normalization, no torchvision."""
    import numpy as np

    from llmvqa.model.qwen_vl import QwenVisionStream
    from llmvqa.video.writer import write_video

    tiny_qwen_vl.save_pretrained(tmp_path / "vl")
    (tmp_path / "vl" / "preprocessor_config.json").write_text('{"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}')
    stream = QwenVisionStream(str(tmp_path / "vl"), nframes=6, max_pixels=56 * 84)
    assert stream.mean == [0.5, 0.5, 0.5]
    rng = np.random.default_rng(0)
    tokens = [stream.tokens(write_video(tmp_path / f"{i}.mp4", rng.integers(0, 255, (9, 60, 90, 3), dtype=np.uint8),
                                        fps=8)) for i in range(2)]
    assert [tuple(t.shape) for t in tokens] == [(3, 48), (3, 48)]  # 6 frames → 3 temporal patches
    assert not torch.allclose(tokens[0], tokens[1])
    with pytest.raises(ModelError, match="cannot load the Qwen-VL checkpoint"):
        QwenVisionStream(str(tmp_path / "missing"))


def test_qwen_frames_come_through_the_loader_with_its_caps(tmp_path):
    import numpy as np

    from llmvqa.errors import VideoError
    from llmvqa.model.qwen_vl import QWEN_FACTOR, qwen_frames, qwen_size
    from llmvqa.video.config import VideoLimits
    from llmvqa.video.writer import write_video

    assert qwen_size(480, 640, 360 * 420) == (336, 448)  # scaled down to fit, sides multiples of 28
    assert qwen_size(56, 84, 360 * 420) == (56, 84)  # never scaled up
    rng = np.random.default_rng(0)
    path = write_video(tmp_path / "v.mp4", rng.integers(0, 255, (7, 120, 200, 3), dtype=np.uint8), fps=8)
    frames = qwen_frames(path, nframes=16, max_pixels=64 * 96)
    assert frames.dtype == np.uint8 and frames.shape[0] == 8  # 7 real frames, the last repeated: an even count
    assert frames.shape[1] % QWEN_FACTOR == 0 and frames.shape[2] % QWEN_FACTOR == 0
    assert frames.shape[1] * frames.shape[2] <= 64 * 96
    with pytest.raises(VideoError):
        qwen_frames(path, limits=VideoLimits(max_pixels=100 * 100))  # the loader's caps hold here too


def test_a_checkpoint_records_the_qwen_semantic_stream_and_loading_rebuilds_it(tmp_path, monkeypatch):
    """A recipe whose semantic stream is the VL backbone's tower writes it into the checkpoint's encoder
    settings; Assessor.from_pretrained then wraps its extractor with that tower (not EfficientNet alone)."""
    import json
    import types

    from test_model import _save_backbone, build

    import llmvqa.model.qwen_vl as qwen_vl
    from llmvqa.assessor import Assessor
    from llmvqa.encoders.config import EncoderConfig
    from llmvqa.train.trainer import Trainer

    fake = types.SimpleNamespace(cfg=types.SimpleNamespace(data=types.SimpleNamespace(semantic_from_backbone=True),
                                                           model=types.SimpleNamespace(backbone="Qwen/Qwen2.5-VL-7B-Instruct")),
                                 features=types.SimpleNamespace(encoder_config=EncoderConfig()))
    enc = Trainer.encoder_dict(fake)
    assert enc["semantic_tokens"] == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert EncoderConfig.from_dict(enc).key() == EncoderConfig().key()  # the cached features stay valid
    model = build(_save_backbone(tmp_path / "g", "gemma"), lora=True)
    model.encoder_config = enc
    model.save_pretrained(tmp_path / "m")
    seen = {}

    class Recorder:
        def __init__(self, extractor, model_path, nframes, device="cpu"):
            seen.update(extractor=extractor, model_path=model_path, nframes=nframes)

    monkeypatch.setattr(qwen_vl, "QwenSemanticExtractor", Recorder)
    a = Assessor.from_pretrained(tmp_path / "m")
    assert isinstance(a.extractor, Recorder) and seen["model_path"] == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert json.loads((tmp_path / "m" / "config.json").read_text())["encoder"]["semantic_tokens"] == seen["model_path"]
