"""Does the model still rank synthetic degradations? Chains on the test split, and the carphone pair.

A chain is one undegraded test-split clip of the synth corpus degraded by one kind at strengths
0 / 0.35 / 0.7 / 1 (``llmvqa.corpus.chains``); the check counts the pairs of a chain where the
stronger degradation gets the lower overall score (and the lower score of the group it hurts).
Also: ``example:carphone_distorted`` against ``example:carphone_pristine`` (overall, technical).

    python eval/synth_chains.py --model models/llmvqa-mini --synth data/synth/manifest.jsonl --chains 72
"""

from __future__ import annotations

import argparse
import sys


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
    from llmvqa.corpus.chains import build_chains, ranked_chains
    from llmvqa.encoders.cache import FeatureCache
    from llmvqa.evaluation.chains import carphone_pair, chain_orders, chains_markdown, chains_report
    from llmvqa.evaluation.report import save_report

    assessor = Assessor.from_pretrained(args.model)
    chains = build_chains(assessor.extractor, args.synth, args.split, args.chains, args.seed,
                          cache=FeatureCache(args.cache) if args.cache else None)
    report = chains_report(chain_orders(assessor.model, chains), carphone_pair(assessor), model=args.model,
                           split=args.split, chains=len(ranked_chains(chains)), unchanged=len(chains) - len(ranked_chains(chains)))
    print(chains_markdown(report))
    if args.out:
        save_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
