"""The one level/score decoder: five level-word logits → distribution → 1–5 score (Q-Align)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from llmvqa.errors import ModelError
from llmvqa.levels import LEVELS, WEIGHTS, expected_score, level_of_score, level_spread, to_100
from llmvqa.prompts import load_yaml


@dataclass
class LevelScore:
    """A rating read from the level-word logits."""

    probs: dict[str, float]
    """Probability of each level word (softmax over the five level logits only), LEVELS order."""
    score: float
    """Expected value on 1–5 (weights 5..1)."""
    score_100: float
    """The same on 0–100."""
    level: str
    """The level of the score (``level_of_score``: equal-width intervals of 1–5); an explanation's
    closing sentence states this level."""
    spread: float
    """Standard deviation of the level distribution on 1–5 (uncertainty)."""

    @classmethod
    def from_probs(cls, probs) -> LevelScore:
        p = [float(x) for x in probs]
        s = expected_score(p)
        return cls(probs=dict(zip(LEVELS, p, strict=True)), score=s, score_100=to_100(s),
                   level=level_of_score(s), spread=level_spread(p))


def level_prefix(kind: str = "overall", version: str = "v1", **names: str) -> str:
    """Text of an answers.yaml sentence up to (not including) " {level}", e.g. "… this video is"."""
    sentence = load_yaml("answers", version)[kind].format(level="{level}", **names)
    return sentence.split("{level}")[0].rstrip(" ")


def aspect_prefix(aspect: str, version: str = "v1") -> str:
    """Answer prefix of an aspect: "overall", "group:<group>" or "dimension:<dimension>"."""
    kind, _, name = aspect.partition(":")
    if kind == "overall" and not name:
        return level_prefix("overall", version)
    if kind in ("group", "dimension") and name:
        return level_prefix(kind, version, **{kind: name})
    raise ValueError(f"aspect {aspect!r}: use 'overall', 'group:<name>' or 'dimension:<name>'")


def aspect_forms(aspect: str, version: str = "v1") -> tuple[str, ...]:
    """Every way to name one aspect: a dimension by its key ("dimension:prompt_alignment") or by its name
    ("dimension:prompt alignment"); groups and the overall aspect have one."""
    from llmvqa.dimensions import load_dimensions

    kind, _, subject = aspect.partition(":")
    if kind != "dimension":
        return (aspect,)
    for key, d in load_dimensions(version).dimensions.items():
        if subject in (key, d.name):
            return tuple(dict.fromkeys((aspect, f"dimension:{key}", f"dimension:{d.name}")))
    return (aspect,)


def aspect_query(aspect: str, prompt: str | None, version: str = "v1") -> tuple[str | None, str]:
    """(question, answer prefix) that ask for the level of an aspect ("overall", "group:<g>",
    "dimension:<d>"): SIG's first single-dimension template (instructions.yaml, as in training), the
    answer prefilled up to the level word. The overall question is None: the model's own rating
    question (``PromptTemplate.question("rating")``)."""
    prefix = aspect_prefix(aspect, version)
    kind, _, subject = aspect.partition(":")
    if kind == "overall":
        return None, prefix
    q = load_yaml("instructions", version)
    clause = q["prompt_clause"].format(prompt=prompt) if prompt else ""
    label = f"{subject} quality" if kind == "group" else subject
    return q["dimension"][0].format(name=label, definition="", prompt_clause=clause), prefix


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
