"""How far can any learner on the encoder statistics get on held-out content?

Fits a ridge regressor and gradient-boosted trees on the cached statistics of a synth corpus
(``llmvqa sig synth``; features from ``llmvqa features`` / ``train.sh``) and prints SRCC against the
overall target on the train, val and test splits. Train ≫ held-out means the statistics fit the
training *scenes* but do not carry over to new content; a low train SRCC means they cannot
express the target at all. Twins (wrong-prompt copies) are left out: the cached statistics do not
depend on the prompt.

    python eval/statistics_ceiling.py data/synth/manifest.jsonl --cache cache/features
    python eval/statistics_ceiling.py data/synth/manifest.jsonl --nss 4   # + BRISQUE features of 4 frames
    python eval/statistics_ceiling.py data/synth/manifest.jsonl --train-on shipped   # without the extra sources
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from llmvqa.corpus.sources import is_file_source
from llmvqa.encoders.cache import FeatureCache
from llmvqa.encoders.config import EncoderConfig
from llmvqa.evaluation.baselines import impute, stat_matrix

SPLITS = ("train", "val", "test")


def load(manifest: Path, cache_dir: Path, with_sources: bool = False) -> tuple:
    """(statistics (N, S), overall targets (N,), splits (N,), statistic names[, sources (N,)]) of the corpus' clips."""
    cache, key = FeatureCache(cache_dir), EncoderConfig().key()
    stats, target, split, missing, sources = [], [], [], [], []
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
        sources.append(rec.get("source", ""))
    if missing:
        print(f"{len(missing)} clip(s) have no cached features (e.g. {missing[0]}); "
              f"run: llmvqa features {manifest.parent / 'videos'} --out {cache_dir}", file=sys.stderr)
    if not stats:
        raise SystemExit(f"error: no cached features for {manifest}")
    x, names = stat_matrix(stats)
    out = (x, np.asarray(target), np.asarray(split), names)
    return (*out, np.asarray(sources)) if with_sources else out


# ---------------------------------------------------------------- optional: natural-scene statistics

@functools.cache
def _shape_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate shapes and the GGD / AGGD moment ratios they give (computed once)."""
    from scipy.special import gamma

    g = np.arange(0.2, 10.0, 0.001)
    return g, gamma(1 / g) * gamma(3 / g) / gamma(2 / g) ** 2, gamma(2 / g) ** 2 / (gamma(1 / g) * gamma(3 / g))


def _ggd(x: np.ndarray) -> list[float]:
    """Shape and variance of a generalized Gaussian fitted by moment matching."""
    g, ratio, _ = _shape_tables()
    rho = np.mean(x * x) / (np.mean(np.abs(x)) ** 2 + 1e-12)
    return [float(g[np.argmin((ratio - rho) ** 2)]), float(np.mean(x * x))]


def _aggd(x: np.ndarray) -> list[float]:
    """Shape, mean, left and right variance of an asymmetric generalized Gaussian (BRISQUE)."""
    from scipy.special import gamma

    left, right = x[x < 0], x[x > 0]
    ls = np.sqrt(np.mean(left * left)) if left.size else 1e-6
    rs = np.sqrt(np.mean(right * right)) if right.size else 1e-6
    gam = ls / rs
    r = np.mean(np.abs(x)) ** 2 / (np.mean(x * x) + 1e-12) * (gam**3 + 1) * (gam + 1) / (gam * gam + 1) ** 2
    g, _, ratio = _shape_tables()
    a = g[np.argmin((ratio - r) ** 2)]
    mean = (rs - ls) * gamma(2 / a) / gamma(1 / a) * np.sqrt(gamma(1 / a) / gamma(3 / a))
    return [float(a), float(mean), float(ls * ls), float(rs * rs)]


def brisque_features(gray: np.ndarray) -> np.ndarray:
    """The 36 BRISQUE features of a grey frame (MSCN GGD + 4 neighbour-product AGGDs, 2 scales)."""
    import cv2

    img, out = gray.astype(np.float64), []
    for _ in range(2):
        mu = cv2.GaussianBlur(img, (7, 7), 7 / 6)
        sigma = np.sqrt(np.abs(cv2.GaussianBlur(img * img, (7, 7), 7 / 6) - mu * mu))
        mscn = (img - mu) / (sigma + 1)
        out += _ggd(mscn)
        for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
            shifted = np.roll(mscn, (-dy, -dx), axis=(0, 1))
            out += _aggd((mscn * shifted)[1:-1, 1:-1].ravel())
        img = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_CUBIC)
    return np.asarray(out)


def nss_matrix(manifest: Path, frames: int) -> np.ndarray:
    """(N, 36) BRISQUE features averaged over ``frames`` frames of each non-twin clip (manifest order)."""
    from llmvqa.video import load_clip

    rows = []
    for line in manifest.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("twin_of"):
            continue
        clip = load_clip(manifest.parent / rec["video"], nframes=frames)
        grey = clip.frames.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        rows.append(np.mean([brisque_features(g) for g in grey], axis=0))
    return np.stack(rows)


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
    parser.add_argument("--nss", type=int, default=0, metavar="FRAMES",
                        help="also fit on 36 BRISQUE natural-scene statistics of this many frames per clip "
                             "(decoded from the videos; alone and with the cached statistics)")
    parser.add_argument("--train-on", choices=("all", "shipped"), default="all",
                        help="fit on every train clip, or only on those of the shipped sources (not from "
                             "--extra-sources): how much the extra content helps (default %(default)s)")
    args = parser.parse_args(argv)
    if not args.manifest.is_file():
        raise SystemExit(f"error: {args.manifest}: no such manifest; build one with `llmvqa sig synth`")
    x, y, split, names, sources = load(args.manifest, args.cache, with_sources=True)
    extra = np.array([is_file_source(str(s)) for s in sources], dtype=bool)  # clips of --extra-sources sources
    sets = {"statistics": x}
    if args.nss:
        nss = nss_matrix(args.manifest, args.nss)
        if len(nss) != len(x):
            raise SystemExit("error: --nss needs cached features for every clip (see the message above)")
        sets.update({"BRISQUE": nss, "statistics + BRISQUE": np.hstack([x, nss])})
    train = (split == "train") & (~extra if args.train_on == "shipped" else True)
    if train.sum() < 3:
        raise SystemExit(f"error: {args.manifest}: fewer than 3 train clips with features")
    columns = {s: split == s for s in SPLITS}
    if extra.any():  # the test split by content kind
        columns |= {"test (shipped)": (split == "test") & ~extra, "test (extra)": (split == "test") & extra}
    print(f"{len(y)} clips, {len(names)} statistics, fitted on {int(train.sum())} train clips ({args.train_on}); "
          "SRCC of predicted vs target overall score")
    print("| features | learner | " + " | ".join(columns) + " |\n|---|---|" + "---|" * len(columns))
    for feat_name, feats in sets.items():
        x_train, x_all = impute(feats[train], feats)
        for name, model in models().items():
            pred = model.fit(x_train, y[train]).predict(x_all)
            cells = [f"{spearmanr(pred[m], y[m])[0]:.3f}" if m.sum() > 2 else "—" for m in columns.values()]
            print(f"| {feat_name} | {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
