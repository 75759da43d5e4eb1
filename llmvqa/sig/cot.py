"""Hierarchical chain of thought (SIG): dimension statements → group ratings → overall rating.

Every level is stated by a sentence of ``prompts/v1/answers.yaml`` (dimension / group /
overall), so the model always reads a level at the same kind of position; the prose around
them comes from ``prompts/v1/cot.yaml`` and never contains a level word. The text ends with
the overall sentence. Deterministic for a given ``random.Random``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from llmvqa.prompts import load_yaml
from llmvqa.sig.experts import Dimension, load_dimensions


def level_sentence(kind: str, level: str, subject: str = "", version: str = "v1") -> str:
    """The answers.yaml sentence of ``kind`` (overall / group / dimension) stating ``level``."""
    template = load_yaml("answers", version)[kind]
    return template.format(level=level, group=subject, dimension=subject)


BRIEF_LEVELS: tuple[str, ...] = ("excellent", "good")
"""Dimensions at these levels get their level sentence only; the prose (definition, impact,
statistics) is spent on the dimensions that pull the rating down. This keeps a generated
justification near 200 tokens instead of 500, which is what makes explaining fast on a CPU."""


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
    levels: Mapping[str, str], rng: random.Random, version: str = "v1"
) -> str:
    """The full hierarchical CoT for a record's ``levels`` (dimensions, groups, "overall")."""
    spec = load_dimensions(version)
    phr = load_yaml("cot", version)
    parts = [rng.choice(phr["intro"])]
    for group in spec.groups:
        dims = [d for d in spec.of_group(group) if d.key in levels]
        if not dims or group not in levels:
            continue
        parts.extend(dimension_statement(d, levels[d.key], rng, version) for d in dims)
        parts.append(rng.choice(phr["group_intro"]).format(group=group))
        parts.append(level_sentence("group", levels[group], group, version))
    parts.append(rng.choice(phr["overall_intro"]))
    parts.append(level_sentence("overall", levels["overall"], version=version))
    return " ".join(parts)
