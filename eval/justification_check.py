"""Validate generated justifications and chat answers, and time them.

Rates every clip with explanation and runs the validator (``llmvqa.evaluation.justification.violations``)
over the text: a stated level that differs from the reported one, two levels for one aspect, a
level word outside a level sentence, no closing overall sentence, a time that no measurement
states. With ``--chat``, also asks the four questions of issue 18 per clip and checks each answer
(levels as above, times grounded in the evidence). Prints the violation counts and the seconds
per rate-with-explanation and per chat answer (model loaded; features extracted inside the timing).

    python eval/justification_check.py --videos ../shared/data/fetv_dev --limit 72 --out eval/reports/justification
    python eval/justification_check.py --synth data/synth/manifest.jsonl --limit 40 --chat
    python eval/justification_check.py --bench-clip        # speed on a 4 s 512² clip (bikes, resized)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/llmvqa-mini")
    ap.add_argument("--videos", default=None, help="a fetv_dev-style folder (labels.csv with video, prompt)")
    ap.add_argument("--synth", default=None, help="a synth manifest.jsonl (its --split clips)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--bench-clip", action="store_true", help="time a 4 s 512² clip (5 repeats)")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--chat", action="store_true", help="also ask the four chat questions per clip")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if not (args.bench_clip or args.videos or args.synth):
        ap.error("give --videos, --synth or --bench-clip")

    from llmvqa.assessor import Assessor
    from llmvqa.evaluation.benchkit import bench_clip, reference_seconds
    from llmvqa.evaluation.items import fetv_items, synth_items
    from llmvqa.evaluation.justification import check_clip, check_summary
    from llmvqa.evaluation.report import save_report

    assessor = Assessor.from_pretrained(args.model)
    if args.bench_clip:
        items = [(str(bench_clip(tempfile.mkdtemp())), None)] * 5
    elif args.videos:
        items = fetv_items(args.videos)
    else:
        items = synth_items(args.synth, args.split)
    if args.limit and args.synth:  # a spread sample of the split, not its first sources
        import random

        random.Random(0).shuffle(items)
    items = items[: args.limit]
    rate_s, chat_s, rows = [], [], []
    for i, (video, prompt) in enumerate(items):
        row, seconds, answers = check_clip(assessor, video, prompt, chat=args.chat and (not args.bench_clip or i == 0),
                                           cold=args.bench_clip)
        rows.append(row)
        if seconds is None:
            continue
        rate_s.append(seconds)
        chat_s += answers
        print(f"[{i + 1}/{len(items)}] {Path(video).name} {row['score']:.2f} {seconds:.1f}s "
              f"violations={len(row['violations'])}", file=sys.stderr)
    report = {
        "model": args.model,
        "reference_generate_64_s": round(reference_seconds(assessor), 2) if args.bench_clip else None,
        **check_summary(rows, rate_s, chat_s),
    }
    print(json.dumps(report, indent=2))
    if args.out:
        name = "bench" if args.bench_clip else ("fetv" if args.videos else f"synth_{args.split}")
        save_report(args.out, report, rows=rows, name=f"report_{name}", rows_name=f"clips_{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
