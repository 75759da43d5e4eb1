"""Quality LLM on tiny random backbones (Gemma3-like and Qwen2-like) built in code and loaded by path."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch

from llmvqa.errors import ConfigError, ModelError
from llmvqa.features import VideoFeatures
from llmvqa.levels import LEVELS, WEIGHTS, LevelRating, level_of_score
from llmvqa.model import ModelConfig, QualityLLM, level_probs, level_token_ids
from llmvqa.model.backbone import load_backbone
from llmvqa.model.collate import encode_conversation, encode_example
from llmvqa.model.scoring import expected_scores
from llmvqa.model.template import IGNORE, VIDEO_TAG
from llmvqa.prompts import level_prefix, load_text, load_yaml
from llmvqa.statistics import PROBE_STATISTICS, PROMPT_STATS, STATISTICS, STREAMS

DIMS = {"technical": 12, "motion": 10, "semantic": 8}
QUESTION = {k: load_yaml("instructions")[t][0].format(prompt_clause="") for k, t in (("rating", "rating"), ("explain", "rating_cot"))}
SPECIALS = ["[PAD]", "[UNK]", "<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"]


def _vocab_words() -> list[str]:
    from tokenizers.pre_tokenizers import Whitespace

    texts = [load_text(n) for n in ("system", "video", "text_prompt")]
    texts += [t for task in ("rating", "rating_cot") for t in load_yaml("instructions")[task]]
    texts += list(load_yaml("answers").values()) + list(load_yaml("chat_format").values())
    texts += [" ".join(LEVELS), "user model a cat runs sharpness flicker technical motion semantic . , ?"]
    words = {w for t in texts for w, _ in Whitespace().pre_tokenize_str(t)}
    return sorted(words)


def tiny_tokenizer(extra_specials=(), bos=True):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = SPECIALS + list(extra_specials)
    vocab = {t: i for i, t in enumerate(specials + [w for w in _vocab_words() if w not in specials])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(specials)
    if bos:
        tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>" if bos else None, eos_token="<eos>",
                                   unk_token="[UNK]", pad_token="[PAD]")


def tiny_bpe_tokenizer():
    """Byte-level BPE trained on the prompt texts (transformers loads a Qwen2 folder as Qwen2Tokenizer)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = [load_text(n) for n in ("system", "video", "text_prompt")]
    texts += [t for task in ("rating", "rating_cot") for t in load_yaml("instructions")[task]]
    texts += [v.format(level=lv, group="technical", dimension="flicker")
              for v in load_yaml("answers").values() for lv in LEVELS]
    texts += [" ".join(_vocab_words())]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1000, special_tokens=SPECIALS + ["<|video_pad|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts * 10, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", unk_token="[UNK]", pad_token="[PAD]")


def _save_backbone(path, kind: str) -> str:
    torch.manual_seed(0)
    if kind == "gemma":
        from transformers import Gemma3ForCausalLM, Gemma3TextConfig

        tok = tiny_tokenizer()
        cfg = Gemma3TextConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                               num_attention_heads=2, num_key_value_heads=1, head_dim=16, query_pre_attn_scalar=16,
                               sliding_window=16, layer_types=["sliding_attention", "full_attention"],
                               max_position_embeddings=512, pad_token_id=0, bos_token_id=2, eos_token_id=3)
        model = Gemma3ForCausalLM(cfg)
    elif kind == "qwen-vl":  # Qwen2.5-VL-like: a vision tower beside the language model
        from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

        tok = tiny_bpe_tokenizer()
        cfg = Qwen2_5_VLConfig(
            vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32,
                               patch_size=14, temporal_patch_size=2, spatial_merge_size=2, window_size=112,
                               fullatt_block_indexes=[1], in_channels=3),
            text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                             num_key_value_heads=1, vocab_size=len(tok), max_position_embeddings=512,
                             tie_word_embeddings=False, pad_token_id=0, eos_token_id=3,
                             rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 2, 4]}),
        )
        model = Qwen2_5_VLForConditionalGeneration(cfg)
    else:
        from transformers import Qwen2Config, Qwen2ForCausalLM

        tok = tiny_bpe_tokenizer()
        cfg = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                          tie_word_embeddings=False, pad_token_id=0, eos_token_id=3)
        model = Qwen2ForCausalLM(cfg)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def backbones(tmp_path_factory) -> dict[str, str]:
    return {k: _save_backbone(tmp_path_factory.mktemp(k), k) for k in ("gemma", "qwen")}


