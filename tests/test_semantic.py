"""Semantic encoder: content-stability statistics, alignment basis, prompt alignment."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from conftest import moving_scene
from test_backbones import make_tiny_clip

from llmvqa.encoders.backbones import load_vision_backbone
from llmvqa.encoders.semantic import SemanticConfig, SemanticEncoder, consistency_stats
from llmvqa.errors import ConfigError, ModelError
from llmvqa.statistics import PROMPT_STATS, stats_of_stream


class _HashTextEncoder:
    """Fake text encoder: a fixed random unit vector per distinct text (no weights)."""

    name, dim = "hash", 24

    def embed(self, texts: list[str]) -> torch.Tensor:
        rows = []
        for t in texts:
            seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:4], "little")
            rows.append(torch.from_numpy(np.random.default_rng(seed).normal(size=self.dim).astype(np.float32)))
        return torch.nn.functional.normalize(torch.stack(rows), dim=-1)


def _photo_clip(name: str, num_frames: int = 8, size: int = 256) -> np.ndarray:
    """A real skimage photo panned slowly: uint8 (T, size, size, 3)."""
    from skimage import data

    from llmvqa.video.views import resized

    img = resized(getattr(data, name)()[None], size + 4 * num_frames)[0]
    return np.stack([img[2 * t : 2 * t + size, 4 * t : 4 * t + size] for t in range(num_frames)])


@pytest.fixture(scope="module")
def lite0():
    return load_vision_backbone("efficientnet_lite0")


def test_consistency_stats_on_controlled_embeddings():
    same = torch.ones(6, 4)
    assert consistency_stats(same) == pytest.approx({"semantic_consistency": 1.0, "semantic_mutation": 0.0})
    swapped = torch.cat([torch.tensor([[1.0, 0, 0, 0]]).repeat(3, 1), torch.tensor([[0, 1.0, 0, 0]]).repeat(3, 1)])
    stats = consistency_stats(swapped)
    assert stats["semantic_consistency"] == pytest.approx(0.8)  # 4 of 5 consecutive pairs identical, 1 orthogonal
    assert stats["semantic_mutation"] == pytest.approx(1.0)
    assert consistency_stats(torch.ones(1, 4)) == {"semantic_consistency": 1.0, "semantic_mutation": 0.0}


def test_mutation_is_a_sudden_change_not_gradual_drift():
    angles = torch.linspace(0, 1.2, 8)  # the content turns steadily away from the first frame
    drift = torch.stack([torch.cos(angles), torch.sin(angles), torch.zeros(8)], dim=1)
    assert consistency_stats(drift)["semantic_mutation"] == pytest.approx(0.0, abs=1e-5)
    jump = drift.clone()
    jump[6:] = torch.tensor([0.0, 0.0, 1.0])  # then one sudden jump to unrelated content
    step = 1 - float(torch.cos(angles[1]))
    assert consistency_stats(jump)["semantic_mutation"] == pytest.approx(1 - step, abs=1e-5)
    assert consistency_stats(drift[:2])["semantic_mutation"] == 0.0


@pytest.mark.parametrize("source", ["chelsea", "bikes_cyclist"])
def test_mutation_degradation_raises_semantic_mutation(lite0, source):
    from llmvqa.corpus import degradations as D
    from llmvqa.corpus import sources as S

    def render(name: str, seed: int) -> np.ndarray:
        return S.render(S.SOURCE_BY_NAME[name], 128, 16, 8.0, np.random.default_rng(seed))

    enc = SemanticEncoder(backbone=lite0, text_encoder=_HashTextEncoder())
    clean = render(source, 0)
    mutated = D.mutation(clean, 0.5, np.random.default_rng(0), other=render("coffee", 1))
    assert enc(mutated)[1]["semantic_mutation"] > enc(clean)[1]["semantic_mutation"] + 0.15


def test_config_checks():
    with pytest.raises(ConfigError, match="top_k"):
        SemanticConfig(top_k=0)
    with pytest.raises(ConfigError, match="class_template"):
        SemanticConfig(class_template="no slot")


def test_content_swap_lowers_consistency_and_raises_mutation(lite0):
    enc = SemanticEncoder(SemanticConfig(nframes_used=8), backbone=lite0, text_encoder=_HashTextEncoder())
    steady = moving_scene(num_frames=16, size=256)
    swapped = steady.copy()
    swapped[8:] = _photo_clip("coffee", num_frames=8)
    tok_a, st_a, basis_a = enc(steady)
    tok_b, st_b, basis_b = enc(swapped)
    assert tok_a.shape == (8, 1280) and tuple(st_a) == tuple(
        n for n in stats_of_stream("semantic") if n not in PROMPT_STATS
    )
    assert st_b["semantic_consistency"] < st_a["semantic_consistency"] - 0.05
    assert st_b["semantic_mutation"] > st_a["semantic_mutation"] + 0.2
    assert basis_a.shape == (24,) and abs(float(basis_a.norm()) - 1) < 1e-5
    assert not torch.allclose(basis_a, basis_b)  # new classes enter the basis


def test_class_basis_weights_the_top_classes(lite0):
    enc = SemanticEncoder(SemanticConfig(top_k=2, class_template="{}"), backbone=lite0, text_encoder=_HashTextEncoder())
    probs = torch.zeros(2, 1000)
    probs[0, [3, 7]] = torch.tensor([0.6, 0.2])
    probs[1, [3, 9]] = torch.tensor([0.5, 0.5])
    names = _HashTextEncoder().embed([lite0.classes[i] for i in (3, 7, 9)])
    expected = 0.5 * (0.75 * names[0] + 0.25 * names[1]) + 0.5 * (0.5 * names[0] + 0.5 * names[2])
    assert torch.allclose(enc.class_basis(probs), torch.nn.functional.normalize(expected, dim=0), atol=1e-5)


def test_joint_space_backbone_shares_its_text_tower(tmp_path):
    path = make_tiny_clip(tmp_path)
    enc = SemanticEncoder(SemanticConfig(backbone=path, nframes_used=4, size=48))
    frames = moving_scene(num_frames=8, size=64)
    tokens, stats, basis = enc(frames)
    assert tokens.shape == (4, 16) and basis.shape == (16,)
    assert enc.text_encoder.model is enc.backbone.model
    assert enc.alignment_space.startswith("joint:")
    mean_img = torch.nn.functional.normalize(torch.nn.functional.normalize(tokens, dim=-1).mean(0), dim=0)
    assert torch.allclose(basis, mean_img, atol=1e-5)
    value = enc.prompt_alignment(basis, "a cat")
    assert -1.0 <= value <= 1.0
    with pytest.raises(ModelError, match="dimensions"):
        enc.prompt_alignment(torch.ones(7), "a cat")
    wrong_text = SemanticEncoder(SemanticConfig(backbone=path, text_encoder="minilm"), backbone=enc.backbone)
    with pytest.raises(ConfigError, match="image-text space"):
        _ = wrong_text.text_encoder


def test_alignment_offset_subtracts_the_prompts_mean_similarity_to_the_class_names(lite0, tmp_path):
    from llmvqa.encoders.config import EncoderConfig

    plain = SemanticEncoder(SemanticConfig(class_template="{}"), backbone=lite0, text_encoder=_HashTextEncoder())
    offset = SemanticEncoder(SemanticConfig(class_template="{}", alignment_offset="classes"), backbone=lite0,
                             text_encoder=_HashTextEncoder())
    basis = torch.nn.functional.normalize(torch.arange(24, dtype=torch.float32), dim=0)
    names = torch.nn.functional.normalize(_HashTextEncoder().embed(list(lite0.classes)), dim=-1)
    text = torch.nn.functional.normalize(_HashTextEncoder().embed(["a corgi surfing"])[0], dim=0)
    expected = plain.prompt_alignment(basis, "a corgi surfing") - float((names @ text).mean())
    assert offset.prompt_alignment(basis, "a corgi surfing") == pytest.approx(expected, abs=1e-5)
    assert offset.class_name_matrix().shape == (1000, 24)
    with pytest.raises(ConfigError, match="alignment_offset"):
        SemanticConfig(alignment_offset="videos")
    joint = SemanticEncoder(SemanticConfig(backbone=make_tiny_clip(tmp_path), alignment_offset="classes"))
    with pytest.raises(ConfigError, match="classifier backbone"):
        joint.class_name_matrix()
    # prompt statistics are never cached: the setting leaves the feature-cache key alone
    on = EncoderConfig.from_dict({"semantic": {"alignment_offset": "classes"}})
    assert on.key() == EncoderConfig().key() and on.semantic.alignment_offset == "classes"


def test_class_expectation_scores_the_prompt_against_each_frames_top_classes(lite0, tmp_path):
    """alignment_scoring="class_expectation": per frame, the probability-weighted cosine between the
    prompt and the top-k class names (probabilities from the cached tokens), averaged over frames."""
    from llmvqa.encoders.config import EncoderConfig

    cfg = SemanticConfig(class_template="{}", alignment_scoring="class_expectation", scoring_top_k=3)
    enc = SemanticEncoder(cfg, backbone=lite0, text_encoder=_HashTextEncoder())
    tokens = torch.randn(4, 1280, generator=torch.Generator().manual_seed(0)).abs()  # (T, 1280) pooled features
    probs = lite0.probs_from_embeddings(tokens)
    assert probs.shape == (4, 1000) and torch.allclose(probs.sum(-1), torch.ones(4), atol=1e-5)
    text = torch.nn.functional.normalize(_HashTextEncoder().embed(["a corgi surfing"])[0], dim=0)
    names = torch.nn.functional.normalize(_HashTextEncoder().embed(list(lite0.classes)), dim=-1)
    expected = 0.0
    for p in probs:  # by hand, frame by frame
        top_p, top_i = p.topk(3)
        expected += float(sum(w / top_p.sum() * float(names[i] @ text) for w, i in zip(top_p, top_i, strict=True))) / 4
    assert enc.prompt_alignment(None, "a corgi surfing", tokens) == pytest.approx(expected, abs=1e-5)
    # the frames' classes decide: a frame whose top class is the prompt itself scores higher
    name = lite0.classes[int(probs[0].argmax())]
    assert enc.prompt_alignment(None, name, tokens[:1]) > enc.prompt_alignment(None, "a corgi surfing", tokens[:1])
    # with the class offset, the prompt's mean cosine to all names is subtracted
    both = SemanticEncoder(SemanticConfig(class_template="{}", alignment_scoring="class_expectation",
                                          scoring_top_k=3, alignment_offset="classes"),
                           backbone=lite0, text_encoder=_HashTextEncoder())
    assert both.prompt_alignment(None, "a corgi surfing", tokens) == pytest.approx(
        expected - float((names @ text).mean()), abs=1e-5)
    with pytest.raises(ModelError, match="semantic tokens"):
        enc.prompt_alignment(None, "a corgi surfing")
    with pytest.raises(ConfigError, match="alignment_scoring"):
        SemanticConfig(alignment_scoring="nearest")
    with pytest.raises(ConfigError, match="scoring_top_k"):
        SemanticConfig(scoring_top_k=1001)
    joint = SemanticEncoder(SemanticConfig(backbone=make_tiny_clip(tmp_path), alignment_scoring="class_expectation"))
    with pytest.raises(ConfigError, match="class_expectation"):
        joint.prompt_alignment(None, "a cat", torch.zeros(2, 16))
    # a prompt-time setting: the feature-cache key stays the same
    on = EncoderConfig.from_dict({"semantic": {"alignment_scoring": "class_expectation", "scoring_top_k": 7}})
    assert on.key() == EncoderConfig().key()


def test_prompt_embedding_is_computed_once_per_prompt(lite0):
    class Counting(_HashTextEncoder):
        calls = 0

        def embed(self, texts):
            Counting.calls += len(texts)
            return super().embed(texts)

    enc = SemanticEncoder(SemanticConfig(class_template="{}"), backbone=lite0, text_encoder=Counting())
    basis = torch.nn.functional.normalize(torch.ones(24), dim=0)
    first = [enc.prompt_alignment(basis, p) for p in ("a cat", "a dog", "a cat")]
    assert Counting.calls == 2 and first[0] == first[2]


def test_probs_from_embeddings_matches_the_forward_pass(lite0):
    images = _photo_clip("chelsea", num_frames=2, size=224)
    feats, probs = lite0.embed_and_probs(images)
    assert torch.allclose(lite0.probs_from_embeddings(feats), probs, atol=1e-6)


def test_shared_backbone_is_used_not_reloaded(lite0):
    enc = SemanticEncoder(backbone=lite0, text_encoder=_HashTextEncoder())
    assert enc.backbone is lite0


@pytest.mark.slow
def test_prompt_alignment_prefers_the_prompt_that_describes_the_content(lite0):
    enc = SemanticEncoder(backbone=lite0)  # default text encoder: MiniLM
    _, _, cat_basis = enc(_photo_clip("chelsea"))
    _, _, coffee_basis = enc(_photo_clip("coffee"))
    assert enc.alignment_space == "classes:efficientnet_lite0:top5:minilm"
    cat, car = "a cat sitting", "a red sports car racing on a highway"
    assert enc.prompt_alignment(cat_basis, cat) > enc.prompt_alignment(cat_basis, car) + 0.2
    assert enc.prompt_alignment(coffee_basis, "a cup of espresso") > enc.prompt_alignment(coffee_basis, cat) + 0.1


def test_class_name_table_is_stored_once_and_a_video_without_prompt_loads_no_text_encoder(lite0, tmp_path, monkeypatch):
    import llmvqa.encoders.semantic as semantic

    class Named(_HashTextEncoder):
        name = "minilm"  # stands in for the offline MiniLM: its table is stored
        texts = 0

        def embed(self, texts):
            Named.texts += len(texts)
            return super().embed(texts)

    loads: list[str] = []
    monkeypatch.setenv("LLMVQA_CACHE", str(tmp_path))
    monkeypatch.setattr(semantic, "load_text_encoder", lambda name, **kw: loads.append(name) or Named())
    clip = _photo_clip("chelsea")
    first = SemanticEncoder(backbone=lite0)
    _, _, basis = first(clip)
    assert loads == ["minilm"] and Named.texts == 1000  # every class name, once
    assert len(list((tmp_path / "class_names").glob("*.pt"))) == 1
    again = SemanticEncoder(backbone=lite0)
    _, _, basis2 = again(clip)
    assert loads == ["minilm"] and torch.equal(basis, basis2)  # read from the table: no text encoder loaded
    assert again.alignment_space == first.alignment_space == "classes:efficientnet_lite0:top5:minilm"
    given = SemanticEncoder(backbone=lite0, text_encoder=Named())  # passed in: built in memory, not read from disk
    assert torch.allclose(given(clip)[2], basis, atol=1e-6)
    assert again.prompt_alignment(basis2, "a cat") == pytest.approx(first.prompt_alignment(basis, "a cat"))
    assert loads == ["minilm", "minilm"]  # a prompt loads it

    class Other(_HashTextEncoder):  # a stand-in under another name: used, never stored
        pass

    monkeypatch.setattr(semantic, "load_text_encoder", lambda name, **kw: Other())
    monkeypatch.setenv("LLMVQA_CACHE", str(tmp_path / "other"))
    SemanticEncoder(backbone=lite0)(clip)
    assert not (tmp_path / "other").exists()
