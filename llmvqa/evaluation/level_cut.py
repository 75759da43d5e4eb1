"""Would a level that follows the dimension *score* do better than the model's own level word? (eval/level_cut.py)

The model answers each dimension with the most probable level word; its expected score on 1–5 moves
more than the word does. ``evaluate`` reads two ``score_dataset`` reports made with dimensions on: it
fits one cut on the *fit* report's scores of one dimension (the top level at or above it, the bottom
level below: the two levels a synth dimension mostly takes), by accuracy or by balanced accuracy, and
applies it to the *apply* report; for the model's own level and for each cut it gives the exact
accuracy, the balanced accuracy and — for prompt alignment on corpora with wrong-prompt twins — the
share of (clip, twin) pairs where the twin's level is strictly lower (``wrong_prompt_check``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from llmvqa.evaluation.metrics import accuracy, balanced_accuracy, best_cut
from llmvqa.evaluation.suite import PROMPT_ALIGNMENT, wrong_prompt_check
from llmvqa.levels import LEVELS

Row = tuple[float, str, str]
"""(expected score 1–5, the model's level, the reference level) of one record."""

RULES = ("model level", "cut by accuracy", "cut by balanced accuracy")
"""The level rules ``evaluate`` compares, in its order."""

OBJECTIVES: dict[str, Callable[[Sequence[str], Sequence[str]], float]] = {
    "cut by accuracy": accuracy, "cut by balanced accuracy": balanced_accuracy}


def rows(report: Mapping, key: str) -> list[Row]:
    """The records of a report that have both a prediction and a reference level for ``key``."""
    out = []
    for rec in report.get("predictions", []):
        d, ref = rec.get("dimensions", {}).get(key), rec.get("reference_levels", {}).get(key)
        if d is not None and ref:
            out.append((float(d["score"]), str(d["level"]), str(ref)))
    return out


def cut_level(score: float, cut: float) -> str:
    """The top level (``LEVELS[0]``) at or above ``cut``, the bottom one (``LEVELS[-1]``) below."""
    return LEVELS[0] if score >= cut else LEVELS[-1]


def fit_cut(fit_rows: Sequence[Row], objective: Callable[[Sequence[str], Sequence[str]], float]) -> float:
    """The cut (below all fit scores, a midpoint between consecutive ones, or above them all) whose
    two-level rule maximizes ``objective(predicted levels, reference levels)`` on ``fit_rows``."""
    if not fit_rows:
        raise ValueError("no records with this dimension's score and reference level to fit a cut on")
    ref = [r[2] for r in fit_rows]
    return best_cut([r[0] for r in fit_rows], lambda c: objective([cut_level(r[0], c) for r in fit_rows], ref))


def twin_scores(report: Mapping, key: str) -> list[tuple[float, float, str, str]]:
    """(original score, twin score, original level, twin level) of ``key`` for each wrong-prompt pair.
    A twin is the record whose id is its original's id + "#<n>" (``load_eval_items``: the same video
    again with another prompt)."""
    by_id = {rec["id"]: rec for rec in report.get("predictions", [])}
    out = []
    for rid, rec in by_id.items():
        orig = by_id.get(rid.split("#")[0]) if "#" in rid else None
        if orig is not None and key in orig.get("dimensions", {}) and key in rec.get("dimensions", {}):
            o, t = orig["dimensions"][key], rec["dimensions"][key]
            out.append((float(o["score"]), float(t["score"]), str(o["level"]), str(t["level"])))
    return out


def evaluate(fit_report: Mapping, apply_report: Mapping, key: str = PROMPT_ALIGNMENT) -> dict:
    """{"key", "n_fit", "n", "pairs", "majority" (share of the apply report's most common reference level),
    rule: {accuracy, balanced_accuracy, cut (the cut rules), wrong_prompt_lower_level (with twins)}}
    for each of ``RULES``, measured on the apply report."""
    fit, app = rows(fit_report, key), rows(apply_report, key)
    if not app:
        raise ValueError(f"the apply report has no '{key}' predictions with reference levels "
                         "(score it with --dimensions on a labelled split)")
    ref = [r[2] for r in app]
    twins = twin_scores(apply_report, key) if key == PROMPT_ALIGNMENT else []
    out: dict = {"key": key, "n_fit": len(fit), "n": len(app), "pairs": len(twins),
                 "majority": max(ref.count(lv) for lv in set(ref)) / len(ref)}
    rules: dict[str, tuple[float | None, Callable[[float, str], str]]] = {RULES[0]: (None, lambda score, level: level)}
    for name, objective in OBJECTIVES.items():
        c = fit_cut(fit, objective)
        rules[name] = (c, lambda score, level, c=c: cut_level(score, c))
    for name, (c, level_of) in rules.items():
        pred = [level_of(score, level) for score, level, _ in app]
        res = {"accuracy": accuracy(pred, ref), "balanced_accuracy": balanced_accuracy(pred, ref)}
        if c is not None:
            res["cut"] = c
        if twins:
            pairs = [((level_of(so, lo), so), (level_of(st, lt), st)) for so, st, lo, lt in twins]
            res["wrong_prompt_lower_level"] = wrong_prompt_check(pairs)["lower_level"]
        out[name] = res
    return out


def level_cut_markdown(result: Mapping) -> str:
    """``evaluate``'s result as a Markdown table: one row per rule (cut, accuracy, balanced accuracy, wrong prompt)."""
    lines = ["| rule | cut (1–5) | accuracy | balanced accuracy | wrong prompt: lower level |", "|---|---|---|---|---|"]
    for name in RULES:
        r = result[name]
        wp = f"{r['wrong_prompt_lower_level']:.3f}" if "wrong_prompt_lower_level" in r else "—"
        cut = f"{r['cut']:.3f}" if "cut" in r else "argmax"
        lines.append(f"| {name} | {cut} | {r['accuracy']:.3f} | {r['balanced_accuracy']:.3f} | {wp} |")
    return "\n".join(lines)


__all__ = ["RULES", "Row", "cut_level", "evaluate", "fit_cut", "level_cut_markdown", "rows", "twin_scores"]
