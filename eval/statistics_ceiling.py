"""How far can any learner on the encoder statistics get on held-out content?

Fits a ridge regressor and gradient-boosted trees on the cached statistics of a synth corpus
(``llmvqa sig synth``; features from ``llmvqa features`` / ``train.sh``) and prints SRCC against the
overall target on the train, val and test splits. Train ≫ held-out means the statistics fit the
training *scenes* but do not carry over to new content; a low train SRCC means they cannot
express the target at all. Twins (wrong-prompt copies) are left out: the cached statistics do not
depend on the prompt. The analysis is ``llmvqa.evaluation.ceiling``; the BRISQUE features are
``llmvqa.evaluation.brisque``'s.

    python eval/statistics_ceiling.py data/synth/manifest.jsonl --cache cache/features
    python eval/statistics_ceiling.py data/synth/manifest.jsonl --nss 4   # + BRISQUE features of 4 frames
    python eval/statistics_ceiling.py data/synth/manifest.jsonl --train-on shipped   # without the extra sources
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from llmvqa.errors import LlmvqaError
from llmvqa.evaluation.ceiling import TRAIN_ON, ceiling, ceiling_markdown, columns, load, nss_matrix, train_mask


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest", type=Path, help="synth manifest.jsonl")
    parser.add_argument("--cache", type=Path, default=Path("cache/features"), help="feature cache folder")
    parser.add_argument("--nss", type=int, default=0, metavar="FRAMES",
                        help="also fit on 36 BRISQUE natural-scene statistics of this many frames per clip "
                             "(decoded from the videos; alone and with the cached statistics)")
    parser.add_argument("--train-on", choices=TRAIN_ON, default="all",
                        help="fit on every train clip, or only on those of the shipped sources (not from "
                             "--extra-sources): how much the extra content helps (default %(default)s)")
    args = parser.parse_args(argv)
    if not args.manifest.is_file():
        raise SystemExit(f"error: {args.manifest}: no such manifest; build one with `llmvqa sig synth`")
    try:
        data = load(args.manifest, args.cache)
        if data.missing:
            print(f"{len(data.missing)} clip(s) have no cached features (e.g. {data.missing[0]}) and are left out; "
                  f"run: llmvqa features {args.manifest.parent / 'videos'} --out {args.cache}", file=sys.stderr)
        sets = {"statistics": data.x}
        if args.nss:
            nss = nss_matrix(data.videos, args.nss)
            sets.update({"BRISQUE": nss, "statistics + BRISQUE": np.hstack([data.x, nss])})
        train = train_mask(data.split, data.extra, args.train_on)
        table = ceiling(sets, data.target, train, columns(data.split, data.extra))
    except (LlmvqaError, ValueError) as e:
        raise SystemExit(f"error: {args.manifest}: {e}") from None
    print(f"{len(data.target)} clips, {len(data.names)} statistics, fitted on {int(train.sum())} train clips "
          f"({args.train_on}); SRCC of predicted vs target overall score")
    print(ceiling_markdown(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
