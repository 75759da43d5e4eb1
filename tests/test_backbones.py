"""Vision backbones and text encoders: the offline EfficientNet-Lite0 on real photos, tiny HF models built in code."""

from __future__ import annotations

import json
import string
from pathlib import Path

import numpy as np
import pytest
import torch

from llmvqa.encoders import efficientnet_lite as effl
from llmvqa.encoders.backbones import HFBackbone, load_vision_backbone
from llmvqa.encoders.text import load_text_encoder
from llmvqa.errors import ModelError

_TINY = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4)


def _tiny_clip_tokenizer(folder: Path):
    """A character-level CLIP BPE tokenizer (no merges) written to ``folder``."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in string.ascii_lowercase:
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), unk_token="<|endoftext|>")
    return tok, len(vocab)


def make_tiny_clip(root: Path) -> str:
    """Random CLIP (hidden 32, projection 16) + image processor + tokenizer saved in ``root/clip``."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    path = root / "clip"
    path.mkdir(parents=True, exist_ok=True)
    tok, vocab_size = _tiny_clip_tokenizer(root)
    text = dict(
        _TINY, vocab_size=vocab_size, max_position_embeddings=32, bos_token_id=0, eos_token_id=1, pad_token_id=1
    )
    cfg = CLIPConfig(text_config=text, vision_config=dict(_TINY, image_size=32, patch_size=8), projection_dim=16)
    torch.manual_seed(0)
    CLIPModel(cfg).save_pretrained(path)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def _photo(name: str, size: int = 224) -> np.ndarray:
    from skimage import data

    from llmvqa.video.views import resized

    return resized(getattr(data, name)()[None], size)  # (1, size, size, 3)


@pytest.fixture(scope="module")
def lite0():
    return load_vision_backbone("efficientnet_lite0")


def test_lite0_weights_match_every_tensor():
    src = torch.load(effl.weights_path(), map_location="cpu", weights_only=True)
    model = effl.load_pretrained()
    dst = model.state_dict()
    assert len(src) == len(dst) == 296
    for (sk, sv), (dk, dv) in zip(src.items(), dst.items(), strict=True):
        assert sv.shape == dv.shape, (sk, dk)
        assert torch.equal(sv, dv), (sk, dk)


def test_lite0_rejects_a_checkpoint_with_wrong_shapes(tmp_path):
    src = torch.load(effl.weights_path(), map_location="cpu", weights_only=True)
    src["_fc.weight"] = torch.zeros(10, 1280)
    torch.save(src, tmp_path / "bad.pth")
    with pytest.raises(ModelError, match="_fc.weight"):
        effl.load_pretrained(tmp_path / "bad.pth")


def test_imagenet_class_names():
    names = effl.imagenet_classes()
    assert len(names) == 1000 and all(names)
    assert names[0].startswith("tench") and names[281].startswith("tabby") and names[999].startswith("toilet tissue")


@pytest.mark.parametrize(
    "photo, expected",
    [
        ("chelsea", ("tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat")),
        ("coffee", ("espresso", "cup", "coffee mug")),
    ],
)
def test_lite0_classifies_real_photos(lite0, photo, expected):
    probs = lite0.class_probs(_photo(photo))
    assert probs.shape == (1, 1000)
    assert abs(float(probs.sum()) - 1) < 1e-4
    top5 = [lite0.classes[i].split(",")[0] for i in probs[0].topk(5).indices.tolist()]
    assert top5[0] in expected, top5
    assert sum(name in expected for name in top5) >= 2, top5


def test_lite0_embed_shapes_and_batching(lite0):
    images = np.concatenate([_photo("chelsea"), _photo("coffee"), _photo("astronaut")])
    lite0.batch_size = 2
    try:
        feats = lite0.embed(images)
    finally:
        lite0.batch_size = 32
    assert feats.shape == (3, lite0.dim) == (3, 1280) and feats.dtype == torch.float32
    alone = lite0.embed(images[2:])
    assert torch.allclose(feats[2:], alone, atol=1e-4)
    cos = torch.nn.functional.cosine_similarity(feats[0], feats[1], dim=0)
    assert cos < 0.99  # different photos give different features
    with pytest.raises(ValueError, match="uint8"):
        lite0.embed(images.astype(np.float32))


