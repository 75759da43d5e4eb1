"""How hard should degradation chains rank the human prior? People against chains, on held-out data.

    python eval/prior_pairs.py --grid 0:0 3:0.25 3:0.35:0.2 3:0.5:0.2 --out eval/reports/prior_pairs

For each ``weight:margin[:outside]`` (0:0 = the ridge on the rated clips alone; ``outside``: the quantile of the
range hinges, none when left out) the prior is fitted with ``HumanPrior.fit_ranked`` on fetv_dev plus the ranking
pairs of ``--chains`` train-split chains, and scored on
- fetv_dev in prompt-grouped folds (each fold's clips estimated by a prior fitted without them): SRCC of the
  overall estimate (mean of static and temporal) with static and temporal, and of the alignment estimate;
- ``--test-chains`` test-split chains (content the chains never showed): the share of pairs where the stronger
  degradation gets the lower overall estimate, by kind; the same on ``--val-chains`` val-split chains, the ones
  to choose a setting on (chains whose degradation did not change the clip are left out of both);
- the carphone pair (``example:carphone_pristine`` against ``example:carphone_distorted``).
This is the prior alone, before the LLM reads it (eval/human_cv.py and eval/synth_chains.py score the model).
Chain features are cached (``--cache``), so a second run takes about two minutes per setting on 2 cores.
Each setting is ``llmvqa.evaluation.human.prior_setting``; the table ``human_report.prior_pairs_markdown``.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from llmvqa.corpus.chains import DEFAULT_CHAINS, build_chains
from llmvqa.evaluation.human import prior_data, prior_setting
from llmvqa.evaluation.human_report import prior_pairs_markdown
from llmvqa.evaluation.report import save_report
from llmvqa.model.prior import DEFAULT_ALPHA, prior_input
from llmvqa.train.human_data import features_from_cache, load_rated, prompt_folds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratings", default="../shared/data/fetv_dev")
    ap.add_argument("--synth", default="data/synth/manifest.jsonl")
    ap.add_argument("--chains", type=int, default=DEFAULT_CHAINS, help="train-split chains that rank the prior")
    ap.add_argument("--test-chains", type=int, default=72, help="test-split chains it is checked on (6 per kind)")
    ap.add_argument("--val-chains", type=int, default=72, help="val-split chains to choose a setting on (0: none)")
    ap.add_argument("--grid", nargs="+", default=["0:0", "3:0.25", "3:0.35:0.2", "3:0.5:0.2"],
                    help="weight:margin[:outside] settings (outside: the prior's range hinges, a quantile; none by default)")
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
    x, y = prior_data([features_of(c) for c in clips], clips)
    folds = prompt_folds([c.prompt for c in clips], args.folds, 0)
    train = build_chains(extractor, args.synth, "train", args.chains, 0, cache=cache)
    test = build_chains(extractor, args.synth, "test", args.test_chains, 0, cache=cache)
    val = build_chains(extractor, args.synth, "val", args.val_chains, 0, cache=cache) if args.val_chains else []
    carphone = np.stack([prior_input(extractor.extract(resolve_video(f"example:{n}")))
                         for n in ("carphone_pristine", "carphone_distorted")])
    rows = []
    for setting in args.grid:
        weight, margin, *rest = (float(v) for v in setting.split(":"))
        outside = rest[0] if rest else None
        rows.append(prior_setting(x, y, folds, args.alpha, weight, margin, train, test, carphone, outside, val))
        print(f"{setting} done", file=sys.stderr)
    md = prior_pairs_markdown(rows, chains=args.chains, clips=len(clips), folds=args.folds, test_chains=args.test_chains)
    print(md, end="")
    if args.out:
        save_report(args.out, rows, markdown=md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