def make_features(seed: int = 0, lengths=(5, 4, 6)) -> VideoFeatures:
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    tokens = {s: torch.randn(t, DIMS[s], generator=g) for s, t in zip(STREAMS, lengths, strict=True)}
    stats = {s.name: float(rng.uniform(*s.typical)) for s in STATISTICS + PROBE_STATISTICS if s.name not in PROMPT_STATS}
    return VideoFeatures(tokens=tokens, stats=stats)


def build(path: str, projector: str = "mlp", lora: bool = False, **kw) -> QualityLLM:
    torch.manual_seed(1)
    kw.setdefault("max_new_tokens", 6)
    cfg = ModelConfig(backbone=path, projector=projector, num_query_tokens=3, stream_dims=DIMS, use_lora=lora,
                      lora_r=4, lora_alpha=8, lora_dropout=0.0, **kw)
    model = QualityLLM.build(cfg)
    model.eval()
    return model


def perturb_lora(model: QualityLLM) -> None:
    """Start the adapters away from a no-op so merged-vs-unmerged comparisons can fail."""
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in model.lm.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)


def rating_record(level: str = "good", overall: float | None = 0.75) -> dict:
    rec = {"id": "x", "prompt": "", "conversations": [
        {"from": "human", "value": VIDEO_TAG + "\n" + QUESTION["rating"]},
        {"from": "gpt", "value": load_yaml("answers")["overall"].format(level=level)}]}
    if overall is not None:
        rec["scores"] = {"overall": overall}
    return rec


# ---------------------------------------------------------------------------- splicing and template
@pytest.mark.parametrize("kind", ["gemma", "qwen"])
@pytest.mark.parametrize("projector", ["mlp", "resampler"])
def test_features_land_exactly_at_placeholders(backbones, kind, projector):
    model = build(backbones[kind], projector)
    batch = model.collator([(rating_record(), make_features(0)), (rating_record("bad"), make_features(1, (2, 7, 3)))])
    ids = batch["input_ids"]
    with torch.no_grad():
        emb = model.embed_inputs(ids, batch)
        feats = model.project(batch)  # (B, N, H)
        plain = model.embed(ids)
    ph = ids == model.placeholder_id
    assert feats.shape[1] == 3 * model.cfg.tokens_per_stream == int(ph[0].sum())
    for b in range(2):
        torch.testing.assert_close(emb[b][ph[b]], feats[b])
        torch.testing.assert_close(emb[b][~ph[b]], plain[b][~ph[b]])
    # placeholders form one contiguous run per stream, in template order
    runs = np.flatnonzero(np.diff(np.r_[0, ph[0].int().numpy(), 0]) != 0).reshape(-1, 2)
    assert [int(e - s) for s, e in runs] == [model.cfg.tokens_per_stream] * 3


def test_placeholder_choice(backbones):
    assert build(backbones["qwen"]).placeholder_token == "<|video_pad|>"  # existing token reused
    gemma = build(backbones["gemma"])
    assert gemma.placeholder_token == "<llmvqa_feature>"  # tiny vocab has no spare token: added
    assert gemma.lm.get_input_embeddings().weight.shape[0] == len(gemma.tokenizer)


def test_count_mismatch_names_both_numbers(backbones):
    model = build(backbones["gemma"])
    batch = model.collator([(rating_record(), make_features())])
    ids = batch["input_ids"].clone()
    pos = int((ids[0] == model.placeholder_id).nonzero()[0])
    ids[0, pos] = model.level_ids[0]
    n = 3 * model.cfg.tokens_per_stream
    with pytest.raises(ValueError, match=rf"placeholder tokens: {n - 1}, feature tokens: {n}"):
        model.embed_inputs(ids, batch)