def test_lite0_optimized_for_inference_gives_the_same_features_at_any_size():
    backbone = load_vision_backbone("efficientnet_lite0")  # its own copy: the module's fixture stays eager
    rng = np.random.default_rng(0)
    sets = [np.concatenate([_photo("chelsea"), _photo("coffee"), _photo("astronaut")]),
            rng.integers(0, 255, (2, 256, 320, 3), dtype=np.uint8), rng.integers(0, 255, (1, 96, 160, 3), dtype=np.uint8)]
    eager = [backbone.embed(images) for images in sets]
    assert backbone.optimize_for_inference() and backbone.optimized
    assert not backbone.optimize_for_inference()  # once
    for images, want in zip(sets, eager, strict=True):
        got = backbone.embed(images)
        assert got.shape == want.shape and got.dtype == torch.float32
        assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()
    probs = backbone.class_probs(sets[0])  # the classifier head reads the same features
    assert abs(float(probs.sum(-1).mean()) - 1) < 1e-4
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(3) as pool:  # the server reads videos in several threads
        for got, want in zip(pool.map(backbone.embed, sets * 2), eager * 2, strict=True):
            assert torch.allclose(got, want, atol=1e-4)


def test_timm_without_torchvision_is_a_clear_error():
    try:
        import timm  # noqa: F401

        pytest.skip("timm imports here; the error path is for installs without it")
    except ImportError:
        pass
    with pytest.raises(ModelError, match=r"llmvqa\[timm\]"):
        load_vision_backbone("timm:efficientnet_b0")


def test_missing_hf_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="local model folder"):
        load_vision_backbone(str(tmp_path / "no-such-model"))


def test_tiny_clip_backbone_and_its_text_tower(tmp_path):
    path = make_tiny_clip(tmp_path)
    bb = load_vision_backbone(path)
    assert isinstance(bb, HFBackbone) and bb.joint_space and bb.dim == 16
    images = np.random.default_rng(0).integers(0, 256, (3, 40, 56, 3), dtype=np.uint8)
    feats = bb.embed(images)
    assert feats.shape == (3, 16)
    assert not torch.allclose(feats[0], feats[1])
    text = load_text_encoder(path, backbone=bb)
    assert text.model is bb.model  # the loaded model is reused
    emb = text.embed(["a cat", "a red car"])
    assert emb.shape == (2, 16)
    assert torch.allclose(emb.norm(dim=-1), torch.ones(2), atol=1e-5)
    again = load_text_encoder(path).embed(["a cat"])  # loading separately gives the same space
    assert torch.allclose(again[0], emb[0], atol=1e-5)


def test_tiny_siglip_and_plain_vit_backbones(tmp_path):
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel, ViTConfig, ViTImageProcessor, ViTModel

    torch.manual_seed(0)
    text = dict(_TINY, vocab_size=64, max_position_embeddings=64, bos_token_id=0, eos_token_id=1, pad_token_id=1)
    SiglipModel(SiglipConfig(text_config=text, vision_config=dict(_TINY, image_size=32, patch_size=8))).save_pretrained(
        tmp_path / "siglip"
    )
    SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path / "siglip")
    ViTModel(ViTConfig(**_TINY, image_size=32, patch_size=8)).save_pretrained(tmp_path / "vit")
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path / "vit")
    images = np.random.default_rng(1).integers(0, 256, (2, 48, 48, 3), dtype=np.uint8)
    siglip = load_vision_backbone(str(tmp_path / "siglip"))
    assert siglip.joint_space and siglip.embed(images).shape == (2, 32)
    vit = load_vision_backbone(str(tmp_path / "vit"))
    assert not vit.joint_space and vit.classes is None
    assert vit.embed(images).shape == (2, 32)
    with pytest.raises(ModelError, match="not a classifier"):
        vit.class_probs(images)


@pytest.mark.slow
def test_minilm_text_encoder_ranks_paraphrases_first():
    enc = load_text_encoder("minilm")
    emb = enc.embed(["a cat sitting on a sofa", "a kitten resting on a couch", "a red sports car on a highway"])
    assert emb.shape == (3, 384)
    assert torch.allclose(emb.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert float(emb[0] @ emb[1]) > float(emb[0] @ emb[2]) + 0.2
