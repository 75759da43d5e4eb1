"""Hierarchical chain of thought (SIG): measured evidence → dimension levels → group levels → overall.

``build_cot`` writes one text of the justification plan (``llmvqa.justify``) that inference
generates under: the measured defects cited verbatim, a level sentence of
``prompts/v1/answers.yaml`` for every criticised dimension, one brief praise sentence per group
for the rest, every group, and the overall sentence last. Prose comes from ``prompts/v1/cot.yaml``
and never contains a level word. Deterministic for a given ``random.Random``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from llmvqa.dimensions import Dimension
from llmvqa.justify import BRIEF_LEVELS, justification_plan
from llmvqa.prompts import level_sentence, load_yaml


def dimension_statement(
    dim: Dimension, level: str, rng: random.Random, version: str = "v1"
) -> str:
    """One phrasing of the dimension's impact, followed by its level sentence (the sentence alone
    for the BRIEF_LEVELS)."""
    if level in BRIEF_LEVELS:
        return level_sentence("dimension", level, dim.name, version)
    # No measured numbers go into the text: a generative model would learn to invent them.
    # The measured statistics travel beside the text in the rating result instead.
    phr = rng.choice(load_yaml("cot", version)["dimension"][level])
    text = phr.format(name=dim.name, Name=dim.name[:1].upper() + dim.name[1:], definition=dim.definition)
    return f"{text} {level_sentence('dimension', level, dim.name, version)}"


def build_cot(
    levels: Mapping[str, str], rng: random.Random, version: str = "v1", evidence: Sequence = ()
) -> str:
    """The full hierarchical CoT for a record's ``levels`` (dimensions, groups, "overall") citing its
    measured ``evidence``: one text of the plan the model generates under (llmvqa.justify), so
    training teaches exactly the sentences inference allows."""
    return justification_plan(levels, list(evidence), version).default_text(rng)
