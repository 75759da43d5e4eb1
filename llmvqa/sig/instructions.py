"""SIG instruction types: question/answer pairs generated from one video's scores and levels.

Tasks (record field ``task``):

- ``rating``: overall question → the overall sentence.
- ``rating_cot``: rate-and-explain → hierarchical CoT (``cot.build_cot``).
- ``dimension``: one dimension asked → that dimension's sentence; also one group asked as
  "<group> quality" → the group sentence (how ``llmvqa.assessor`` asks the model for group levels).
- ``dimension_rating``: all levels asked → every dimension, group and overall sentence, no prose
  (the "dimension → rating" pairs of progressive training's first stage).
- ``defect_yesno``: "Does this video flicker?" → "Yes."/"No." + the dimension sentence; only
  asked when the level is poor/bad (yes) or good/excellent (no), never fair.
- ``worst_aspect``: the lowest-scored dimension, its definition and its sentence.
- ``why``: "Why is the quality X?" → statements of the weakest (X ≤ fair) or strongest
  dimensions, then the overall sentence.
- ``improve``: fixes for the dimensions rated below good, worst first, then the overall sentence.

Question templates live in ``prompts/v1/instructions.yaml``; the first human turn starts
with ``"<video>\\n"``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from llmvqa.dimensions import load_dimensions
from llmvqa.errors import ConfigError
from llmvqa.levels import LEVELS
from llmvqa.prompts import defect_question, load_yaml, question, video_turn
from llmvqa.sig.cot import build_cot, dimension_statement, level_sentence

TASKS = ("rating", "rating_cot", "dimension", "dimension_rating", "defect_yesno", "worst_aspect", "why", "improve")
OVERALL_TASKS = ("rating", "rating_cot", "dimension_rating", "why", "improve")
"""Tasks whose answer ends in the overall sentence (the trainer's score loss reads its level word)."""


@dataclass
class InstructionConfig:
    tasks: tuple[str, ...] = TASKS
    """Instruction types to generate for every video."""
    dimension_questions: int = 2
    """How many single-dimension questions per video (random dimensions)."""
    group_questions: int = 1
    """How many single-group questions per video (random groups; task "dimension")."""
    defect_questions: int = 2
    """How many yes/no defect questions per video (among dimensions not rated fair)."""
    reasons: int = 2
    """Dimensions quoted in a "why" answer."""
    version: str = "v1"
    """Prompt version (prompts/<version>/)."""

    def __post_init__(self) -> None:
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown:
            raise ConfigError("tasks", f"unknown instruction types {unknown}", f"choose from {TASKS}")
        if min(self.dimension_questions, self.group_questions, self.defect_questions, self.reasons) < 0:
            raise ConfigError("InstructionConfig", "question counts must be >= 0", "use 0 to skip a type")


def _question(kind: str, rng: random.Random, prompt: str, version: str, **kw) -> str:
    return video_turn(question(kind, prompt, version, pick=rng, **kw))


def _pair(kind: str, question: str, answer: str) -> tuple[str, list[dict]]:
    return kind, [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]


def generate(
    prompt: str,
    scores: Mapping[str, float],
    levels: Mapping[str, str],
    rng: random.Random,
    cfg: InstructionConfig | None = None,
    evidence: Sequence = (),
) -> list[tuple[str, list[dict]]]:
    """(task, conversations) pairs for one video, in TASKS order. ``evidence`` (llmvqa.evidence) is what
    the rate-and-explain pair's chain of thought cites; its question carries it as text, as at inference."""
    cfg = cfg or InstructionConfig()
    v = cfg.version
    spec = load_dimensions(v)
    q = load_yaml("instructions", v)
    dims = [spec.dimensions[k] for k in spec.dimensions if k in levels]
    overall = level_sentence("overall", levels["overall"], version=v)
    by_score = sorted(dims, key=lambda d: (scores.get(d.key, 0.5), d.key))  # worst first
    out: list[tuple[str, list[dict]]] = []
    for task in cfg.tasks:
        if task == "rating":
            out.append(_pair(task, _question(task, rng, prompt, v), overall))
        elif task == "rating_cot":
            from llmvqa.evidence import evidence_text

            asked = question(task, prompt, v, pick=rng)
            out.append(_pair(task, video_turn(evidence_text(evidence, v), asked), build_cot(levels, rng, v, evidence)))
        elif task == "dimension":
            for d in rng.sample(dims, min(cfg.dimension_questions, len(dims))):
                asked = _question(task, rng, prompt, v, name=d.name, definition=d.definition)
                out.append(_pair(task, asked, level_sentence("dimension", levels[d.key], d.name, v)))
            groups = [g for g in spec.groups if g in levels]
            for g in rng.sample(groups, min(cfg.group_questions, len(groups))):
                asked = _question(task, rng, prompt, v, name=f"{g} quality", definition=spec.group_definitions[g])
                out.append(_pair(task, asked, level_sentence("group", levels[g], g, v)))
        elif task == "dimension_rating":
            sentences = [level_sentence("dimension", levels[d.key], d.name, v) for d in dims]
            sentences += [level_sentence("group", levels[g], g, v) for g in spec.groups if g in levels]
            out.append(_pair(task, _question(task, rng, prompt, v), " ".join([*sentences, overall])))
        elif task == "defect_yesno":
            eligible = [d for d in dims if levels[d.key] != "fair" and d.key in q["defect"]]
            for d in rng.sample(eligible, min(cfg.defect_questions, len(eligible))):
                yes = levels[d.key] in LEVELS[3:]
                word = q["answers"]["answer_yes" if yes else "answer_no"]
                asked = defect_question(d.key, prompt, v, pick=rng)
                out.append(_pair(task, video_turn(asked), f"{word} {level_sentence('dimension', levels[d.key], d.name, v)}"))
        elif task == "worst_aspect" and dims:
            d = by_score[0]
            answer = q["answers"]["worst"].format(name=d.name, definition=d.definition)
            out.append(_pair(task, _question(task, rng, prompt, v), f"{answer} {level_sentence('dimension', levels[d.key], d.name, v)}"))
        elif task == "why" and dims:
            low = levels["overall"] in LEVELS[2:]
            chosen = by_score[: cfg.reasons] if low else by_score[::-1][: cfg.reasons]
            lead = q["answers"]["why_low" if low else "why_high"]
            body = " ".join(dimension_statement(d, levels[d.key], rng, v) for d in chosen)
            out.append(_pair(task, _question(task, rng, prompt, v, level=levels["overall"]), f"{lead} {body} {overall}"))
        elif task == "improve" and dims:
            weak = [d for d in by_score if levels[d.key] in LEVELS[2:]]
            if weak:
                body = " ".join(f"{q['fixes'][d.key]} {level_sentence('dimension', levels[d.key], d.name, v)}" for d in weak)
            else:
                body = q["answers"]["none_to_fix"]
            out.append(_pair(task, _question(task, rng, prompt, v), f"{body} {overall}"))
    return out