def test_template_labels_level_pos_and_prompt_line(backbones):
    model = build(backbones["gemma"])
    tmpl = model.template
    two = load_yaml("answers")["group"].format(group="technical", level="poor") + " " + \
        load_yaml("answers")["overall"].format(level="fair")
    rec = rating_record()
    rec["conversations"][1]["value"] = two
    rec["prompt"] = "a cat runs"
    ex = encode_example(rec, make_features(), tmpl, {"prompt_alignment": 0.4})
    ids, labels = ex.input_ids, ex.labels
    assert ids[ex.level_pos + 1] == model.level_ids[LEVELS.index("fair")]  # LAST level sentence
    labeled = [i for i, lab in enumerate(labels) if lab != IGNORE]
    assert labels[ex.level_pos + 1] == ids[ex.level_pos + 1]
    assert all(ids[i] != model.placeholder_id for i in labeled)
    assert ids[labeled[-1]] == model.tokenizer.convert_tokens_to_ids("<end_of_turn>")  # the model learns to stop
    text = model.tokenizer.decode(ids)
    assert '" a cat runs "' in text or "a cat runs" in text  # text-prompt line rendered
    assert ex.stream_stats["semantic"][-3] == 1.0  # has-prompt indicator (the last two slots: the human prior)
    assert ex.stream_stats["semantic"][-2:].tolist() == [0.0, 0.0]  # no prior given
    no_prompt = encode_example(rating_record(), make_features(), tmpl)
    assert "cat" not in model.tokenizer.decode(no_prompt.input_ids)
    assert no_prompt.stream_stats["semantic"][-1] == 0.0
    assert encode_example(rating_record(overall=None), make_features(), tmpl).target_score != \
        encode_example(rating_record(overall=None), make_features(), tmpl).target_score  # nan
    assert ex.target_score == pytest.approx(1 + 4 * 0.75)


# ---------------------------------------------------------------------------- scoring
def test_level_softmax_math_by_hand():
    torch.manual_seed(0)
    logits = torch.randn(3, 40)
    ids = [7, 3, 30, 12, 0]
    p = level_probs(logits, ids)
    sub = logits[:, ids].double()
    hand = torch.exp(sub) / torch.exp(sub).sum(-1, keepdim=True)
    torch.testing.assert_close(p.double(), hand)
    torch.testing.assert_close(expected_scores(p.double()), (hand * torch.tensor(WEIGHTS).double()).sum(-1))
    ls = LevelRating.from_probs("", hand[0].tolist())
    mu = float((hand[0] * torch.tensor(WEIGHTS).double()).sum())
    assert ls.score == pytest.approx(mu) and ls.score_100 == pytest.approx((mu - 1) * 25)
    assert ls.spread == pytest.approx(math.sqrt(float((hand[0] * (torch.tensor(WEIGHTS).double() - mu) ** 2).sum())))
    assert ls.level == LEVELS[int(hand[0].argmax())]


@pytest.mark.parametrize("kind", ["gemma", "qwen"])
def test_score_matches_full_vocab_logits_of_the_lm(backbones, kind):
    """Score-only (LM head only at the level position) equals the HF model's full forward."""
    model = build(backbones[kind], lora=True)
    perturb_lora(model)
    feats = make_features()
    got = model.score(feats)

    ex = encode_conversation([{"role": "user", "content": VIDEO_TAG + "\n" + QUESTION["rating"]}], feats,
                             model.template, open_answer=level_prefix("overall"))
    batch = model.collator([ex])
    with torch.no_grad():
        emb = model.embed_inputs(batch["input_ids"], batch)
        full = model.lm(inputs_embeds=emb, attention_mask=batch["attention_mask"]).logits[0, -1]
    hand = torch.softmax(full[model.level_ids].double(), -1)
    np.testing.assert_allclose([got.distribution[w] for w in LEVELS], hand.numpy(), atol=1e-5)


def test_score_only_equals_teacher_forced_rating(backbones):
    model = build(backbones["gemma"])
    feats = make_features()
    with torch.no_grad():
        out = model(model.collator([(rating_record("poor"), feats)]))
    assert torch.isfinite(out["loss"])
    np.testing.assert_allclose(out["level_probs"][0].detach().numpy(), list(model.score(feats).distribution.values()), atol=1e-5)
    with torch.no_grad():
        none = model(model.collator([(rating_record() | {"conversations": rating_record()["conversations"][:1]
                                                         + [{"from": "gpt", "value": "a cat"}]}, feats)]))
    assert not bool(none["level_mask"][0]) and math.isnan(float(none["expected_score"][0]))


