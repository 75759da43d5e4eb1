"""How far can any learner on the encoder statistics get on held-out content? (eval/statistics_ceiling.py)

Fits a ridge regressor and gradient-boosted trees on the cached statistics of a synth corpus and gives
their SRCC against the overall target on the train, val and test splits (and, when the corpus has
clips of ``--extra-sources`` sources, on the test split's shipped and extra clips apart). Train ≫
held-out means the statistics fit the training *scenes* but do not carry over to new content; a low
train SRCC means they cannot express the target at all. Optionally also on the 36 BRISQUE
natural-scene statistics of a few decoded frames (``llmvqa.evaluation.brisque``). Twins (wrong-prompt
copies) are left out: the cached statistics do not depend on the prompt.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llmvqa.corpus.sources import is_file_source
from llmvqa.errors import DataError
from llmvqa.evaluation.baselines import impute, stat_matrix
from llmvqa.evaluation.brisque import NUM_FEATURES, brisque_features
from llmvqa.evaluation.metrics import srcc_or_none

SPLITS = ("train", "val", "test")
TRAIN_ON = ("all", "shipped")
"""Which train clips the learners are fitted on: every one, or only those of the shipped sources."""


@dataclass(frozen=True)
class CorpusStatistics:
    """The cached statistics of a synth corpus' clips (twins left out), one row per clip with features."""

    x: np.ndarray  # (N, S) statistics, NaN where missing
    target: np.ndarray  # (N,) overall target
    split: np.ndarray  # (N,) "train" / "val" / "test"
    names: list[str]  # (S,) statistic names
    sources: np.ndarray  # (N,) the manifest's "source" ("" when absent)
    videos: list[Path]  # (N,) the clips' paths
    missing: list[str]  # the manifest's videos without cached features (left out)

    @property
    def extra(self) -> np.ndarray:
        """(N,) bool: the clip comes from an --extra-sources source."""
        return np.array([is_file_source(str(s)) for s in self.sources], dtype=bool)


def load(manifest: str | Path, cache_dir: str | Path) -> CorpusStatistics:
    """The cached statistics (``llmvqa features`` / ``train.sh``, default encoder settings) of the non-twin
    clips of a synth manifest. Clips without cached features are left out and listed in ``missing``;
    DataError when none has them."""
    from llmvqa.encoders.cache import FeatureCache
    from llmvqa.encoders.config import EncoderConfig

    manifest, cache_dir = Path(manifest), Path(cache_dir)
    cache, key = FeatureCache(cache_dir), EncoderConfig().key()
    stats, target, split, sources, videos, missing = [], [], [], [], [], []
    for line in manifest.read_text().splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        if rec.get("twin_of"):
            continue
        video = manifest.parent / rec["video"]
        feats = cache.get(video, key)
        if feats is None:
            missing.append(rec["video"])
            continue
        stats.append(feats.stats)
        target.append(rec["scores"]["overall"])
        split.append(rec["split"])
        sources.append(rec.get("source", ""))
        videos.append(video)
    if not stats:
        raise DataError(str(manifest), "no clip has cached features",
                        f"run: llmvqa features {manifest.parent / 'videos'} --out {cache_dir}")
    x, names = stat_matrix(stats)
    return CorpusStatistics(x, np.asarray(target, dtype=np.float64), np.asarray(split), names, np.asarray(sources),
                            videos, missing)


def clip_nss(video: str | Path, frames: int) -> np.ndarray:
    """(36,) BRISQUE features averaged over ``frames`` evenly sampled frames of a clip (NaN where no frame
    has texture to fit)."""
    from llmvqa.video.loader import load_clip

    feats = np.stack([brisque_features(f) for f in load_clip(video, nframes=frames).frames])  # (T, 36)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a column NaN in every frame (flat frames): NaN, imputed later
        return np.nanmean(feats, axis=0)


def nss_matrix(videos: Sequence[str | Path], frames: int) -> np.ndarray:
    """(N, 36) BRISQUE features of ``frames`` frames of each clip (``clip_nss``), in the given order."""
    return np.stack([clip_nss(v, frames) for v in videos]) if videos else np.zeros((0, NUM_FEATURES))


def models() -> dict:
    """The learners, by name: ridge on standardized features (alpha by leave-one-out), gradient-boosted trees."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "ridge": make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 5, 15))),
        "gradient boosting": HistGradientBoostingRegressor(max_iter=300, learning_rate=0.05, random_state=0),
    }


def train_mask(split: np.ndarray, extra: np.ndarray, train_on: str = "all") -> np.ndarray:
    """(N,) bool: the train clips the learners fit on (``train_on`` "shipped": without --extra-sources clips)."""
    if train_on not in TRAIN_ON:
        raise ValueError(f"train_on must be one of {TRAIN_ON}, got {train_on!r}")
    return (split == "train") & (~extra if train_on == "shipped" else True)


def columns(split: np.ndarray, extra: np.ndarray) -> dict[str, np.ndarray]:
    """The clips each SRCC is measured on: each split, and with extra-source clips the test split by content kind."""
    out = {s: split == s for s in SPLITS}
    if extra.any():
        out |= {"test (shipped)": (split == "test") & ~extra, "test (extra)": (split == "test") & extra}
    return out


def ceiling(sets: Mapping[str, np.ndarray], target: np.ndarray, train: np.ndarray,
            cols: Mapping[str, np.ndarray]) -> dict[str, dict[str, dict[str, float | None]]]:
    """{feature set: {learner: {column: SRCC of the predictions vs ``target`` on that column's clips}}}: each
    learner of ``models()`` fitted on the ``train`` rows of each (N, F) feature set (NaNs imputed with the
    train mean). None where the SRCC is undefined (under 3 clips, or constant)."""
    if int(np.sum(train)) < 3:
        raise ValueError(f"fewer than 3 train clips ({int(np.sum(train))}) to fit on")
    out: dict = {}
    for feat_name, feats in sets.items():
        x_train, x_all = impute(feats[train], feats)
        out[feat_name] = {}
        for name, model in models().items():
            pred = model.fit(x_train, target[train]).predict(x_all)
            out[feat_name][name] = {c: srcc_or_none(pred[m], target[m]) for c, m in cols.items()}
    return out


def ceiling_markdown(table: Mapping[str, Mapping[str, Mapping[str, float | None]]]) -> str:
    """``ceiling``'s result as a Markdown table: one row per (feature set, learner), a column per clip set."""
    cols = list(next(iter(next(iter(table.values())).values())))
    lines = ["| features | learner | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for feat_name, learners in table.items():
        for name, cells in learners.items():
            lines.append(f"| {feat_name} | {name} | "
                         + " | ".join("—" if cells[c] is None else f"{cells[c]:.3f}" for c in cols) + " |")
    return "\n".join(lines)


__all__ = ["SPLITS", "TRAIN_ON", "CorpusStatistics", "ceiling", "ceiling_markdown", "clip_nss", "columns", "load",
           "models", "nss_matrix", "train_mask"]
