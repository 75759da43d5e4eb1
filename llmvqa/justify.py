"""What a justification or a chat answer may say: the clip's true sentences and the order they go in.

A ``Plan`` is a set of candidate sentences in *slots*. The sentences of one slot are alternative
phrasings of the same statement (one at most is written); a slot may require other slots before
it, may be required, and may end the text. The model writes by choosing, sentence by sentence,
among the candidates the plan allows at that point (``llmvqa.model.generation.PlanConstraint``, a
transformers logits processor). Every candidate is true of the clip by construction:

- evidence sentences come from the measurements (``llmvqa.evidence``), cited verbatim;
- level sentences (answers.yaml) state the *reported* levels, so the text cannot contradict the
  rating, and each level is stated at most once;
- the rest is prose without level words (cot.yaml, chat.yaml).

So a justification is hierarchical (a dimension's evidence → its level; a group's dimensions →
the group's level; the groups → the overall level, which ends it), consistent with the scores,
and cannot loop (a slot is used once). SIG writes its training chain of thought from the same
plan (``default_text``), so what the model learns to write is what it is allowed to write.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from llmvqa.evidence import Evidence
from llmvqa.levels import LEVELS
from llmvqa.prompts import level_sentence, load_yaml

BRIEF_LEVELS: tuple[str, ...] = ("excellent", "good")
"""Dimensions at these levels without evidence are praised briefly, in one sentence per group,
without their level sentence; the words go to what pulls the rating down."""


@dataclass
class Slot:
    key: str
    texts: list[str]
    """Alternative phrasings; exactly one is written when the slot is used."""
    required: bool = True
    after: tuple[str, ...] = ()
    """Slots that must be written before this one."""
    final: bool = False
    """The text ends after this slot."""


@dataclass
class Plan:
    slots: list[Slot]
    max_sentences: int = 64
    min_sentences: int = 1

    def default_text(self, rng: random.Random | None = None, optional: bool = True) -> str:
        """One text the plan allows: the slots in plan order (optional ones when ``optional``),
        a phrasing each (rng's choice, else the first). SIG's training answers."""
        parts = []
        for s in self.slots:
            if s.required or optional:
                parts.append(rng.choice(s.texts) if rng else s.texts[0])
            if len(parts) >= self.max_sentences or s.final:
                break
        return " ".join(parts)


def _name_list(names: Sequence[str]) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def justification_plan(levels: Mapping[str, str], evidence: Sequence[Evidence], version: str = "v1") -> Plan:
    """The hierarchical chain of thought for a clip with reported ``levels`` (dimension keys, group
    names, "overall") and measured ``evidence``."""
    from llmvqa.dimensions import load_dimensions

    spec = load_dimensions(version)
    cot = load_yaml("cot", version)
    slots: list[Slot] = []  # no introduction: every sentence says something about the clip
    group_keys: list[str] = []
    cited = set()
    for group in spec.groups:
        if group not in levels:
            continue
        prev = tuple(group_keys[-1:])  # groups in order: technical, motion, semantic
        own = []
        praised = []
        for d in spec.of_group(group):
            if d.key not in levels:
                continue
            items = [e for e in evidence if e.dimension == d.key]
            level = levels[d.key]
            if not items and level in BRIEF_LEVELS:
                praised.append(d.name)
                continue
            before = []
            for i, e in enumerate(items):
                if e.sentence in cited:
                    continue
                cited.add(e.sentence)
                # at an upper level the measured flaw is named as minor, for its dimension, without a level
                # sentence: the text and the rating read as one, and praise stays brief
                text = cot["minor"].format(name=d.name, evidence=e.text) if level in BRIEF_LEVELS else e.sentence
                slots.append(Slot(f"ev:{d.key}:{i}", [text], after=prev))
                before.append(slots[-1].key)
            if items and level in BRIEF_LEVELS:
                own.extend(before)
                continue
            if not items:  # a low level without a measured cause: say what the dimension is about
                phr = cot["dimension"][level]
                slots.append(Slot(f"why:{d.key}", [p.format(name=d.name, Name=d.name[:1].upper() + d.name[1:],
                                                             definition=d.definition) for p in phr], after=prev))
                before.append(slots[-1].key)
            slots.append(Slot(f"dim:{d.key}", [level_sentence("dimension", level, d.name, version)],
                              after=tuple(before) + prev))
            own.append(slots[-1].key)
        if praised:
            text = cot["praise"].format(names=_name_list(praised))
            slots.append(Slot(f"praise:{group}", [text[:1].upper() + text[1:] + "."], after=prev))
            own.append(slots[-1].key)
        slots.append(Slot(f"group:{group}", [level_sentence("group", levels[group], group, version)], after=tuple(own)))
        group_keys.append(slots[-1].key)
    slots.append(Slot("overall", [level_sentence("overall", levels["overall"], version=version)],
                      after=tuple(group_keys), final=True))
    return Plan(slots)


# ------------------------------------------------------------------ chat
_WINDOW = re.compile(r"\b(first|last)\s+(\d+(?:\.\d+)?|one|two|three|half a)?\s*(second|seconds|s)\b")
_NUMBER = {"one": 1.0, "two": 2.0, "three": 3.0, "half a": 0.5, None: 1.0}


def question_window(question: str, duration: float) -> tuple[float, float, str] | None:
    """(start, end, phrase) of "the first/last N seconds" in a question, else None."""
    m = _WINDOW.search(question.lower())
    if not m:
        return None
    n = _NUMBER.get(m.group(2)) if m.group(2) in _NUMBER else float(m.group(2))
    spec = load_yaml("chat")
    if m.group(1) == "first":
        return 0.0, n, spec["window_first"].format(s=f"{n:.1f} s")
    return max(0.0, duration - n), duration, spec["window_last"].format(s=f"{n:.1f} s")


def _words(text: str) -> str:
    return " " + re.sub(r"[^a-z0-9 ]+", " ", text.lower()) + " "


def question_intent(question: str, version: str = "v1") -> str:
    """improve | worst | why | yesno | other, by the keywords of chat.yaml."""
    low = _words(question)
    for intent, keys in load_yaml("chat", version)["intents"].items():
        if any(f" {k.strip()} " in low or (k.endswith(" ") and f" {k}" in low) for k in keys):
            return intent
    return "other"


def question_target(question: str, version: str = "v1") -> str | None:
    """The dimension key or group name a question is about (longest name found), else None."""
    from llmvqa.dimensions import load_dimensions

    spec = load_dimensions(version)
    low = _words(question)
    names: dict[str, str] = {}
    for k, d in spec.dimensions.items():
        names[d.name.lower()] = k
        names[k.replace("_", " ")] = k
    names.update({g: g for g in spec.groups})
    names.update(load_yaml("chat", version)["aliases"])
    hits = [n for n in names if f" {n} " in low]
    return names[max(hits, key=len)] if hits else None


def _fix(e: Evidence, version: str) -> str:
    return load_yaml("chat", version)["fixes"][e.kind].format(
        start=f"{e.start:.1f} s", end=f"{e.end:.1f} s", at=f"{(e.start + e.end) / 2:.1f} s")


def chat_plan(question: str, levels: Mapping[str, str], evidence: Sequence[Evidence], duration: float,
              version: str = "v1") -> Plan:
    """The sentences that may answer ``question`` about a clip with ``levels`` and ``evidence``.

    worst → the measured defects (time-located ones first); why X → X's evidence and X's level;
    improve → a fix per measured defect; "is there X" → yes with X's evidence (in the asked time
    window) or no; anything else → the strongest evidence and the overall level.
    """
    from llmvqa.dimensions import load_dimensions

    spec = load_dimensions(version)
    chat_spec = load_yaml("chat", version)
    chat, cot = chat_spec["answers"], load_yaml("cot", version)
    intent, target = question_intent(question, version), question_target(question, version)
    if target in spec.groups:
        keys = set(spec.groups[target]) | {target}
    else:
        keys = {target} if target else set()
    about = [e for e in evidence if not keys or e.dimension in keys]
    name = (spec.dimensions[target].name if target in spec.dimensions else f"{target} quality") if target else "quality"

    def weak(among: set[str]) -> list[str]:
        """Dimension keys (of ``among``; empty: all) rated below ``BRIEF_LEVELS``, the lowest level first."""
        keys = [k for k in spec.dimensions if k in levels and levels[k] not in BRIEF_LEVELS and (not among or k in among)]
        return sorted(keys, key=lambda k: -LEVELS.index(levels[k]))

    def why_slot(key: str, after: tuple[str, ...] = ()) -> Slot:
        """What a dimension is about, at its reported level (the justification's sentence for a low level
        without a measured cause): a low level with no evidence is not answered "no problem"."""
        d = spec.dimensions[key]
        return Slot(f"why:{key}", [t.format(name=d.name, Name=d.name[:1].upper() + d.name[1:], definition=d.definition)
                                   for t in cot["dimension"][levels[key]]], after=after)

    def level_slot(key: str, after: tuple[str, ...] = ()) -> Slot:
        if key in spec.groups:
            return Slot(f"level:{key}", [level_sentence("group", levels[key], key, version)], after=after)
        if key == "overall":
            return Slot("level:overall", [level_sentence("overall", levels["overall"], version=version)], after=after)
        return Slot(f"level:{key}", [level_sentence("dimension", levels[key], spec.dimensions[key].name, version)],
                    after=after)

    if intent == "worst":
        ranked = sorted(evidence, key=lambda e: (not e.local, -e.strength))
        if not ranked:
            low = weak(keys)
            if not low:
                return Plan([Slot("none", [chat["no_defect"]])], max_sentences=1)
            k = low[0]  # nothing measured at a time, but a dimension rates low: the whole clip is the answer
            return Plan([Slot("whole", [chat["weakest"].format(name=spec.dimensions[k].name)]),
                         why_slot(k, after=("whole",)), level_slot(k, after=(f"why:{k}",))], max_sentences=3)
        return Plan([Slot(f"ev:{i}", [e.sentence], required=i == 0) for i, e in enumerate(ranked[:3])],
                    max_sentences=2)
    if intent == "improve":
        fixes = list(dict.fromkeys(_fix(e, version) for e in (about or evidence)))
        if not fixes:  # no measured defect: a fix per dimension that still rates low
            fixes = [chat_spec["dimension_fixes"][k] for k in weak(keys) if k in chat_spec["dimension_fixes"]]
        if not fixes:
            return Plan([Slot("none", [chat["nothing_to_fix"]])], max_sentences=1)
        return Plan([Slot(f"fix:{i}", [f], required=i == 0) for i, f in enumerate(fixes[:4])], max_sentences=3)
    if intent == "yesno" and target:
        window = question_window(question, duration)
        inside = [e for e in about if not window or (e.start <= window[1] and e.end >= window[0])]
        if inside:
            return Plan([Slot(f"yes:{i}", [chat["answer_yes"].format(evidence=e.text)], required=i == 0)
                         for i, e in enumerate(inside[:2])], max_sentences=2)
        if window and about:
            return Plan([Slot("elsewhere", [chat["elsewhere"].format(window=window[2], evidence=about[0].text)])],
                        max_sentences=1)
        if not window and target in spec.dimensions and weak({target}):
            return Plan([why_slot(target), level_slot(target, after=(f"why:{target}",))], max_sentences=2)
        no = chat["no_defect_in"].format(name=name, window=window[2]) if window else chat["no_defect_of"].format(name=name)
        return Plan([Slot("no", [no])], max_sentences=1)
    if intent == "why" and target and (target in levels):
        slots = [Slot(f"ev:{i}", [e.sentence]) for i, e in enumerate(about[:3])]
        if not slots:
            low = weak(keys)[:2]
            slots = [why_slot(k) for k in low] if low else [Slot("none", [chat["no_defect_of"].format(name=name)])]
            if target in spec.groups:  # a group: each low dimension's level, then the group's
                slots += [level_slot(k, after=(f"why:{k}",)) for k in low]
        slots.append(level_slot(target, after=tuple(s.key for s in slots)))
        return Plan(slots, max_sentences=6)
    # anything else: what is wrong overall, then the overall level
    slots = [Slot(f"ev:{i}", [e.sentence], required=False) for i, e in enumerate((about or evidence)[:2])]
    slots.append(level_slot(target if target in levels else "overall"))
    return Plan(slots, max_sentences=3)
