"""Does the model rank AI-generated video the way people do? Folds grouped by prompt.

For each fold, ``llmvqa.train.human.calibrate`` fits the prior and trains the scorer on the other
folds' clips only; the fold's clips are then scored by that model (overall, the three groups,
prompt_alignment). In the same run and on the same folds: the base checkpoint without calibration
("before"), the ridge prior alone, and BRISQUE (LIVE-trained, nothing fitted; needs the model files of
``pip install 'llmvqa[brisque]'``). Prints one table; writes report.json and report.md to --out.

    python eval/human_cv.py --base models/llmvqa-mini --ratings ../shared/data/fetv_dev --out eval/reports/human_cv
    python eval/human_cv.py --folds 3 --steps 4 --out /tmp/cv    # quick check of the plumbing
    python eval/human_cv.py --from-report eval/reports/human_cv/report.json --write-interval models/llmvqa-mini

Every run also derives the overall score's 80% interval from the held-out errors
(``evaluation.human.heldout_interval``: the 80% quantile of |held-out score − human mean|, with its
coverage estimated fold by fold); ``--write-interval DIR`` writes it to DIR/interval.json, the interval
``llmvqa rate`` reports. ``--from-report`` does that from an earlier run's predictions without re-running.
The computation is ``llmvqa.evaluation.human.cross_validate``; the text and files ``llmvqa.evaluation.human_report``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from llmvqa.corpus.chains import DEFAULT_CHAINS
from llmvqa.evaluation.human import cross_validate
from llmvqa.evaluation.human_report import cv_markdown, interval_from_report, write_interval
from llmvqa.evaluation.report import save_report
from llmvqa.train.human import CalibrationConfig, chain_pairs, features_from_cache, load_rated, prompt_folds


def log(message: str) -> None:
    print(message, file=sys.stderr)


def save_interval(model_dir: str, interval: dict, ratings: str) -> None:
    path = write_interval(model_dir, interval, ratings)
    log(f"wrote {path}: ±{interval['half_width']:.3f}, expected coverage {interval['expected_coverage']:.1%}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="models/llmvqa-mini", help="checkpoint whose main adapter starts every fold")
    ap.add_argument("--ratings", default="../shared/data/fetv_dev", help="folder with labels.csv and clips/")
    ap.add_argument("--folds", type=int, default=6, help="prompt-grouped folds (default 6)")
    ap.add_argument("--steps", type=int, default=CalibrationConfig.steps, help="calibration steps per fold")
    ap.add_argument("--synth", default=None, help="synth manifest.jsonl: degradation chains of its train split join "
                    "every fold's calibration (as llmvqa calibrate --synth)")
    ap.add_argument("--chains", type=int, default=DEFAULT_CHAINS, help=f"chains built from --synth (default {DEFAULT_CHAINS})")
    ap.add_argument("--cache", default="cache/features", help="feature cache")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prior-margin", type=float, default=CalibrationConfig.prior_margin,
                    help="gap a full-strength chain degradation should open in the prior (as llmvqa calibrate)")
    ap.add_argument("--prior-outside", type=float, default=CalibrationConfig.prior_outside,
                    help="quantile of the prior's range hinges (as llmvqa calibrate; default "
                    f"{CalibrationConfig.prior_outside}; a negative value: none)")
    for kind in ("read", "human", "chain"):
        ap.add_argument(f"--{kind}-steps", type=int, default=getattr(CalibrationConfig, f"{kind}_steps"),
                        help=f"{kind} steps per calibration cycle (CalibrationConfig.{kind}_steps)")
    ap.add_argument("--read-near", type=float, default=CalibrationConfig.read_near,
                    help="share of reading examples drawn around the rated clips' estimates (CalibrationConfig.read_near)")
    ap.add_argument("--read-rank-weight", type=float, default=CalibrationConfig.read_rank_weight,
                    help="rank loss weight on reading batches (CalibrationConfig.read_rank_weight)")
    ap.add_argument("--projector-lr", type=float, default=CalibrationConfig.projector_lr,
                    help="learning rate of the scorer's stats MLPs (CalibrationConfig.projector_lr)")
    ap.add_argument("--prior-lr", type=float, default=CalibrationConfig.prior_lr,
                    help="learning rate of the scorer's prior directions (CalibrationConfig.prior_lr)")
    ap.add_argument("--read-extra-steps", type=int, default=CalibrationConfig.read_extra_steps,
                    help="most extra reading steps while the scorer's reading check fails (CalibrationConfig.read_extra_steps)")
    ap.add_argument("--out", default="eval/reports/human_cv")
    ap.add_argument("--write-interval", default=None, metavar="MODEL_DIR",
                    help="write the interval from the held-out errors to MODEL_DIR/interval.json")
    ap.add_argument("--from-report", default=None, metavar="REPORT_JSON",
                    help="take the held-out predictions of an earlier run (with --write-interval) instead of running")
    args = ap.parse_args(argv)
    if args.from_report:
        interval = interval_from_report(Path(args.from_report), load_rated(args.ratings))
        print(json.dumps(interval, indent=2))
        if args.write_interval:
            save_interval(args.write_interval, interval, args.ratings)
        return 0

    base = Path(args.base)
    meta = json.loads((base / "config.json").read_text(encoding="utf-8"))
    clips = load_rated(args.ratings)
    features_of = features_from_cache(meta.get("encoder"), args.cache)
    feats = [features_of(c) for c in clips]
    folds = prompt_folds([c.prompt for c in clips], args.folds, args.seed)
    chains = pairs = None
    if args.synth:
        from llmvqa.corpus.chains import build_chains
        from llmvqa.encoders.cache import FeatureCache
        from llmvqa.encoders.config import EncoderConfig
        from llmvqa.encoders.pipeline import FeatureExtractor

        enc = meta.get("encoder")
        chains = build_chains(FeatureExtractor(EncoderConfig.from_dict(enc) if enc else None), args.synth, "train",
                              args.chains, args.seed, cache=FeatureCache(args.cache))
        pairs = chain_pairs(chains, args.prior_margin)
    outside = None if args.prior_outside is None or args.prior_outside < 0 else args.prior_outside
    cfg = CalibrationConfig(steps=args.steps, seed=args.seed, prior_margin=args.prior_margin, prior_outside=outside,
                            read_steps=args.read_steps, human_steps=args.human_steps, chain_steps=args.chain_steps,
                            read_near=args.read_near, read_rank_weight=args.read_rank_weight,
                            projector_lr=args.projector_lr, prior_lr=args.prior_lr,
                            read_extra_steps=args.read_extra_steps)
    report = cross_validate(base, clips, feats, features_of, folds, cfg, chains=chains, pairs=pairs,
                            ratings=args.ratings, log=log)
    if args.write_interval:
        save_interval(args.write_interval, report["interval"], args.ratings)
    md = cv_markdown(report)
    save_report(args.out, report, markdown=md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
