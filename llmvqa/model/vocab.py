"""The answer vocabulary: token ids the model's answers are built from, for fast decoding.

Every assistant answer llmvqa trains on is assembled from the prompt files (level sentences,
CoT phrasings, dimension names and definitions, instruction answers). Greedy decoding over
only these tokens needs a (K, H) slice of the LM head instead of all 262k rows of Gemma's —
the head is most of a decoding step on a CPU. Off with ModelConfig.restrict_vocab = False.
"""

from __future__ import annotations

import re
import string

from llmvqa.levels import LEVELS
from llmvqa.prompts import load_yaml

_ANSWER_FILES = ("answers", "cot", "dimensions", "instructions")
_PLACEHOLDER = re.compile(r"\{[^{}]*\}")


def _strings(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in [str(k), *_strings(v)]]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return []


def answer_texts(version: str = "v1") -> list[str]:
    """Every string the answer templates can contribute, placeholders removed."""
    texts = [_PLACEHOLDER.sub(" ", s) for name in _ANSWER_FILES for s in _strings(load_yaml(name, version))]
    return [*texts, *LEVELS, "technical", "motion", "semantic"]


def answer_token_ids(tokenizer, version: str = "v1", extra_ids: tuple[int, ...] = ()) -> list[int]:
    """Sorted token ids of the answer vocabulary: each template string and each of its words,
    with and without a leading space and capitalised, plus digits, punctuation and ``extra_ids``."""
    pieces: set[str] = set(string.punctuation) | set(string.digits) | {"\n", " ", "—", "–"}
    for text in answer_texts(version):
        pieces.add(text)
        for word in re.findall(r"[\w'’-]+|[^\w\s]", text):
            pieces.update({word, word.lower(), word[:1].upper() + word[1:]})
    ids: set[int] = set(extra_ids)
    for piece in pieces:
        for variant in (piece, " " + piece):
            ids.update(tokenizer(variant, add_special_tokens=False)["input_ids"])
    ids.discard(getattr(tokenizer, "unk_token_id", None))
    return sorted(i for i in ids if i is not None)
