"""Would a level that follows the dimension *score* do better than the model's own level word?

The model answers each dimension with the most probable level word (argmax of the level-token
softmax); its expected score on 1–5 moves more than the word does. This reads two
``score_dataset`` reports made with dimensions on: it fits one cut on the *fit* report's scores of
one dimension (the top level at or above it, the bottom level below — the two levels a synth
dimension mostly takes), by accuracy or by balanced accuracy (mean recall over the reference levels
present), and applies it to the *apply* report. It prints, for the model's own level and for each
cut: exact accuracy, balanced accuracy and — for prompt alignment on corpora with wrong-prompt
twins — the fraction of (clip, twin) pairs where the twin's level is strictly lower (the model
card's target). The analysis is ``llmvqa.evaluation.level_cut``.

    python eval/level_cut.py --fit runs/mini/eval-val/report.json --apply models/llmvqa-mini/eval/report.json
    python eval/level_cut.py --fit … --apply … --key sharpness --json out.json

Fit on the validation split and apply to the test split; never fit on the split you report.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from llmvqa.evaluation.level_cut import evaluate, level_cut_markdown
from llmvqa.evaluation.report import save_report
from llmvqa.evaluation.suite import PROMPT_ALIGNMENT


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fit", required=True, help="report.json whose scores fit the cut (e.g. the validation split)")
    ap.add_argument("--apply", required=True, help="report.json the rules are measured on (e.g. the test split)")
    ap.add_argument("--key", default=PROMPT_ALIGNMENT, help="dimension (default %(default)s)")
    ap.add_argument("--json", default="", help="also write the result here (and its Markdown beside it)")
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
    table = level_cut_markdown(out)
    print(table)
    if args.json:
        save_report(args.json, out, markdown=table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
