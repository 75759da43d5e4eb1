"""S2I-Bench-style evaluation of generated justifications (plain functions of texts).

Per answer:

- level agreement: of the levels the answer states (answers.yaml level sentences, parsed by
  ``llmvqa.sig.validate.stated_levels``) for keys the reference has a level for, the fraction
  equal to the reference level (None when it states none of them);
- coverage: the fraction of the dimensions/groups the question asks about that the answer
  mentions, by name (``clarity``), key (``sharpness``) or definition;
- self-consistency: the overall level sentence(s) of the text state the level read from the
  score (``level_of_score``); an answer with no overall sentence, or two that disagree, fails;
- optional LLM-judge scores (``llmvqa.evaluation.judge``).

``evaluate_bench`` runs an answering function over bench entries (``llmvqa.sig.bench``) and
averages; per-entry failures are recorded and skipped. ``check_clip`` rates one clip with explanation
(and asks it the ``CHAT_QUESTIONS``) and runs ``violations`` over the texts, timing each;
``check_summary`` counts a run of them (``eval/justification_check.py``).
"""

from __future__ import annotations

import math
import re
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

from llmvqa.dimensions import load_dimensions
from llmvqa.levels import LEVELS, level_of_score
from llmvqa.sig.validate import stated_levels


def level_agreement(answer: str, reference_levels: Mapping[str, str], version: str = "v1") -> float | None:
    """Fraction of the answer's stated levels (for keys the reference has) that equal the reference."""
    stated = [(k, lv) for k, lv in stated_levels(answer, version)[0] if k in reference_levels]
    if not stated:
        return None
    return sum(lv == reference_levels[k] for k, lv in stated) / len(stated)


def _mentions(key: str, version: str) -> tuple[str, ...]:
    spec = load_dimensions(version)
    if key in spec.dimensions:
        d = spec.dimensions[key]
        return (d.name, d.key.replace("_", " "), d.definition)
    return (key.replace("_", " "),)


def coverage(answer: str, asked: Sequence[str], version: str = "v1") -> float | None:
    """Fraction of the asked dimension/group keys the answer mentions (None when nothing is asked)."""
    keys = [k for k in asked if k != "overall"]
    if not keys:
        return None
    text = answer.lower()
    return sum(any(m.lower() in text for m in _mentions(k, version)) for k in keys) / len(keys)


def self_consistent(answer: str, score: float | None = None, version: str = "v1", level: str | None = None) -> bool:
    """True when every overall level sentence in ``answer`` states the level of the 1–5 ``score``
    (``level_of_score``) — or ``level`` when given, e.g. the most likely level — and there is one."""
    if level is None:
        if score is None:
            raise ValueError("self_consistent needs a score or a level")
        level = level_of_score(score)
    overall = [lv for k, lv in stated_levels(answer, version)[0] if k == "overall"]
    return bool(overall) and all(lv == level for lv in overall)


_TIMED = re.compile(r"\d+(?:\.\d+)?\s*s\b")


def violations(text: str, levels: Mapping[str, str], evidence_texts: Sequence[str] = (), version: str = "v1",
               closes_with_overall: bool = True, allowed_times: Sequence[float] = ()) -> list[str]:
    """What is wrong with a justification, as messages (empty: nothing).

    - a stated level that differs from the reported one (``levels``: overall, groups, dimensions);
    - an aspect stated with two different levels;
    - a level word outside a level sentence;
    - (``closes_with_overall``) no overall sentence, or one that is not the last sentence;
    - a time ("2.0 s") that none of ``evidence_texts`` (the measurements) states, nor ``allowed_times``
      (e.g. the window a question asks about).
    """
    from llmvqa.prompts import load_yaml

    out = []
    stated, rest = stated_levels(text, version)
    seen: dict[str, set[str]] = {}
    for key, lv in stated:
        seen.setdefault(key, set()).add(lv)
        if key in levels and levels[key] != lv:
            out.append(f"states {key} = {lv} but the reported level is {levels[key]}")
    out += [f"states two levels for {k}: {sorted(v)}" for k, v in seen.items() if len(v) > 1]
    stray = re.search(r"\b(" + "|".join(LEVELS) + r")\b", rest, re.IGNORECASE)
    if stray:
        out.append(f"level word {stray.group(0)!r} outside a level sentence")
    if closes_with_overall:
        overall = load_yaml("answers", version)["overall"].format(level=levels.get("overall", ""))
        if not text.rstrip().endswith(overall):
            out.append("does not close with the overall sentence of the reported level")
    measured = {round(float(m.group(0).rstrip("s ")), 1) for e in evidence_texts for m in _TIMED.finditer(e)}
    measured |= {round(float(t), 1) for t in allowed_times}
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        wrong = [m.group(0) for m in _TIMED.finditer(sentence) if round(float(m.group(0).rstrip("s ")), 1) not in measured]
        if wrong:
            out.append(f"states a time no measurement gives ({', '.join(wrong)}): {sentence!r}")
    return out


@dataclass
class AnswerScores:
    """The scores of one answer."""

    id: str
    """Bench entry id (or video)."""
    level_agreement: float | None = None
    """See ``level_agreement``."""
    coverage: float | None = None
    """See ``coverage``."""
    self_consistent: bool | None = None
    """See ``self_consistent`` (None without a score)."""
    judge: dict[str, float] = field(default_factory=dict)
    """LLM-judge scores (0–5 each), empty without a judge."""


def score_answer(entry: Mapping, answer: str, score: float | None = None, version: str = "v1") -> AnswerScores:
    """All text scores of ``answer`` to a bench entry ({"id", "levels", "dimensions_asked", ...})."""
    return AnswerScores(
        id=str(entry.get("id", entry.get("video", ""))),
        level_agreement=level_agreement(answer, entry.get("levels") or {}, version),
        coverage=coverage(answer, entry.get("dimensions_asked") or [], version),
        self_consistent=None if score is None else self_consistent(answer, score, version),
    )


