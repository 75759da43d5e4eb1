"""`llmvqa calibrate --model DIR --ratings FOLDER --out DIR`: teach a trained model what people see.

The human stage after stages 1–3 (``llmvqa.train.human``): fits the human prior on the rated clips,
trains the scorer (LoRA + projectors, from the model's own weights) on the human ratings and, with
``--synth``, on degradation chains of the synth corpus' train split (relative ranks only), and
writes a complete model to --out (main adapter unchanged, scorer/, prior, interval).

    llmvqa calibrate --model runs/mini/stage3/final --ratings ../shared/data/fetv_dev \\
        --synth data/synth/manifest.jsonl --out runs/mini/calibrated
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from llmvqa.errors import ModelError

DEFAULT_CHAINS = 240  # = llmvqa.corpus.chains.DEFAULT_CHAINS (not imported: `calibrate --help` stays light)


def register(subparsers) -> None:
    p = subparsers.add_parser("calibrate", help="human stage: fit the scorer to human ratings (after stage 3)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="trained checkpoint (e.g. runs/mini/stage3/final)")
    p.add_argument("--ratings", required=True, help="folder with labels.csv (name, model, prompt, static, "
                   "temporal, alignment on 1–5) and clips/")
    p.add_argument("--out", required=True, help="where to write the calibrated model")
    p.add_argument("--synth", default=None, help="synth manifest.jsonl: degradation chains of its train split "
                   "teach relative ranks")
    p.add_argument("--chains", type=int, default=DEFAULT_CHAINS,
                   help=f"degradation chains built from --synth (default {DEFAULT_CHAINS}; their features are cached)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default: CalibrationConfig.steps)")
    p.add_argument("--prior-margin", type=float, default=None,
                   help="gap (1–5) a full-strength chain degradation should open in the prior (default: "
                   "llmvqa.model.prior.DEFAULT_MARGIN, 0.35)")
    p.add_argument("--prior-outside", type=_outside, default=None, metavar="Q|none",
                   help="range hinges of the prior: quantile of the rated clips' statistics past which chains may rank "
                   "a clip down (default: DEFAULT_OUTSIDE, 0.2; 'none': a linear prior, as release 4)")
    p.add_argument("--cache", default="cache/features", help="feature cache folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-v", "--verbose", action="store_true", help="log the training steps")
    p.set_defaults(func=run)


def _outside(text: str) -> float | str:
    if text.lower() == "none":
        return "none"
    try:
        q = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a quantile in [0, 0.5) or 'none', got {text!r}") from None
    if not 0 <= q < 0.5:
        raise argparse.ArgumentTypeError(f"expected a quantile in [0, 0.5) or 'none', got {text!r}")
    return q


def run(args) -> int:
    from llmvqa.train.human import CalibrationConfig, calibrate, features_from_cache, load_rated

    model = Path(args.model)
    cfg_path = model / "config.json"
    if not cfg_path.is_file():
        raise ModelError(str(model), "is not a llmvqa model directory (no config.json)",
                         "pass the folder `llmvqa train` wrote, e.g. runs/mini/stage3/final")
    encoder = json.loads(cfg_path.read_text(encoding="utf-8")).get("encoder")
    clips = load_rated(args.ratings)
    features_of = features_from_cache(encoder, args.cache)
    settings = {"seed": args.seed, **({"steps": args.steps} if args.steps is not None else {})}
    if args.prior_margin is not None:
        settings["prior_margin"] = args.prior_margin
    if args.prior_outside is not None:
        settings["prior_outside"] = None if args.prior_outside == "none" else args.prior_outside
    log = (lambda m: print(m, file=sys.stderr)) if args.verbose else None
    chains = None
    if args.synth:
        from llmvqa.corpus.chains import build_chains
        from llmvqa.encoders.cache import FeatureCache
        from llmvqa.encoders.config import EncoderConfig
        from llmvqa.encoders.pipeline import FeatureExtractor

        extractor = FeatureExtractor(EncoderConfig.from_dict(encoder) if encoder else None)
        chains = build_chains(extractor, args.synth, "train", args.chains, args.seed, cache=FeatureCache(args.cache))
    out = calibrate(model, clips, features_of, args.out, CalibrationConfig(**settings), log=log, chains=chains)
    print(f"calibrated model: {out}")
    return 0
