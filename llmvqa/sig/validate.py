"""Rating protection: prove every generated answer states exactly its record's levels.

Score2Instruct found that rewriting without this check silently changed ratings (SRCC fell
to 0.60). ``stated_levels(text)`` parses the answers.yaml level sentences out of a text;
``check_record`` verifies, for every assistant turn, that each stated dimension / group /
overall level equals the record's, that no level word appears outside those sentences
(a stray "good" could contradict), and the task's own requirements (a CoT states every
dimension and group, rating answers end with the overall sentence, yes/no matches the level).
Any failure raises ``DataError``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping

from llmvqa.dimensions import load_dimensions
from llmvqa.errors import DataError
from llmvqa.levels import LEVELS
from llmvqa.prompts import load_yaml

ENDS_WITH_OVERALL = ("rating", "rating_cot", "dimension_rating", "why", "improve")
_LEVEL_WORD = re.compile(r"\b(" + "|".join(LEVELS) + r")\b", re.IGNORECASE)


def _alternation(words) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


@functools.cache
def _patterns(version: str) -> list[tuple[str, re.Pattern, dict[str, str]]]:
    """(kind, regex, subject text → record key) for the three level sentences."""
    spec = load_dimensions(version)
    answers = load_yaml("answers", version)
    levels = "(?P<level>" + _alternation(LEVELS) + ")"
    subjects = {
        "dimension": {d.name: d.key for d in spec.dimensions.values()},
        "group": {g: g for g in spec.groups},
        "overall": {"": "overall"},
    }
    out = []
    for kind, names in subjects.items():
        pat = re.escape(answers[kind])
        pat = pat.replace(re.escape("{level}"), levels)
        pat = pat.replace(re.escape("{dimension}"), "(?P<subject>" + _alternation(names) + ")")
        pat = pat.replace(re.escape("{group}"), "(?P<subject>" + _alternation(names) + ")")
        out.append((kind, re.compile(pat), names))
    return out


def stated_levels(text: str, version: str = "v1") -> tuple[list[tuple[str, str]], str]:
    """([(record key, level) in order of appearance], the text with those sentences removed)."""
    found: list[tuple[int, str, str]] = []
    rest = text
    for _kind, pat, names in _patterns(version):
        for m in pat.finditer(text):
            subject = m.groupdict().get("subject") or ""
            found.append((m.start(), names[subject], m.group("level")))
        rest = pat.sub(" ", rest)
    found.sort()
    return [(k, lv) for _, k, lv in found], rest


def check_text(text: str, levels: Mapping[str, str], where: str = "text", version: str = "v1") -> list[tuple[str, str]]:
    """Stated (key, level) pairs of ``text``; DataError if any contradicts ``levels`` or a stray level word appears."""
    stated, rest = stated_levels(text, version)
    for key, lv in stated:
        if key not in levels:
            raise DataError(where, f"states a level for {key!r}, which the record has no level for", "fix the generator")
        if levels[key] != lv:
            raise DataError(where, f"states {key} = {lv!r} but the record's level is {levels[key]!r}",
                            "rating protection: the text must state the record's levels")
    stray = _LEVEL_WORD.search(rest)
    if stray:
        raise DataError(where, f"level word {stray.group(0)!r} outside a level sentence: …{rest[max(0, stray.start() - 40):stray.end() + 20]}…",
                        "phrasings must not contain level words (prompts/v1/cot.yaml, instructions.yaml)")
    return stated


def check_record(record: Mapping, version: str = "v1") -> None:
    """Validate every assistant turn of an instruct record against its levels (DataError on failure)."""
    levels = record["levels"]
    task = record["task"]
    where = f"record {record.get('id', '?')} ({task})"
    overall = load_yaml("answers", version)["overall"].format(level=levels.get("overall", ""))
    turns = [t["value"] for t in record["conversations"] if t["from"] == "gpt"]
    if not turns:
        raise DataError(where, "no assistant turn", "fix the generator")
    spec = load_dimensions(version)
    for text in turns:
        stated = check_text(text, levels, where, version)
        if not stated:
            raise DataError(where, "the answer states no level", "every SIG answer states at least one level sentence")
        keys = {k for k, _ in stated}
        if task in ENDS_WITH_OVERALL and not text.rstrip().endswith(overall):
            raise DataError(where, f"answer does not end with {overall!r}", "rating answers end with the overall sentence")
        if task in ("rating_cot", "dimension_rating"):
            brief = ("excellent", "good") if task == "rating_cot" else ()  # a CoT praises those in one sentence
            need = {k for k in levels if (k in spec.dimensions and levels[k] not in brief) or k in spec.groups}
            need |= {"overall"}
            if need - keys:
                raise DataError(where, f"does not state {sorted(need - keys)}", "a CoT states every group and every dimension below good")
        if task == "defect_yesno":
            dims = [k for k, _ in stated if k in spec.dimensions]
            if len(dims) != 1:
                raise DataError(where, "a yes/no answer must state exactly one dimension", "fix the generator")
            lv = levels[dims[0]]
            expect = "yes" if lv in LEVELS[3:] else "no" if lv in LEVELS[:2] else None
            said = text.strip().split()[0].strip(".,!").lower()
            if expect is None or said != expect:
                raise DataError(where, f"answers {said!r} for {dims[0]} = {lv!r}", f"expected {expect!r} (fair is never asked)")
