"""`llmvqa sig build|bench|synth` — Score-based Instruction Generation (SIG).

    llmvqa sig build --input info.txt --kind t2vqa --root /data/T2VQA-DB/videos --out instruct_data/t2vqa.jsonl
    llmvqa sig build --input /videos --kind folder --out instruct_data/mine.jsonl --cache ~/.cache/llmvqa/features
    llmvqa sig bench --input instruct_data/t2vqa.jsonl --out eval/s2i_bench.json
    llmvqa sig synth --out data/synth        # offline graded corpus (llmvqa/corpus/synth.py)
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("sig", help="build instruction data (SIG) and S2I-style benchmarks")
    sub = p.add_subparsers(dest="sig_command", metavar="SIG_COMMAND")
    p.set_defaults(func=lambda args: (p.print_help(), 1)[1])

    b = sub.add_parser("build", help="score videos with experts and write instruct JSONL")
    b.add_argument("--input", required=True, help="dataset file or folder")
    b.add_argument("--kind", required=True, choices=("t2vqa", "csv", "folder", "jsonl", "synth"))
    b.add_argument("--root", help="folder the video paths are relative to (default: the input's folder)")
    b.add_argument("--out", required=True, help="output JSONL (e.g. instruct_data/NAME.jsonl)")
    b.add_argument("--levels", default="equal", choices=("equal", "quantile"), help="score → level method")
    b.add_argument("--level-range", default="fixed", choices=("fixed", "dataset"),
                   help="equal levels over [0,1] (fixed) or the dataset-wide min/max per key")
    b.add_argument("--expert", action="append", help="expert chain, repeatable: stats, mos, synth, csv:PATH (default by kind)")
    b.add_argument("--calibration", default="anchors", choices=("anchors", "percentile"))
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--cache", help="feature cache folder (FeatureCache)")
    b.add_argument("--stats", help="precomputed stats JSONL ({video, stats} per line) instead of running the encoders")
    b.set_defaults(func=run_build)

    k = sub.add_parser("bench", help="write an S2I-Bench-style open-ended set from the test split of instruct records")
    k.add_argument("--input", required=True, help="instruct JSONL from `llmvqa sig build`")
    k.add_argument("--out", required=True, help="output JSON")
    k.add_argument("--split", default="test")
    k.add_argument("--max", type=int, default=None, help="at most this many questions")
    k.set_defaults(func=run_bench)

    s = sub.add_parser("synth", help="offline graded corpus from real footage (videos + manifest.jsonl)")
    try:
        synth = importlib.import_module("llmvqa.corpus.synth")
    except ModuleNotFoundError as err:  # synth.py not in this checkout
        if err.name != "llmvqa.corpus.synth":
            raise
        s.set_defaults(func=_no_synth)
    else:
        synth.add_arguments(s)
        s.set_defaults(func=synth.run)


def _no_synth(args) -> int:
    from llmvqa.errors import ConfigError

    raise ConfigError("llmvqa sig synth", "llmvqa/corpus/synth.py is missing from this installation", "reinstall llmvqa")


def run_build(args: argparse.Namespace) -> int:
    from llmvqa.corpus.datasets import load_items
    from llmvqa.sig.build import BuildConfig, DictStats, ExtractorStats, build, write_jsonl

    items, bad = load_items(args.kind, args.input, args.root)
    root = Path(args.root) if args.root else (Path(args.input) if args.kind == "folder" else Path(args.input).parent)
    cfg = BuildConfig(levels=args.levels, level_range=args.level_range, calibration=args.calibration, seed=args.seed,
                      experts=tuple(args.expert) if args.expert else None)
    source = DictStats.from_jsonl(args.stats, root) if args.stats else ExtractorStats(args.cache)
    result = build(items, root, source, cfg, kind=args.kind, input_name=str(args.input), progress=True)
    result.bad_rows[:0] = bad
    write_jsonl(result.records, args.out)
    for row in result.bad_rows:
        print(f"skipped {row}", file=sys.stderr)
    summary = result.summary()
    print(json.dumps(summary, indent=1))
    print(f"wrote {summary['records']} records for {summary['videos']} videos to {args.out}; "
          f"{summary['bad_rows']} bad rows skipped")
    return 0


def run_bench(args: argparse.Namespace) -> int:
    from llmvqa.sig.bench import make_bench, write_bench
    from llmvqa.sig.build import read_jsonl

    entries = make_bench(read_jsonl(args.input), split=args.split, max_items=args.max)
    write_bench(entries, args.out)
    print(f"wrote {len(entries)} questions from the {args.split!r} split to {args.out}")
    return 0
