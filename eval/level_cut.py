"""Would a level that follows the dimension *score* do better than the model's own level word?

The model answers each dimension with the most probable level word (argmax of the level-token
softmax); its expected score on 1–5 moves more than the word does. This reads two
``score_dataset`` reports made with dimensions on: it fits one cut on the *fit* report's scores of
one dimension ("excellent" at or above it, "bad" below — the two levels a synth dimension mostly
takes), by accuracy or by balanced accuracy (mean recall over the reference levels present), and
applies it to the *apply* report. It prints, for the model's own level and for each cut: exact
accuracy, balanced accuracy and — for prompt alignment on corpora with wrong-prompt twins — the
fraction of (clip, twin) pairs where the twin's level is strictly lower (the model card's target).

    python eval/level_cut.py --fit runs/mini/eval-val/report.json --apply models/llmvqa-mini/eval/report.json
    python eval/level_cut.py --fit … --apply … --key sharpness --json out.json

Fit on the validation split and apply to the test split; never fit on the split you report.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from llmvqa.evaluation.metrics import best_cut
from llmvqa.evaluation.suite import PROMPT_ALIGNMENT, wrong_prompt_check

Row = tuple[float, str, str]
"""(expected score 1–5, the model's level, the reference level) of one record."""


def rows(report: dict, key: str) -> list[Row]:
    """The records of a report that have both a prediction and a reference level for ``key``."""
    out = []
    for rec in report.get("predictions", []):
        d, ref = rec.get("dimensions", {}).get(key), rec.get("reference_levels", {}).get(key)
        if d is not None and ref:
            out.append((float(d["score"]), str(d["level"]), str(ref)))
    return out


def cut_level(score: float, cut: float) -> str:
    return "excellent" if score >= cut else "bad"


def accuracy(pred: Sequence[str], ref: Sequence[str]) -> float:
    return float(np.mean([p == r for p, r in zip(pred, ref, strict=True)]))


def balanced_accuracy(pred: Sequence[str], ref: Sequence[str]) -> float:
    """Mean over the reference levels present of the fraction of that level's records predicted right."""
    hits: dict[str, list[bool]] = defaultdict(list)
    for p, r in zip(pred, ref, strict=True):
        hits[r].append(p == r)
    return float(np.mean([np.mean(h) for h in hits.values()]))


def fit_cut(fit_rows: Sequence[Row], objective: Callable[[Sequence[str], Sequence[str]], float]) -> float:
    """The cut (a midpoint between sorted fit scores, or below them all) that maximizes ``objective``."""
    if not fit_rows:
        raise ValueError("no records with this dimension's score and reference level to fit a cut on")
    ref = [r[2] for r in fit_rows]
    return best_cut([r[0] for r in fit_rows], lambda c: objective([cut_level(r[0], c) for r in fit_rows], ref))


def twin_scores(report: dict, key: str) -> list[tuple[float, float, str, str]]:
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


def evaluate(fit_report: dict, apply_report: dict, key: str = PROMPT_ALIGNMENT) -> dict:
    """{rule: {accuracy, balanced_accuracy, wrong_prompt_lower_level?, cut?}} on the apply report."""
    fit, app = rows(fit_report, key), rows(apply_report, key)
    if not app:
        raise ValueError(f"the apply report has no '{key}' predictions with reference levels "
                         "(score it with --dimensions on a labelled split)")
    ref = [r[2] for r in app]
    twins = twin_scores(apply_report, key) if key == PROMPT_ALIGNMENT else []
    out: dict = {"key": key, "n_fit": len(fit), "n": len(app), "pairs": len(twins),
                 "majority": max(ref.count(lv) for lv in set(ref)) / len(ref)}
    rules = {"model level": (None, lambda r: r[1])}
    for name, obj in (("cut by accuracy", accuracy), ("cut by balanced accuracy", balanced_accuracy)):
        c = fit_cut(fit, obj)
        rules[name] = (c, lambda r, c=c: cut_level(r[0], c))
    for name, (c, level_of) in rules.items():
        pred = [level_of(r) for r in app]
        res = {"accuracy": accuracy(pred, ref), "balanced_accuracy": balanced_accuracy(pred, ref)}
        if c is not None:
            res["cut"] = c
        if twins:
            pairs = [((level_of((so, lo, "")), so), (level_of((st, lt, "")), st)) for so, st, lo, lt in twins]
            res["wrong_prompt_lower_level"] = wrong_prompt_check(pairs)["lower_level"]
        out[name] = res
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fit", required=True, help="report.json whose scores fit the cut (e.g. the validation split)")
    ap.add_argument("--apply", required=True, help="report.json the rules are measured on (e.g. the test split)")
    ap.add_argument("--key", default="prompt_alignment", help="dimension (default %(default)s)")
    ap.add_argument("--json", default="", help="also write the result here")
    args = ap.parse_args(argv)
    reports = []
    for p in (args.fit, args.apply):
        try:
            reports.append(json.loads(Path(p).read_text()))
        except (OSError, ValueError) as e:
            print(f"error: cannot read {p} as a score_dataset report: {e}; make one with "
                  "`python eval/score_dataset.py … --out DIR` (DIR/report.json)", file=sys.stderr)
            return 2
    try:
        out = evaluate(*reports, key=args.key)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{args.key}: fit on {out['n_fit']} records of {args.fit}, measured on {out['n']} of {args.apply} "
          f"(majority level {out['majority']:.3f}; {out['pairs']} wrong-prompt pairs)")
    print("| rule | cut (1–5) | accuracy | balanced accuracy | wrong prompt: lower level |\n|---|---|---|---|---|")
    for name in ("model level", "cut by accuracy", "cut by balanced accuracy"):
        r = out[name]
        wp = f"{r['wrong_prompt_lower_level']:.3f}" if "wrong_prompt_lower_level" in r else "—"
        cut = f"{r['cut']:.3f}" if "cut" in r else "argmax"
        print(f"| {name} | {cut} | {r['accuracy']:.3f} | {r['balanced_accuracy']:.3f} | {wp} |")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