def test_explain_gives_the_score_of_score_mode_and_states_its_level(backbones):
    model = build(backbones["gemma"], lora=True)
    perturb_lora(model)
    feats = make_features()
    text, score = model.explain(feats)
    assert text.rstrip().endswith(f"{level_prefix('overall')} {score.level}.")
    assert text.count(level_prefix("overall")) == 1
    plain = model.score(feats)  # one score per clip, with or without its justification
    assert score.score == pytest.approx(plain.score, abs=1e-6) and score.level == plain.level
    assert score.level == level_of_score(score.score)
    reply = model.chat(feats, [{"role": "user", "content": "why ?"}])
    assert isinstance(reply, str)


def _evidence():
    from llmvqa.evidence import Evidence

    return [Evidence("smoothness", "freeze", 2.0, 2.5, 0.8, "the picture freezes from 2.0 s to 2.5 s"),
            Evidence("flicker", "flicker", 0.5, 1.5, 0.4, "brightness jumps up and down from 0.5 s to 1.5 s")]


LEVELS_OF_CLIP = {"overall": "fair", "technical": "good", "motion": "poor", "semantic": "good", "sharpness": "good",
                  "noise": "excellent", "compression": "good", "exposure": "fair", "color": "good",
                  "dynamic_degree": "good", "smoothness": "poor", "flicker": "fair", "temporal_consistency": "bad",
                  "semantic_consistency": "excellent"}


@pytest.mark.parametrize("temperature", [0.0, 3.0])
def test_explain_writes_only_the_plan_true_sentences_and_the_reported_levels(backbones, temperature):
    """Greedy or sampled at a high temperature (near-random choices), the random model's text cites every
    measured defect with its time, states each reported level once and closes with the overall level."""
    from llmvqa.evaluation.justification import violations

    model = build(backbones["qwen"], lora=True, max_new_tokens=400)
    perturb_lora(model)
    feats = make_features()
    torch.manual_seed(0)
    ev = _evidence()
    text, score = model.explain(feats, levels=LEVELS_OF_CLIP, evidence=ev, score=model.score(feats),
                                temperature=temperature)
    assert violations(text, LEVELS_OF_CLIP, [e.text for e in ev]) == []
    for e in ev:
        assert text.count(e.sentence) == 1
    from llmvqa.sig.validate import stated_levels

    stated = dict(stated_levels(text)[0])
    assert {"smoothness", "flicker", "temporal_consistency", "exposure", "technical", "motion", "semantic",
            "overall"} <= set(stated)  # criticised dimensions and every group: stated
    assert "noise" not in stated  # praised briefly, without its level sentence
    assert text.index("2.0 s") < text.index(level_prefix("group", group="motion"))  # dimension → group → overall
    assert text.rstrip().endswith(level_prefix("overall") + " fair.")


@pytest.mark.parametrize("kind", ["gemma", "qwen"])
def test_jump_forward_writes_the_same_text_in_fewer_forward_passes(backbones, kind):
    """The plan's forced tokens are checked in one pass (generate's assisted decoding with PlanCandidates):
    the same greedy text as one token per pass, with fewer passes of the decoder."""
    from llmvqa.justify import justification_plan
    from llmvqa.model.collate import encode_conversation
    from llmvqa.model.generation import generate_planned

    model = build(backbones[kind], lora=True, max_new_tokens=400)
    perturb_lora(model)
    feats = make_features()
    ex = encode_conversation(model._evidence_turn(None, "explain", None, _evidence()), feats, model.template,
                             prompt_stats=model.input_stats(feats, None), open_answer="")
    plan = justification_plan(LEVELS_OF_CLIP, _evidence())
    passes = []
    hook = model.lm.get_base_model().get_decoder().register_forward_pre_hook(lambda *_: passes.append(1))
    try:
        texts = {}
        for jump in (False, True):
            passes.clear()
            texts[jump] = (generate_planned(model, ex, plan, max_new_tokens=400, jump=jump), len(passes),
                           model.last_generation["completion_tokens"])
    finally:
        hook.remove()
    (step_text, step_passes, tokens), (jump_text, jump_passes, jump_tokens) = texts[False], texts[True]
    assert jump_text == step_text and jump_tokens == tokens > 20
    assert step_passes == tokens  # one pass per token (the prefill writes the first)
    assert jump_passes < step_passes / 2


