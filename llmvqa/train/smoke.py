"""A tiny random backbone and synthetic quality data, for smoke runs of the training paths.

Used by the CPU training tests and by ``eval/gpu_paths.py`` (the DeepSpeed / QLoRA runs on a GPU).
Nothing here is a quality model: the backbone is random, and each clip's quality is written into its
technical tokens so that a working training loop can learn it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from llmvqa.features import VideoFeatures
from llmvqa.levels import LEVELS, level_of_score
from llmvqa.prompts import load_text, load_yaml
from llmvqa.statistics import PROBE_STATISTICS, PROMPT_STATS, STATISTICS, STREAMS

SMALL_DIMS = {"technical": 8, "motion": 6, "semantic": 10}
"""Stream widths of the synthetic features (the real encoders' are wider; any width works)."""


def corpus_texts(records: list[dict]) -> list[str]:
    """Every text the model will see: prompt files, answer templates, the records' turns and the levels."""
    texts = [load_text(n) for n in ("system", "video", "text_prompt")]
    texts += [t for task in ("rating", "rating_cot") for t in load_yaml("instructions")[task]]
    texts += [str(v) for v in load_yaml("chat_format").values()] + [str(v) for v in load_yaml("answers").values()]
    texts += [t["value"] for r in records for t in r["conversations"]]
    return texts + list(LEVELS)


def make_tiny_backbone(folder: Path, texts: list[str], hidden: int = 32, layers: int = 2, heads: int = 4) -> str:
    """A random LlamaForCausalLM (hidden × layers) with a word-level tokenizer over ``texts``, saved to folder."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    pre = pre_tokenizers.Whitespace()
    words = sorted({w for t in texts for w, _ in pre.pre_tokenize_str(t)})
    specials = ["[PAD]", "[UNK]", "<bos>", "<eos>"]
    vocab = {w: i for i, w in enumerate(specials + words)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="[PAD]", unk_token="[UNK]",
                                  bos_token="<bos>", eos_token="<eos>")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=hidden, intermediate_size=2 * hidden,
                      num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=max(1, heads // 2),
                      max_position_embeddings=1024, pad_token_id=0, bos_token_id=2, eos_token_id=3)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def quality(i: int, n: int) -> float:
    """Clip i's quality in [0, 1] (evenly spread over n clips)."""
    return (i % n) / (n - 1)


def make_records(n: int, split: str = "train") -> list[dict]:
    """Three records per clip (rating, dimension, a short justification) in the instruct JSONL format."""
    answers = load_yaml("answers")
    recs = []
    for i in range(n):
        q = quality(i, n)
        level = level_of_score(1 + 4 * q)
        overall = answers["overall"].format(level=level)
        dim = answers["dimension"].format(dimension="clarity", level=level)
        base = {"video": f"v{i}.mp4", "prompt": "", "split": split, "source": f"s{i}",
                "scores": {"overall": q, "sharpness": q}, "levels": {"overall": level, "sharpness": level}}
        turns = {
            "rating": ("<video>\nRate the quality of this video.", overall),
            "dimension": ("<video>\nHow is the clarity of this video?", dim),
            "why": ("<video>\nWhy does this video look like this?",
                    f"The edges look {'crisp' if q > 0.5 else 'soft'} and detail is {'kept' if q > 0.5 else 'lost'}. "
                    + overall),
        }
        for task, (question, answer) in turns.items():
            recs.append({**base, "id": f"{task}{i}", "task": task,
                         "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]})
    return recs


def make_features(i: int, n: int, dims: dict[str, int] = SMALL_DIMS, frames: int = 4) -> VideoFeatures:
    """Clip i's synthetic features: noise, with the clip's quality added to the technical tokens."""
    g = torch.Generator().manual_seed(100 + i)
    q = quality(i, n)
    tokens = {s: torch.randn(frames, dims[s], generator=g) * 0.1 for s in STREAMS}
    tokens["technical"] += 2 * q - 1  # the clip's quality is readable from its technical tokens
    stats = {st.name: (st.typical[0] + st.typical[1]) / 2 for st in STATISTICS + PROBE_STATISTICS
             if st.name not in PROMPT_STATS}
    return VideoFeatures(tokens=tokens, stats=stats, meta={"content_hash": f"h{i}"})
