"""`llmvqa evaluate [DATASET]` — score a dataset with a model and the baselines; write a report.

    llmvqa evaluate data/synth/manifest.jsonl --split test --model runs/mini/stage3/final --out eval/results/mini
    llmvqa evaluate T2VQA-DB/info.txt --root T2VQA-DB/videos --split test         # file|prompt|MOS
    llmvqa evaluate scores.csv --root videos/                                     # name/MOS CSV (k-fold baselines)
    llmvqa evaluate --bench data/bench.json --root data/synth --judge-url http://localhost:8000/v1 --judge-model M

With no DATASET, the synth corpus data/synth/manifest.jsonl is scored on its test split.
Score-only by default (fast); --explain also generates justifications and checks that each
states the level of its score. Baselines (ridge on the encoder statistics, best single
statistic) are trained on the train split of the same corpus when --split names another
split, else cross-validated on the scored videos. Writes OUT/report.json (per-video
predictions and the correlation report), OUT/report.md and OUT/scatter.png.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from llmvqa.commands.rate import add_model_args
from llmvqa.errors import DataError

DEFAULT_DATASET = Path("data/synth/manifest.jsonl")
"""Scored (on its test split) when no dataset is given: the corpus `llmvqa sig synth --out data/synth` writes."""
DEFAULT_CACHE = Path("cache/features")
"""Feature cache training fills (configs/mini.yaml data.feature_cache); used when it exists."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from llmvqa.commands.rate import add_dimensions_arg
    from llmvqa.evaluation.datasets import KINDS

    p.add_argument("dataset", nargs="?", default=None,
                   help=f"info.txt (T2VQA-DB), CSV, JSONL, instruct JSONL or synth manifest (default: {DEFAULT_DATASET})")
    p.add_argument("--kind", choices=KINDS, default="auto", help="dataset kind (default: from the file)")
    p.add_argument("--root", type=Path, default=None, help="folder the video paths are relative to (default: the dataset's folder)")
    p.add_argument("--split", default=None, choices=("train", "val", "test"),
                   help="score only this split (default: all; test when DATASET is omitted)")
    add_model_args(p)
    p.add_argument("--out", type=Path, default=None, help="report folder (default: eval/results/<model name>)")
    p.add_argument("--explain", action="store_true", help="also generate justifications (slow) and check self-consistency")
    add_dimensions_arg(p, None)
    p.add_argument("--no-baselines", dest="baselines", action="store_false", help="skip the ridge / best-statistic baselines")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds for the baselines without a train split")
    p.add_argument("--limit", type=int, default=None, help="score at most this many videos (a quick look)")
    p.add_argument("--cache", type=Path, default=None,
                   help=f"feature cache folder (default: {DEFAULT_CACHE} when it exists; 'none' disables)")
    p.add_argument("--bench", type=Path, default=None, help="also evaluate justifications on this bench file (llmvqa sig bench)")
    p.add_argument("--bench-limit", type=int, default=None, help="answer at most this many bench questions")
    p.add_argument("--judge-url", default=None, help="OpenAI-compatible endpoint for the LLM judge (key: $LLMVQA_JUDGE_API_KEY)")
    p.add_argument("--judge-model", default=None, help="model name of the LLM judge")
    p.add_argument("--judge-timeout", type=float, default=60.0, help="seconds per judge request")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def register(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="score a dataset, compare with baselines, write a report",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=run)


def _cache_dir(arg: Path | None) -> Path | None:
    if arg is not None:
        return None if str(arg).lower() == "none" else arg
    return DEFAULT_CACHE if DEFAULT_CACHE.is_dir() else None


def bench_answer_fn(assessor, root: Path):
    """entry → (the model's answer to the entry's question, its overall score of the video)."""
    from llmvqa.corpus.paths import resolve_video

    def answer(entry: dict) -> tuple[str, float]:
        path = resolve_video(root, entry["video"])
        prompt = entry.get("prompt") or None
        text = assessor.chat(path, [{"role": "user", "content": entry["question"]}], prompt=prompt)
        score = assessor.rate(path, prompt=prompt, explain=False, dimensions=False).score
        return text, float(score)

    return answer


def run(args: argparse.Namespace) -> int:
    from llmvqa.assessor import Assessor
    from llmvqa.evaluation.datasets import detect_kind, load_eval_items
    from llmvqa.evaluation.judge import Judge, config_from
    from llmvqa.evaluation.justification import evaluate_bench
    from llmvqa.evaluation.report import correlation_table, write_report
    from llmvqa.evaluation.suite import CachedExtractor, EvalConfig, evaluate_dataset, extractor_stats_fn
    from llmvqa.sig.bench import load_bench

    dataset, split = args.dataset, args.split
    if dataset is None and args.bench is None:
        if not DEFAULT_DATASET.is_file():
            raise DataError(str(DEFAULT_DATASET), "no dataset given and the default synth corpus is missing",
                            "pass a dataset, or run `llmvqa sig synth --out data/synth` first")
        dataset, split = DEFAULT_DATASET, split or "test"
    mode = {True: "on", False: "off", None: "auto"}[args.dimensions]
    cfg = EvalConfig(explain=args.explain, dimensions=mode, baselines=args.baselines, folds=args.folds,
                     progress=args.progress)
    judge_cfg = config_from(args.judge_url, args.judge_model, args.judge_timeout)
    assessor = Assessor.from_pretrained(args.model, device=args.device)
    cache = _cache_dir(args.cache)
    if cache is not None:
        assessor.extractor = CachedExtractor(assessor.extractor, cache)
    out = args.out or Path("eval/results") / assessor.name
    report: dict = {"model": assessor.name}
    if dataset is not None:
        items, bad = load_eval_items(dataset, args.kind, args.root, split=None)
        scored = [it for it in items if split is None or it.split == split][: args.limit]
        train = [it for it in items if it.split == "train"] if split not in (None, "train") else None
        if not scored:
            raise DataError(str(dataset), f"no videos to score (split {split!r})", "check --split and the dataset")
        kind = detect_kind(dataset) if args.kind == "auto" else args.kind
        meta = {"path": str(dataset), "kind": kind, "split": split, "bad_rows": [str(b) for b in bad]}
        report = evaluate_dataset(assessor, scored, cfg, train_items=train or None,
                                  stats_fn=extractor_stats_fn(assessor.extractor), meta=meta)
        report["model"] = assessor.name
    if args.bench is not None:
        entries = load_bench(args.bench)[: args.bench_limit]
        root = args.root or (Path(dataset).parent if dataset is not None else args.bench.parent)
        judge = Judge(judge_cfg) if judge_cfg else None
        report["bench"] = evaluate_bench(entries, bench_answer_fn(assessor, root), judge, progress=args.progress)
    paths = write_report(report, out)
    if report.get("correlation"):
        print(correlation_table(report["correlation"], report.get("baselines")))
    for key in ("wrong_prompt", "self_consistency"):
        if report.get(key):
            print(f"{key}: {report[key]}")
    if report.get("bench"):
        print(f"bench: {report['bench']['summary']}")
    failed = len(report.get("failures", []))
    print(f"{failed} video(s) failed; report: " + ", ".join(str(p) for p in paths.values()))
    return 0


__all__ = ["DEFAULT_DATASET", "add_arguments", "bench_answer_fn", "register", "run"]