def test_explain_cut_short_still_closes_with_every_required_level(backbones):
    from llmvqa.evaluation.justification import violations

    model = build(backbones["qwen"], lora=True)
    feats = make_features()
    text, _ = model.explain(feats, levels=LEVELS_OF_CLIP, evidence=_evidence(), score=model.score(feats),
                            max_new_tokens=5)
    assert violations(text, LEVELS_OF_CLIP, [e.text for e in _evidence()]) == []


def test_chat_answers_from_the_plan_of_the_question(backbones):
    model = build(backbones["qwen"], lora=True)
    perturb_lora(model)
    feats = make_features()
    ctx = {"levels": LEVELS_OF_CLIP, "evidence": _evidence(), "justification": "The overall quality of this video is fair."}
    worst = model.chat(feats, [{"role": "user", "content": "which part looks worst?"}], **ctx)
    assert "from 2.0 s to 2.5 s" in worst or "from 0.5 s to 1.5 s" in worst
    why = model.chat(feats, [{"role": "user", "content": "why is the motion poor?"}], **ctx)
    assert why.endswith(level_prefix("group", group="motion") + " poor.")
    assert "2.0 s" in why or "0.5 s" in why
    fix = model.chat(feats, [{"role": "user", "content": "how could the generator improve this video?"}], **ctx)
    assert "2.0 s" in fix or "0.5 s" in fix
    first = model.chat(feats, [{"role": "user", "content": "is there any flicker in the first second?"}], **ctx)
    assert first.startswith("Yes:") and "0.5 s" in first
    last = model.chat(feats, [{"role": "user", "content": "is there any flicker in the last second?"}], **ctx)
    assert last.startswith("Not in the last 1.0 s")


def test_subset_head_matches_the_full_head_on_its_rows(backbones):
    from llmvqa.model.generation import SubsetHead

    model = build(backbones["qwen"], lora=True)
    h = torch.randn(1, 3, 32)
    ids = [3, 7, 11, 40]
    out = SubsetHead(model.lm_head, ids)(h)
    np.testing.assert_allclose(out[..., ids].detach().numpy(), model.lm_head(h)[..., ids].detach().numpy(), atol=1e-5)
    others = [i for i in range(out.shape[-1]) if i not in ids]
    assert float(out[..., others].max()) <= -1e8


@pytest.mark.parametrize("kind", ["gemma", "qwen"])
def test_score_queries_shares_the_prefix_and_matches_score(backbones, kind):
    model = build(backbones[kind], lora=True)
    perturb_lora(model)
    feats = make_features(seed=4)
    stats = {"prompt_alignment": 0.3}
    queries = [(None, None), ("How is the flicker of this video ?", level_prefix("dimension", dimension="flicker")),
               ("How is the technical quality of this video ?", level_prefix("group", group="technical"))]
    fast = model.score_queries(feats, queries, prompt="a cat runs", prompt_stats=stats)
    for (q, a), got in zip(queries, fast, strict=True):
        ref = model.score(feats, prompt="a cat runs", question=q, prompt_stats=stats, answer_prefix=a)
        np.testing.assert_allclose(list(got.distribution.values()), list(ref.distribution.values()), atol=1e-5)
    assert len({round(r.score, 6) for r in fast}) > 1  # different questions, different answers