def _mean(values) -> float | None:
    vals = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(vals) / len(vals) if vals else None


def summarize(scores: Sequence[AnswerScores]) -> dict:
    """Means over answers (each over the answers it applies to) and how many each mean covers."""
    out: dict = {"n": len(scores)}
    for name in ("level_agreement", "coverage", "self_consistent"):
        vals = [getattr(s, name) for s in scores if getattr(s, name) is not None]
        out[name] = _mean(vals)
        out[f"{name}_n"] = len(vals)
    judged = [s.judge for s in scores if s.judge]
    if judged:
        out["judge"] = {k: _mean(j.get(k) for j in judged) for k in judged[0]}
        out["judge_n"] = len(judged)
    return out


AnswerFn = Callable[[Mapping], tuple[str, float | None]]
"""entry → (answer text, the model's overall 1–5 score or None)."""


def evaluate_bench(entries: Sequence[Mapping], answer_fn: AnswerFn, judge: Callable | None = None,
                   version: str = "v1", progress: bool = False) -> dict:
    """Answer every entry, score the answers; {"summary", "items", "failures"}.

    ``judge(question, reference, answer) -> {criterion: 0–5}`` when given (see judge.py).
    """
    from tqdm import tqdm

    items, failures, scored = [], [], []
    for entry in tqdm(entries, desc="bench", unit="q", disable=not progress):
        try:
            answer, score = answer_fn(entry)
            s = score_answer(entry, answer, score, version)
            if judge is not None:
                s.judge = judge(entry["question"], entry["reference"], answer)
        except Exception as err:  # noqa: BLE001 — one bad video/answer must not stop the run
            failures.append({"id": str(entry.get("id", "")), "error": f"{type(err).__name__}: {err}"})
            continue
        scored.append(s)
        items.append({**asdict(s), "question": entry.get("question"), "answer": answer, "score": score})
    return {"summary": summarize(scored), "items": items, "failures": failures}


CHAT_QUESTIONS: tuple[str, ...] = (
    "which part looks worst?", "why is the motion poor?", "is there any flicker in the first second?",
    "how could the generator improve this video?")
"""The four chat questions of issue 18 a justification check asks every clip, in one conversation."""


def rated_levels(result) -> dict[str, str]:
    """The levels a RatingResult reports: overall, each group and each dimension."""
    return {"overall": result.level, **{k: v.level for k, v in result.groups.items()},
            **{k: v.level for k, v in result.dimensions.items()}}


def check_clip(assessor, video: str, prompt: str | None = None, *, chat: bool = False, cold: bool = False,
               questions: Sequence[str] = CHAT_QUESTIONS) -> tuple[dict, float | None, list[float]]:
    """Rate ``video`` with explanation (``cold``: features extracted again, inside the timing) and check the
    justification against the reported levels and the measured evidence; with ``chat`` also ask ``questions``
    in one conversation and check each answer (times may also be a question's own window). Returns (row,
    seconds of the rating, seconds of each answer); a rating that fails gives ({"video", "error"}, None, [])."""
    from llmvqa.justify import question_window

    if cold:
        assessor.clear_features()
    t0 = time.perf_counter()
    try:
        r = assessor.rate(video, prompt=prompt, explain=True)
    except Exception as err:  # noqa: BLE001 — recorded, the run goes on
        return {"video": video, "error": f"{type(err).__name__}: {err}"}, None, []
    rate_s = time.perf_counter() - t0
    levels = rated_levels(r)
    cites = [e["text"] for e in r.evidence]
    row = {"video": video, "score": round(r.score, 3), "justification": r.justification,
           "violations": violations(r.justification or "", levels, cites), "seconds": round(rate_s, 2),
           "evidence": cites}
    chat_s: list[float] = []
    if chat:
        history, answers = [], []
        for q in questions:
            history.append({"role": "user", "content": q})
            t = time.perf_counter()
            a = assessor.chat(video, list(history), prompt=prompt)
            chat_s.append(time.perf_counter() - t)
            history.append({"role": "assistant", "content": a})
            window = question_window(q, float(r.meta.get("duration") or 0) or 1e9)
            cv = violations(a, levels, cites, closes_with_overall=False, allowed_times=window[:2] if window else ())
            answers.append({"question": q, "answer": a, "violations": cv, "seconds": round(chat_s[-1], 2)})
        row["chat"] = answers
    return row, rate_s, chat_s


def _spread(seconds: Sequence[float]) -> dict | None:
    return {"median": round(statistics.median(seconds), 2), "max": round(max(seconds), 2)} if seconds else None


def check_summary(rows: Sequence[Mapping], rate_s: Sequence[float], chat_s: Sequence[float]) -> dict:
    """Counts of a justification check: clips rated, failed, violations (justifications, chat answers) and the
    median / max seconds per rating with explanation and per chat answer."""
    return {
        "clips": len(rate_s),
        "failed": sum("error" in r for r in rows),
        "justification_violations": sum(len(r.get("violations") or ()) for r in rows),
        "clips_with_violations": sum(bool(r.get("violations")) for r in rows),
        "chat_answers": len(chat_s),
        "chat_violations": sum(len(a["violations"]) for r in rows for a in r.get("chat") or ()),
        "rate_explain_s": _spread(rate_s),
        "chat_answer_s": _spread(chat_s),
    }


__all__ = ["CHAT_QUESTIONS", "AnswerFn", "AnswerScores", "check_clip", "check_summary", "coverage", "evaluate_bench",
           "level_agreement", "rated_levels", "score_answer", "self_consistent", "summarize"]
