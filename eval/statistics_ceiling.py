"""How far can any learner on the encoder statistics get on held-out content?

Fits a ridge regressor and gradient-boosted trees on the cached statistics of a synth corpus
(``llmvqa sig synth``; features from ``llmvqa features`` / ``train.sh``) and prints SRCC against the
overall target on the train, val and test splits. Train ≫ held-out means the statistics fit the
training *scenes* but do not carry over to new content; a low train SRCC means they cannot
express the target at all. Twins (wrong-prompt copies) are left out: the cached statistics do not
depend on the prompt.

    python eval/statistics_ceiling.py data/synth/manifest.jsonl --cache cache/features
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from llmvqa.encoders.cache import FeatureCache
from llmvqa.encoders.config import EncoderConfig
from llmvqa.evaluation.baselines import impute, stat_matrix

SPLITS = ("train", "val", "test")


def load(manifest: Path, cache_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(statistics (N, S), overall targets (N,), splits (N,), statistic names) of the corpus' clips."""
    cache, key = FeatureCache(cache_dir), EncoderConfig().key()
    stats, target, split, missing = [], [], [], []
    for line in manifest.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("twin_of"):
            continue
        feats = cache.get(manifest.parent / rec["video"], key)
        if feats is None:
            missing.append(rec["video"])
            continue
        stats.append(feats.stats)
        target.append(rec["scores"]["overall"])
        split.append(rec["split"])
    if missing:
        print(f"{len(missing)} clip(s) have no cached features (e.g. {missing[0]}); "
              f"run: llmvqa features {manifest.parent / 'videos'} --out {cache_dir}", file=sys.stderr)
    if not stats:
        raise SystemExit(f"error: no cached features for {manifest}")
    x, names = stat_matrix(stats)
    return x, np.asarray(target), np.asarray(split), names


def models() -> dict:
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "ridge": make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 5, 15))),
        "gradient boosting": HistGradientBoostingRegressor(max_iter=300, learning_rate=0.05, random_state=0),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest", type=Path, help="synth manifest.jsonl")
    parser.add_argument("--cache", type=Path, default=Path("cache/features"), help="feature cache folder")
    args = parser.parse_args(argv)
    if not args.manifest.is_file():
        raise SystemExit(f"error: {args.manifest}: no such manifest; build one with `llmvqa sig synth`")
    x, y, split, names = load(args.manifest, args.cache)
    train = split == "train"
    if train.sum() < 3:
        raise SystemExit(f"error: {args.manifest}: fewer than 3 train clips with features")
    x_train, x_all = impute(x[train], x)
    print(f"{len(y)} clips, {len(names)} statistics; SRCC of predicted vs target overall score")
    print("| learner | " + " | ".join(SPLITS) + " |\n|---|" + "---|" * len(SPLITS))
    for name, model in models().items():
        pred = model.fit(x_train, y[train]).predict(x_all)
        cells = [f"{spearmanr(pred[split == s], y[split == s])[0]:.3f}" if (split == s).sum() > 2 else "—" for s in SPLITS]
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
