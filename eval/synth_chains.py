"""Does the model still rank synthetic degradations? Chains on the test split, and the carphone pair.

A chain is one undegraded test-split clip of the synth corpus degraded by one kind at strengths
0 / 0.35 / 0.7 / 1 (``llmvqa.corpus.chains``); the check counts the pairs of a chain where the
stronger degradation gets the lower overall score (and the lower score of the group it hurts).
Also: ``example:carphone_distorted`` against ``example:carphone_pristine`` (overall, technical).

    python eval/synth_chains.py --model models/llmvqa-mini --synth data/synth/manifest.jsonl --chains 72
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from llmvqa.corpus.chains import build_chains, ordered_pairs
from llmvqa.prompts import aspect_query


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/llmvqa-mini")
    ap.add_argument("--synth", default="data/synth/manifest.jsonl")
    ap.add_argument("--split", default="test")
    ap.add_argument("--chains", type=int, default=72, help="chains (kinds dealt round-robin; default 72 = 6 per kind)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default="cache/features", help="feature cache of the chain steps ('' for none)")
    ap.add_argument("--out", default=None, help="write report.json here")
    args = ap.parse_args(argv)

    from llmvqa.assessor import Assessor

    assessor = Assessor.from_pretrained(args.model)
    model = assessor.model
    from llmvqa.encoders.cache import FeatureCache

    chains = build_chains(assessor.extractor, args.synth, args.split, args.chains, args.seed,
                          cache=FeatureCache(args.cache) if args.cache else None)
    by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # overall good/total, group good/total
    for ch in chains:
        queries = [aspect_query("overall", None), aspect_query(f"group:{ch.group}", None)]
        scores = [model.score_queries(f, queries) for f in ch.features]
        g, t = ordered_pairs([s[0].score for s in scores])
        gg, tg = ordered_pairs([s[1].score for s in scores])
        row = by_kind[ch.degradation]
        row[0] += g
        row[1] += t
        row[2] += gg
        row[3] += tg
    tot = [sum(r[i] for r in by_kind.values()) for i in range(4)]
    pristine = assessor.rate("example:carphone_pristine", explain=False)
    distorted = assessor.rate("example:carphone_distorted", explain=False)
    report = {
        "model": args.model, "split": args.split, "chains": len(chains),
        "overall_ordered": tot[0] / tot[1], "group_ordered": tot[2] / tot[3],
        "by_kind": {k: {"overall": v[0] / v[1], "group": v[2] / v[3], "pairs": v[1]} for k, v in sorted(by_kind.items())},
        "carphone": {"pristine": {"overall": pristine.score, "technical": pristine.groups["technical"].score},
                     "distorted": {"overall": distorted.score, "technical": distorted.groups["technical"].score}},
    }
    print(f"{len(chains)} chains on the {args.split} split: stronger degradation scores lower in "
          f"{report['overall_ordered']:.1%} of pairs (overall), {report['group_ordered']:.1%} (its group)")
    print("| degradation | overall | group | pairs |\n|---|---|---|---|")
    for k, v in report["by_kind"].items():
        print(f"| {k} | {v['overall']:.1%} | {v['group']:.1%} | {v['pairs']} |")
    c = report["carphone"]
    print(f"carphone pristine: overall {c['pristine']['overall']:.2f}, technical {c['pristine']['technical']:.2f}; "
          f"distorted: overall {c['distorted']['overall']:.2f}, technical {c['distorted']['technical']:.2f}")
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