def test_lora_merged_equals_unmerged_and_is_not_a_noop(backbones):
    model = build(backbones["qwen"], lora=True)
    perturb_lora(model)
    batch = model.collator([(rating_record(), make_features())])
    with torch.no_grad():
        a = model(batch)
        with model.lm.disable_adapter():
            base = model(batch)
        model.lm.merge_adapter()
        b = model(batch)
    assert not torch.allclose(a["level_logits"], base["level_logits"], atol=1e-4)
    torch.testing.assert_close(a["level_logits"], b["level_logits"], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(a["loss"], b["loss"], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("projector", ["mlp", "resampler"])
def test_save_load_round_trip(backbones, tmp_path, projector):
    model = build(backbones["gemma"], projector, lora=True)
    perturb_lora(model)
    feats = make_features()
    before = model.score(feats)
    batch = model.collator([(rating_record(), feats)])
    loss = model(batch)["loss"]
    model.save_pretrained(tmp_path / "ckpt")
    for f in ("config.json", "projectors.safetensors", "adapter/adapter_model.safetensors", "adapter/adapter_config.json"):
        assert (tmp_path / "ckpt" / f).is_file(), f
    loaded = QualityLLM.from_pretrained(tmp_path / "ckpt")
    assert loaded.score(feats).distribution == pytest.approx(before.distribution, abs=1e-6)
    torch.testing.assert_close(loaded(loaded.collator([(rating_record(), feats)]))["loss"], loss)
    fresh = build(backbones["gemma"], projector, lora=True)  # different random projectors → different score
    assert fresh.score(feats).distribution != pytest.approx(before.distribution, abs=1e-6)


def test_resampler_ignores_padding(backbones):
    model = build(backbones["qwen"], "resampler")
    a = model.collator([(rating_record(), make_features(0))])
    b = model.collator([(rating_record(), make_features(0)), (rating_record(), make_features(1, (9, 9, 9)))])
    with torch.no_grad():
        torch.testing.assert_close(model.project(a)[0], model.project(b)[0], atol=1e-5, rtol=1e-4)


def test_4bit_without_cuda_is_a_clear_model_error(backbones, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ModelError, match="load_in_4bit needs a CUDA GPU"):
        load_backbone(backbones["gemma"], load_in_4bit=True)


def test_level_word_split_by_tokenizer_fails_clearly():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = [w for w in _vocab_words() if w != "excellent"] + ["excel", "##lent", "[UNK]"]
    tok = Tokenizer(models.WordPiece({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")
    with pytest.raises(ModelError, match=re.escape("level word 'excellent' is not a single token")):
        level_token_ids(fast)
    assert len(level_token_ids(tiny_tokenizer())) == 5


def test_config_checks():
    with pytest.raises(ConfigError, match="projector"):
        ModelConfig(projector="linear")
    with pytest.raises(ConfigError, match="stream_dims"):
        ModelConfig(stream_dims={"audio": 3})
    with pytest.raises(ConfigError, match="unknown settings"):
        ModelConfig.from_dict({"nope": 1})
    cfg = ModelConfig(stream_dims=DIMS, projector="resampler")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


def test_missing_checkpoint_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="no config.json"):
        QualityLLM.from_pretrained(tmp_path)


# ---------------------------------------------------------------------------- real weights
@pytest.mark.slow
def test_real_gemma3_270m_scores_end_to_end(bikes_path):
    """Real Gemma 3 270M (offline GGUF → cache); real encoder features when the pipeline exists."""
    prompt, prompt_stats = "a person riding a bike", None
    try:
        from llmvqa.encoders.pipeline import FeatureExtractor
    except ImportError:
        feats = make_features()
    else:
        fx = FeatureExtractor()
        feats = fx.extract(bikes_path)
        prompt_stats = fx.prompt_stats(feats, prompt)
    dims = {s: int(t.shape[1]) for s, t in feats.tokens.items()}
    model = QualityLLM.build(ModelConfig(backbone="gemma3-270m", stream_dims=dims, max_new_tokens=8))
    assert model.placeholder_token == "<unused0>"  # a spare token: the 262k vocab is not resized
    s = model.score(feats, prompt=prompt, prompt_stats=prompt_stats)
    assert sum(s.distribution.values()) == pytest.approx(1.0, abs=1e-5) and 1.0 <= s.score <= 5.0
    text, s2 = model.explain(feats, prompt=prompt, prompt_stats=prompt_stats)
    assert text.endswith(f"{level_prefix('overall')} {s2.level}.")


def test_backbone_goes_to_the_gpu_only_when_no_device_is_named(backbones, monkeypatch):
    """A recipe with device: cpu on a machine with a GPU keeps the backbone on the CPU."""
    moved = []
    real_to = torch.nn.Module.to

    def record_to(self, *args, **kwargs):
        if args and isinstance(args[0], str):
            moved.append(args[0])
            return real_to(self, "cpu")  # no GPU here: record where it would have gone
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.nn.Module, "to", record_to)
    load_backbone(backbones["qwen"], device="cpu")
    load_backbone(backbones["qwen"])
    assert moved == ["cpu", "cuda"]


# ---------------------------------------------------------------------------- scorer (a second checkpoint)
def perturb(model: QualityLLM, seed: int) -> QualityLLM:
    """Random LoRA B and projector weights of one seed: two seeds give two different models."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name or name.startswith("projectors"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return model


def _probs(s: LevelRating) -> list[float]:
    return list(s.distribution.values())


def test_a_scorer_reads_every_overall_level_and_the_main_model_the_rest(backbones, tmp_path):
    import shutil

    feats, stats = make_features(seed=2), {"prompt_alignment": 0.2}
    perturb(build(backbones["gemma"], lora=True), 5).save_pretrained(tmp_path / "main")
    perturb(build(backbones["gemma"], lora=True), 6).save_pretrained(tmp_path / "scorer")
    main = QualityLLM.from_pretrained(tmp_path / "main")
    scorer = QualityLLM.from_pretrained(tmp_path / "scorer")
    shutil.copytree(tmp_path / "scorer", tmp_path / "main" / "scorer")
    both = QualityLLM.from_pretrained(tmp_path / "main")
    assert both.has_scorer and not main.has_scorer
    assert not QualityLLM.from_pretrained(tmp_path / "main", scorer=False).has_scorer
    grads = {k: p.requires_grad for k, p in both.named_parameters()}

    dim = ("How is the flicker of this video ?", level_prefix("dimension", dimension="flicker"))
    overall = both.score(feats, "a cat", prompt_stats=stats)
    assert _probs(overall) == pytest.approx(_probs(scorer.score(feats, "a cat", prompt_stats=stats)), abs=1e-5)
    assert _probs(overall) != pytest.approx(_probs(main.score(feats, "a cat", prompt_stats=stats)), abs=1e-3)
    ref_dim = main.score(feats, "a cat", question=dim[0], answer_prefix=dim[1], prompt_stats=stats)
    got_dim = both.score(feats, "a cat", question=dim[0], answer_prefix=dim[1], prompt_stats=stats)
    assert _probs(got_dim) == pytest.approx(_probs(ref_dim), abs=1e-5)
    # the shared-prefix path routes each query the same way, in the asked order
    fast = both.score_queries(feats, [dim, (None, None)], prompt="a cat", prompt_stats=stats)
    assert _probs(fast[0]) == pytest.approx(_probs(ref_dim), abs=1e-5)
    assert _probs(fast[1]) == pytest.approx(_probs(overall), abs=1e-5)
    # explain: the main model's text, ending in one overall sentence with the scorer's level
    text, score = both.explain(feats, "a cat", prompt_stats=stats, max_new_tokens=24)
    main_text, _ = main.explain(feats, "a cat", prompt_stats=stats, max_new_tokens=24)
    prefix = level_prefix("overall")
    assert _probs(score) == pytest.approx(_probs(overall), abs=1e-5)
    assert text.endswith(f"{prefix} {overall.level}.") and text.count(prefix) == 1
    assert text.rsplit(prefix, 1)[0].strip() == main_text.rsplit(prefix, 1)[0].strip()
    # switching adapters leaves every parameter's requires_grad as it was
    assert {k: p.requires_grad for k, p in both.named_parameters()} == grads
    # saving keeps the scorer; the copy loads to the same numbers
    both.save_pretrained(tmp_path / "again")
    assert (tmp_path / "again" / "scorer" / "adapter" / "adapter_model.safetensors").is_file()
    assert not (tmp_path / "again" / "adapter" / "scorer").exists()  # PEFT's layout for a 2nd adapter: not used
    again = QualityLLM.from_pretrained(tmp_path / "again")
    assert _probs(again.score(feats, "a cat", prompt_stats=stats)) == pytest.approx(_probs(overall), abs=1e-5)


def test_a_scorer_from_another_recipe_is_a_clear_model_error(backbones, tmp_path):
    import shutil

    perturb(build(backbones["gemma"], lora=True), 5).save_pretrained(tmp_path / "main")
    cfg = ModelConfig(backbone=backbones["gemma"], num_query_tokens=2, stream_dims=DIMS, use_lora=True, lora_r=4)
    QualityLLM.build(cfg).save_pretrained(tmp_path / "other")
    shutil.copytree(tmp_path / "other", tmp_path / "main" / "scorer")
    with pytest.raises(ModelError, match=r"num_query_tokens"):
        QualityLLM.from_pretrained(tmp_path / "main")
    shutil.rmtree(tmp_path / "main" / "scorer")
    build(backbones["gemma"], lora=False).save_pretrained(tmp_path / "main" / "scorer")  # no adapter
    with pytest.raises(ModelError, match="LoRA adapters"):
        QualityLLM.from_pretrained(tmp_path / "main")


def test_chat_format_follows_the_backbone_and_is_recorded(backbones, tmp_path):
    qwen, gemma = build(backbones["qwen"], lora=True), build(backbones["gemma"], lora=True)
    assert qwen.cfg.chat_format == "chatml" and gemma.cfg.chat_format == "gemma"
    ex = encode_conversation([{"role": "user", "content": VIDEO_TAG + " why ?"}], make_features(), qwen.template,
                             open_answer="")
    text = qwen.tokenizer.decode(ex.input_ids)
    assert "<|im_start|>user" in text and "<|im_start|>assistant" in text and "<start_of_turn>" not in text
    qwen.save_pretrained(tmp_path / "q")
    meta = json.loads((tmp_path / "q" / "config.json").read_text())
    assert meta["model"]["chat_format"] == "chatml"
    del meta["model"]["chat_format"]  # a checkpoint from before the setting: trained with gemma markers
    (tmp_path / "q" / "config.json").write_text(json.dumps(meta))
    assert QualityLLM.from_pretrained(tmp_path / "q").template.chat_format == "gemma"


def test_scoring_and_generation_stop_at_once_when_cancelled(backbones):
    import threading

    from llmvqa.cancel import Cancelled, cancellable

    model = build(backbones["qwen"], lora=True, max_new_tokens=400)
    feats = make_features()
    score = model.score(feats)
    event = threading.Event()
    event.set()  # the deadline has passed: the next decoder layer of any forward pass stops the work
    with cancellable(event), pytest.raises(Cancelled):
        model.score(feats)
    with cancellable(event), pytest.raises(Cancelled):
        model.explain(feats, levels=LEVELS_OF_CLIP, evidence=_evidence(), score=score)
    calls = []
    stop = threading.Event()

    class SetAfter:  # a streamer that sets the event after the third decoding pass: generation stops there
        def put(self, value):
            calls.append(len(value.flatten()))
            if len(calls) > 3:
                stop.set()

        def end(self):
            pass

    with cancellable(stop), pytest.raises(Cancelled):
        model.explain(feats, levels=LEVELS_OF_CLIP, evidence=_evidence(), score=score, streamer=SetAfter())
    assert len(calls) <= 5  # the pass in flight may finish; the next one stops at its first layer
    model.explain(feats, levels=LEVELS_OF_CLIP, evidence=_evidence(), score=score)
    assert model.last_generation["completion_tokens"] > 20  # outside the block: not cancelled
    assert sum(calls) < model.last_generation["completion_tokens"]


CHATML_TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
                   "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
                   "{% endif %}")


def test_a_tokenizer_with_its_own_chat_template_is_prompted_exactly_as_apply_chat_template_renders():
    from llmvqa.model.template import PromptTemplate, resolve_chat_format

    tok = tiny_bpe_tokenizer()
    assert resolve_chat_format("auto", tok) == "chatml"  # no template of its own: the ChatML markers file
    tok.chat_template = CHATML_TEMPLATE  # what Qwen2.5's tokenizer_config.json carries (without the tools part)
    assert resolve_chat_format("auto", tok) == "template"
    pad = "<|video_pad|>"
    t = PromptTemplate(tok, tokens_per_stream=2, placeholder_id=tok.convert_tokens_to_ids(pad), level_ids=[0, 1, 2, 3, 4],
                       chat_format="auto")
    video = t.video_text
    for stream in STREAMS:
        video = video.replace("{" + stream + "}", pad * 2)
    conv = [{"role": "user", "content": "<video>\nHow good is it?"}, {"role": "assistant", "content": "It is fine."}]
    want = [{"role": "system", "content": t.system}, {"role": "user", "content": video + "\nHow good is it?"},
            {"role": "assistant", "content": "It is fine."}]
    assert tok.decode(t.encode(conv).input_ids) == tok.apply_chat_template(want, tokenize=False)
    prompt = tok.decode(t.encode(conv[:1], open_answer="").input_ids)  # where the answer starts: the generation prompt
    assert prompt == tok.apply_chat_template(want[:2], tokenize=False, add_generation_prompt=True)
    tok.chat_template = "{{ messages[0]['content'] }}"  # drops turns: refused with the way out
    with pytest.raises(ConfigError, match="chat template"):
        PromptTemplate(tok, 2, tok.convert_tokens_to_ids(pad), [0, 1, 2, 3, 4], chat_format="template")
