"""Instruct records + VideoFeatures → padded training/inference batches for QualityLLM.forward.

Batch keys: input_ids (B, L), attention_mask (B, L), labels (B, L) (-100 outside assistant turns),
level_pos (B,) (index whose next-token logits give the level word; -1 if none), target_score (B,)
(1–5 from record["scores"]["overall"] in 0–1, nan when absent), and per stream:
stream_tokens {s: (B, T_max, D)}, stream_lengths {s: (B,)}, stream_stats {s: (B, S)}.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from llmvqa.errors import DataError
from llmvqa.features import VideoFeatures
from llmvqa.model.projectors import stats_vector
from llmvqa.model.template import IGNORE, PromptTemplate


@dataclass
class Example:
    """One encoded conversation with the video inputs it needs."""

    input_ids: list[int]
    labels: list[int]
    level_pos: int
    target_score: float
    stream_tokens: dict[str, torch.Tensor]
    """stream -> (T, D) float32 encoder tokens."""
    stream_stats: dict[str, torch.Tensor]
    """stream -> (S,) normalized statistics vector (llmvqa.model.projectors.stats_vector)."""


def target_of(record: dict) -> float:
    """record["scores"]["overall"] (0–1) on the 1–5 scale, nan when absent."""
    x = (record.get("scores") or {}).get("overall")
    if x is None:
        return math.nan
    x = float(x)
    if not 0.0 <= x <= 1.0:
        raise DataError(f"record {record.get('id', '?')}", f"scores.overall = {x} is outside 0–1",
                        "store overall scores on 0–1 (SIG format)")
    return 1.0 + 4.0 * x


def encode_conversation(conversations: list[dict], features: VideoFeatures, template: PromptTemplate,
                        prompt: str | None = None, prompt_stats: dict[str, float] | None = None,
                        open_answer: str | None = None, target_score: float = math.nan) -> Example:
    for s in template.stream_order:
        if features.tokens[s].shape[0] < 1:
            raise DataError(f"video features ({features.meta.get('path', '?')})", f"stream {s!r} has no tokens",
                            "re-extract the features; every stream needs at least one frame")
    enc = template.encode(conversations, prompt=prompt, open_answer=open_answer)
    return Example(
        input_ids=enc.input_ids, labels=enc.labels, level_pos=enc.level_pos, target_score=target_score,
        stream_tokens={s: features.tokens[s].float() for s in template.stream_order},
        stream_stats={s: stats_vector(s, features.stats, prompt_stats) for s in template.stream_order},
    )


def encode_example(record: dict, features: VideoFeatures, template: PromptTemplate,
                   prompt_stats: dict[str, float] | None = None) -> Example:
    """One SIG instruct record (docs/architecture.md) with its video's features."""
    if "conversations" not in record:
        raise DataError(f"record {record.get('id', '?')}", "has no 'conversations'", "use the SIG record format")
    return encode_conversation(record["conversations"], features, template, prompt=record.get("prompt") or None,
                               prompt_stats=prompt_stats, target_score=target_of(record))


class Collator:
    """Pads Examples (or (record, features, prompt_stats) tuples) into a batch dict."""

    def __init__(self, template: PromptTemplate, pad_id: int | None = None):
        self.template = template
        tok = template.tokenizer
        self.pad_id = pad_id if pad_id is not None else (tok.pad_token_id if tok.pad_token_id is not None
                                                          else (tok.eos_token_id or 0))

    def __call__(self, items: list) -> dict:
        exs = [it if isinstance(it, Example) else encode_example(it[0], it[1], self.template, *it[2:])
               for it in items]
        b, length = len(exs), max(len(e.input_ids) for e in exs)
        input_ids = torch.full((b, length), self.pad_id, dtype=torch.long)
        labels = torch.full((b, length), IGNORE, dtype=torch.long)
        mask = torch.zeros((b, length), dtype=torch.long)
        for i, e in enumerate(exs):
            n = len(e.input_ids)
            input_ids[i, :n] = torch.tensor(e.input_ids)
            labels[i, :n] = torch.tensor(e.labels)
            mask[i, :n] = 1
        batch = {
            "input_ids": input_ids, "attention_mask": mask, "labels": labels,
            "level_pos": torch.tensor([e.level_pos for e in exs], dtype=torch.long),
            "target_score": torch.tensor([e.target_score for e in exs], dtype=torch.float32),
            "stream_tokens": {}, "stream_lengths": {}, "stream_stats": {},
        }
        for s in self.template.stream_order:
            toks = [e.stream_tokens[s] for e in exs]
            dims = {t.shape[1] for t in toks}
            if len(dims) != 1:
                raise ValueError(f"stream {s!r} has token widths {sorted(dims)} within one batch")
            t_max = max(t.shape[0] for t in toks)
            padded = torch.zeros((b, t_max, dims.pop()), dtype=torch.float32)  # (B, T_max, D)
            for i, t in enumerate(toks):
                padded[i, : t.shape[0]] = t
            batch["stream_tokens"][s] = padded
            batch["stream_lengths"][s] = torch.tensor([t.shape[0] for t in toks], dtype=torch.long)
            batch["stream_stats"][s] = torch.stack([e.stream_stats[s] for e in exs])  # (B, S)
        return batch
