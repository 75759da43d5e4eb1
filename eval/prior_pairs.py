"""How hard should degradation chains rank the human prior? People against chains, on held-out data.

    python eval/prior_pairs.py --grid 0:0 0.1:0.5 1:0.25 3:0.25 1:1 --out eval/reports/prior_pairs

For each ``weight:margin`` (0:0 = the ridge on the rated clips alone) the prior is fitted with
``HumanPrior.fit_ranked`` on fetv_dev plus the ranking pairs of ``--chains`` train-split chains, and scored on
- fetv_dev in prompt-grouped folds (each fold's clips estimated by a prior fitted without them): SRCC of the
  overall estimate (mean of static and temporal) with static and temporal, and of the alignment estimate;
- ``--test-chains`` test-split chains (content the chains never showed): the share of pairs where the stronger
  degradation gets the lower overall estimate, by kind;
- the carphone pair (``example:carphone_pristine`` against ``example:carphone_distorted``).
This is the prior alone, before the LLM reads it (eval/human_cv.py and eval/synth_chains.py score the model).
Chain features are cached (``--cache``), so a second run takes about two minutes per setting on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from llmvqa.corpus.chains import DEFAULT_CHAINS, build_chains, ordered_pairs
from llmvqa.model.prior import DEFAULT_ALPHA, PRIOR_TARGETS, HumanPrior, prior_input
from llmvqa.train.human_data import chain_pairs, cross_fitted, features_from_cache, load_rated, prompt_folds


def chain_order(prior: HumanPrior, chains) -> tuple[float, dict[str, float]]:
    good = total = 0
    by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for ch in chains:
        est = prior.predict_inputs(np.stack([prior_input(f, ps) for f, ps in zip(ch.features, ch.prompt_stats, strict=True)]))
        g, t = ordered_pairs(list(est[:, :2].mean(1)))
        good, total = good + g, total + t
        by_kind[ch.degradation][0] += g
        by_kind[ch.degradation][1] += t
    return good / total, {k: v[0] / v[1] for k, v in sorted(by_kind.items())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratings", default="../shared/data/fetv_dev")
    ap.add_argument("--synth", default="data/synth/manifest.jsonl")
    ap.add_argument("--chains", type=int, default=DEFAULT_CHAINS, help="train-split chains that rank the prior")
    ap.add_argument("--test-chains", type=int, default=72, help="test-split chains it is checked on (6 per kind)")
    ap.add_argument("--grid", nargs="+", default=["0:0", "0.1:0.5", "3:0.25", "1:1"], help="weight:margin settings")
    ap.add_argument("--folds", type=int, default=6)
    ap.add_argument("--alpha", type=float, default=DEFAULT_ALPHA)
    ap.add_argument("--cache", default="cache/features")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    from llmvqa.assessor import resolve_video
    from llmvqa.encoders.cache import FeatureCache
    from llmvqa.encoders.pipeline import FeatureExtractor

    extractor = FeatureExtractor()
    cache = FeatureCache(args.cache)
    clips = load_rated(args.ratings)
    features_of = features_from_cache(None, args.cache)
    x = np.stack([prior_input(*features_of(c)) for c in clips])
    y = np.array([[c.ratings[t] for t in PRIOR_TARGETS] for c in clips])
    folds = prompt_folds([c.prompt for c in clips], args.folds, 0)
    train = build_chains(extractor, args.synth, "train", args.chains, 0, cache=cache)
    test = build_chains(extractor, args.synth, "test", args.test_chains, 0, cache=cache)
    carphone = np.stack([prior_input(extractor.extract(resolve_video(f"example:{n}")))
                         for n in ("carphone_pristine", "carphone_distorted")])
    rows = []
    for setting in args.grid:
        weight, margin = (float(v) for v in setting.split(":"))
        pairs = chain_pairs(train, margin) if weight > 0 else None
        oof = cross_fitted(x, y, folds, args.alpha, pairs, weight)
        overall = oof[:, :2].mean(1)
        prior = (HumanPrior.fit_ranked(x, y, *pairs, alpha=args.alpha, weight=weight) if pairs is not None
                 else HumanPrior.fit(x, y, args.alpha))
        ordered, by_kind = chain_order(prior, test)
        car = prior.predict_inputs(carphone)
        rows.append({"weight": weight, "margin": margin,
                     "static": float(spearmanr(overall, y[:, 0])[0]), "temporal": float(spearmanr(overall, y[:, 1])[0]),
                     "alignment": float(spearmanr(oof[:, 2], y[:, 2])[0]), "chains_ordered": ordered, "by_kind": by_kind,
                     "carphone": {"pristine": float(car[0, :2].mean()), "distorted": float(car[1, :2].mean()),
                                  "pristine_static": float(car[0, 0]), "distorted_static": float(car[1, 0])}})
        print(f"weight {weight:g}, margin {margin:g} done", file=sys.stderr)
    lines = [f"# The human prior ranked by {args.chains} chains: fetv_dev ({len(clips)} clips, {args.folds} prompt-grouped "
             f"folds) against {args.test_chains} test-split chains", "",
             "| weight : margin | overall ~ static | overall ~ temporal | alignment | chain pairs ordered | "
             "carphone overall (pristine / distorted) | carphone static |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        c = r["carphone"]
        lines.append(f"| {r['weight']:g} : {r['margin']:g} | {r['static']:.3f} | {r['temporal']:.3f} | {r['alignment']:.3f} | "
                     f"{r['chains_ordered']:.1%} | {c['pristine']:.2f} / {c['distorted']:.2f} | "
                     f"{c['pristine_static']:.2f} / {c['distorted_static']:.2f} |")
    lines += ["", "By kind (share of ordered pairs): " + "; ".join(
        f"{r['weight']:g}:{r['margin']:g} " + ", ".join(f"{k} {v:.0%}" for k, v in r["by_kind"].items()) for r in rows)]
    print("\n".join(lines))
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "report.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
        (Path(args.out) / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
