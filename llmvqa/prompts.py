"""Prompt text lives in prompts/<version>/, loaded by name — never inlined in code — and is assembled here only:
the questions of instructions.yaml with their text-prompt clause (``question``), the video tag of a user turn
(``VIDEO_TAG``, ``video_turn``), the answers.yaml sentences and the level prefixes a score is read after
(``level_sentence``, ``level_prefix``), and the aspects' questions (``aspect_query``). The model, SIG, the
assessor and the server all build their prompts from these."""

from __future__ import annotations

import functools
import random
from pathlib import Path

import yaml

from llmvqa.errors import ConfigError

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"
DEFAULT_VERSION = "v1"
VIDEO_TAG = "<video>"
"""Where a user turn holds the video: the prompt template puts the feature tokens there."""


def _prompts_dir() -> Path:
    # installed wheel: prompts are shipped as package data under llmvqa/_prompts
    packaged = Path(__file__).resolve().parent / "_prompts"
    return PROMPTS_DIR if PROMPTS_DIR.is_dir() else packaged


@functools.cache
def load_text(name: str, version: str = DEFAULT_VERSION) -> str:
    """Text of prompts/<version>/<name>.txt, trailing newline stripped."""
    path = _prompts_dir() / version / f"{name}.txt"
    if not path.is_file():
        raise ConfigError(str(path), "prompt file not found", f"check the prompt name {name!r} and version {version!r}")
    return path.read_text(encoding="utf-8").rstrip("\n")


@functools.cache
def load_yaml(name: str, version: str = DEFAULT_VERSION) -> dict:
    """Parsed prompts/<version>/<name>.yaml."""
    path = _prompts_dir() / version / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(str(path), "prompt file not found", f"check the prompt name {name!r} and version {version!r}")
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def level_sentence(kind: str, level: str, subject: str = "", version: str = DEFAULT_VERSION) -> str:
    """The answers.yaml sentence of ``kind`` (overall / group / dimension) stating ``level``."""
    return load_yaml("answers", version)[kind].format(level=level, group=subject, dimension=subject)


def question(task: str, prompt: str | None = None, version: str = DEFAULT_VERSION, *,
             pick: int | random.Random = 0, **fields: str) -> str:
    """A question of the instructions.yaml ``task`` (rating, rating_cot, dimension, why, ...): template ``pick``
    (its index, or a ``random.Random`` that draws one, as SIG does), with the text-prompt clause when the clip
    was generated from ``prompt`` and the template's other ``fields`` (name, definition, level)."""
    q = load_yaml("instructions", version)
    templates = q[task]
    template = pick.choice(templates) if isinstance(pick, random.Random) else templates[pick]
    clause = q["prompt_clause"].format(prompt=prompt) if prompt else ""
    return template.format(prompt_clause=clause, **fields)


def defect_question(dimension: str, prompt: str | None = None, version: str = DEFAULT_VERSION, *,
                    pick: int | random.Random = 0) -> str:
    """A yes/no question about one defect (instructions.yaml ``defect``: templates per dimension key), with the
    text-prompt clause after it when the clip was generated from ``prompt``."""
    q = load_yaml("instructions", version)
    templates = q["defect"][dimension]
    template = pick.choice(templates) if isinstance(pick, random.Random) else templates[pick]
    return template + (q["prompt_clause"].format(prompt=prompt) if prompt else "")


def video_turn(*texts: str) -> str:
    """A user turn about the video: the video tag, then each text on its own line."""
    return "\n".join([VIDEO_TAG, *texts])


def level_prefix(kind: str = "overall", version: str = DEFAULT_VERSION, **names: str) -> str:
    """Text of an answers.yaml sentence up to (not including) " {level}", e.g. "… this video is"."""
    sentence = load_yaml("answers", version)[kind].format(level="{level}", **names)
    return sentence.split("{level}")[0].rstrip(" ")


def aspect_prefix(aspect: str, version: str = DEFAULT_VERSION) -> str:
    """Answer prefix of an aspect: "overall", "group:<group>" or "dimension:<dimension>"."""
    kind, _, name = aspect.partition(":")
    if kind == "overall" and not name:
        return level_prefix("overall", version)
    if kind in ("group", "dimension") and name:
        return level_prefix(kind, version, **{kind: name})
    raise ValueError(f"aspect {aspect!r}: use 'overall', 'group:<name>' or 'dimension:<name>'")


def aspect_forms(aspect: str, version: str = DEFAULT_VERSION) -> tuple[str, ...]:
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


def aspect_query(aspect: str, prompt: str | None, version: str = DEFAULT_VERSION) -> tuple[str | None, str]:
    """(question, answer prefix) that ask for the level of an aspect ("overall", "group:<g>",
    "dimension:<d>"): SIG's first single-dimension template (instructions.yaml, as in training), the
    answer prefilled up to the level word. The overall question is None: the model's own rating
    question (``PromptTemplate.question("rating")``)."""
    prefix = aspect_prefix(aspect, version)
    kind, _, subject = aspect.partition(":")
    if kind == "overall":
        return None, prefix
    label = f"{subject} quality" if kind == "group" else subject
    return question("dimension", prompt, version, name=label, definition=""), prefix
