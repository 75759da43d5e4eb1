"""The one level/score decoder of the model: five level-word logits → distribution (``level_probs``) → 1–5 score
(``expected_scores``, Q-Align); a reading becomes a ``llmvqa.levels.LevelRating``."""

from __future__ import annotations

import torch

from llmvqa.errors import ModelError
from llmvqa.levels import LEVELS, WEIGHTS
from llmvqa.prompts import level_prefix


def level_token_ids(tokenizer, version: str = "v1") -> list[int]:
    """Single token ids of the five level words (LEVELS order) as they follow the level prefix.

    The leading-space variant is taken: tokenize "<prefix> <word>" and keep what the word adds.
    Raises ModelError when a level word is not exactly one token for this tokenizer.
    """
    prefix = level_prefix("overall", version)
    base = tokenizer(prefix, add_special_tokens=False)["input_ids"]
    ids = []
    for word in LEVELS:
        full = tokenizer(f"{prefix} {word}", add_special_tokens=False)["input_ids"]
        new = full[len(base):]
        if full[: len(base)] != base or len(new) != 1 or new[0] == tokenizer.unk_token_id:
            pieces = tokenizer.convert_ids_to_tokens(new) if full[: len(base)] == base else full
            raise ModelError(
                getattr(tokenizer, "name_or_path", "tokenizer") or "tokenizer",
                f"level word {word!r} is not a single token after {prefix!r} (got {pieces})",
                "use a backbone whose tokenizer keeps the five level words as single tokens")
        ids.append(new[0])
    if len(set(ids)) != len(ids):
        raise ModelError("tokenizer", f"level words share token ids {ids}", "use a different backbone")
    return ids


def level_probs(logits: torch.Tensor, level_ids: list[int] | None = None) -> torch.Tensor:
    """Softmax over the five level logits: (B, V) with level_ids, or (B, 5) already picked → (B, 5)."""
    if logits.shape[-1] != len(LEVELS):
        if level_ids is None:
            raise ValueError(f"logits have {logits.shape[-1]} columns; pass level_ids to pick the {len(LEVELS)} levels")
        logits = logits[..., level_ids]
    return torch.softmax(logits.float(), dim=-1)


def expected_scores(probs: torch.Tensor) -> torch.Tensor:
    """(B, 5) level probabilities → (B,) expected 1–5 scores (differentiable)."""
    return probs @ torch.tensor(WEIGHTS, dtype=probs.dtype, device=probs.device)
