"""`llmvqa tune-dimensions --model DIR --synth manifest.jsonl --out DIR`: class-balanced dimension answers.

The dimension stage after the human stage (``llmvqa.train.dimension_stage``): trains the main model's
answers to the dimension questions (clarity, noise, …, semantic consistency) on class-balanced draws
of the synth corpus' train split, so a rare level is learned as well as "excellent". The scorer
(overall score, groups, prompt alignment), the prior and the interval are kept as they are.

    llmvqa tune-dimensions --model runs/mini/calibrated --synth data/synth/manifest.jsonl --out models/llmvqa-mini
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from llmvqa.errors import ModelError


def register(subparsers) -> None:
    p = subparsers.add_parser("tune-dimensions", help="dimension stage: class-balanced dimension answers (after calibrate)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="trained model folder (e.g. runs/mini/calibrated)")
    p.add_argument("--synth", required=True, help="synth manifest.jsonl (llmvqa sig synth); its train split is used")
    p.add_argument("--out", required=True, help="where to write the model")
    p.add_argument("--split", default="train", help="manifest split to train on (default train)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default: DimensionStageConfig.steps)")
    p.add_argument("--read-steps", type=int, default=None, help="reading steps per cycle (default: DimensionStageConfig)")
    p.add_argument("--data-steps", type=int, default=None, help="data steps per cycle (default: DimensionStageConfig)")
    p.add_argument("--read-estimates", type=float, default=None,
                   help="share of reading estimates drawn from the probe's cross-fitted estimates (0–1)")
    p.add_argument("--cache", default="cache/features", help="feature cache folder")
    p.add_argument("--probe-kind", choices=("trees", "linear"), default=None,
                   help="the probe: boosted trees over statistics + token summary (default) or a logistic regression")
    p.add_argument("--probe-balance", type=float, default=None,
                   help="class weights of the probe ∝ (1 / level share)^this (default 0.5 trees, 0.25 linear; 1 = balanced)")
    p.add_argument("--probe-inputs", choices=("cv", "all", "stream"), default=None,
                   help="what each dimension's probe reads: every statistic + the token summary (all), its own "
                        "stream's statistics (stream), or per dimension the better of the two in source-grouped "
                        "cross-fitting on the training clips (cv); default: DimensionStageConfig.probe_inputs, all (release 5)")
    p.add_argument("--probe-extra", action=argparse.BooleanOptionalAction, default=None,
                   help="whether the probe also reads the PROBE_STATISTICS (highlight_cast, channel_balance) for the "
                        "dimensions they are for (default: DimensionStageConfig.probe_extra; release 5: no)")
    p.add_argument("--probe-offsets", action=argparse.BooleanOptionalAction, default=None,
                   help="move each dimension's level thresholds after the fit, chosen on source-grouped cross-fitting "
                        "of the training clips for balanced accuracy (default: DimensionStageConfig.probe_offsets)")
    p.add_argument("--offsets-min-recall", type=float, default=None,
                   help="with --probe-offsets: the share of the majority level's clips that must keep their level "
                        "(default: DimensionStageConfig.offsets_min_recall)")
    p.add_argument("--select-split", default="val",
                   help="after training, keep in the probe the dimensions whose answers beat the majority level by "
                        "--min-margin balanced accuracy on this manifest split (default val; '' keeps every one)")
    p.add_argument("--min-margin", type=float, default=0.10, help="see --select-split (default 0.10)")
    p.add_argument("--select-only", action="store_true",
                   help="only select the dimensions (into --model; --out must be the same folder)")
    p.add_argument("--probe-only", action="store_true",
                   help="only fit the probe again (into --model; --out must be the same folder): the model already reads it")
    p.add_argument("--reading-centres", action="store_true",
                   help="only centre the slot values where the model reads them as the probe's level: the reading "
                        "measured on --reading-clips clips of --split, kept per dimension where the answers on "
                        "--select-split gain balanced accuracy (into --model; --out must be the same folder)")
    p.add_argument("--reading-clips", type=int, default=None,
                   help="with --reading-centres: clips the reading is measured on (default: READ_CLIPS, 300)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-v", "--verbose", action="store_true", help="log the training steps")
    p.set_defaults(func=run)


def run(args) -> int:
    from llmvqa.encoders.cache import FeatureCache, get_or_extract
    from llmvqa.encoders.config import EncoderConfig
    from llmvqa.encoders.pipeline import FeatureExtractor
    from llmvqa.train.dimension_stage import (
        READ_CLIPS,
        DimensionStageConfig,
        load_synth_items,
        refit_probe,
        select_dimensions,
        tune_dimensions,
        tune_reading_centres,
    )

    model = Path(args.model)
    if not (model / "config.json").is_file():
        raise ModelError(str(model), "is not a llmvqa model directory (no config.json)",
                         "pass the folder `llmvqa calibrate` or `llmvqa train` wrote")
    encoder = json.loads((model / "config.json").read_text(encoding="utf-8")).get("encoder")
    items = load_synth_items(args.synth, args.split)
    extractor = FeatureExtractor(EncoderConfig.from_dict(encoder) if encoder else None)
    cache = FeatureCache(args.cache)

    def features_of(item):
        f, _ = get_or_extract(extractor, item.path, cache)
        return f, {k: float(v) for k, v in extractor.prompt_stats(f, item.prompt).items()} if item.prompt else {}

    given = {"steps": args.steps, "probe_balance": args.probe_balance, "probe_kind": args.probe_kind,
             "probe_inputs": args.probe_inputs, "probe_extra": args.probe_extra,
             "probe_offsets": args.probe_offsets, "offsets_min_recall": args.offsets_min_recall,
             "read_steps": args.read_steps,
             "data_steps": args.data_steps, "read_estimates": args.read_estimates}
    settings = {"seed": args.seed, **{k: v for k, v in given.items() if v is not None}}
    log = (lambda m: print(m, file=sys.stderr)) if args.verbose else None
    if (args.probe_only or args.select_only or args.reading_centres) and Path(args.out).resolve() != model.resolve():
        raise ModelError(args.out, "--probe-only / --select-only / --reading-centres write into --model",
                         "pass the same folder as --out")
    if args.reading_centres:
        if not args.select_split:
            raise ModelError(args.out, "--reading-centres chooses on --select-split, which is empty",
                             "pass --select-split val")
        tune_reading_centres(model, items, load_synth_items(args.synth, args.select_split), features_of,
                             args.reading_clips or READ_CLIPS, args.seed, log=log)
        print(f"model: {model}")
        return 0
    if args.probe_only:
        out = refit_probe(model, items, features_of, DimensionStageConfig(**settings))
    elif args.select_only:
        out = model
    else:
        out = tune_dimensions(model, items, features_of, args.out, DimensionStageConfig(**settings), log=log)
    if args.select_split and not args.probe_only:
        select_dimensions(out, load_synth_items(args.synth, args.select_split), features_of, args.min_margin, log=log)
    print(f"model: {out}")
    return 0
