"""The human stage's data: rated clips, prompt-grouped folds, cross-fitted prior estimates, chain pairs.

``llmvqa.train.human`` (the calibration itself) and ``eval/human_cv.py`` / ``eval/prior_pairs.py`` use these.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llmvqa.errors import DataError
from llmvqa.model.prior import DEFAULT_PAIR_WEIGHT, PRIOR_TARGETS, HumanPrior, prior_input


@dataclass(frozen=True)
class RatedClip:
    """One human-rated clip."""

    name: str
    path: Path
    prompt: str
    source: str
    """The generator ("ground-truth" for real footage)."""
    ratings: dict[str, float]
    """static / temporal / alignment on 1–5 (means of the raters)."""


def load_rated(folder: str | Path) -> list[RatedClip]:
    """The clips of ``folder/labels.csv`` (columns name, model, prompt, static, temporal, alignment)."""
    root = Path(folder)
    labels = root / "labels.csv"
    if not labels.is_file():
        raise DataError(str(labels), "not found", "pass a folder with labels.csv and clips/ (FETV layout)")
    clips = []
    with labels.open(newline="", encoding="utf-8") as f:
        for i, row in enumerate(csv.DictReader(f), start=2):
            try:
                ratings = {t: float(row[t]) for t in PRIOR_TARGETS}
                name = row["name"]
            except (KeyError, TypeError, ValueError) as e:
                raise DataError(f"{labels}:{i}", f"bad row ({e})",
                                "columns: name, model, prompt, static, temporal, alignment (1–5)") from e
            path = root / "clips" / name
            if not path.exists():
                raise DataError(f"{labels}:{i}", f"clip {path} not found", "put the clips in clips/")
            clips.append(RatedClip(name, path, row.get("prompt", ""), row.get("model", ""), ratings))
    if len(clips) < 6:
        raise DataError(str(labels), f"only {len(clips)} rated clips", "calibration needs at least 6")
    return clips


def prompt_folds(prompts: Sequence[str], k: int, seed: int = 0) -> np.ndarray:
    """(N,) fold index per clip; all clips of one prompt share a fold (prompts dealt round-robin
    after a seeded shuffle)."""
    unique = sorted(set(prompts))
    k = max(2, min(k, len(unique)))
    order = np.random.default_rng(seed).permutation(len(unique))
    fold_of = {unique[j]: i % k for i, j in enumerate(order)}
    return np.array([fold_of[p] for p in prompts])


def cross_fitted(x: np.ndarray, y: np.ndarray, folds: np.ndarray, alpha: float, pairs=None,
                 pair_weight: float = DEFAULT_PAIR_WEIGHT, outside: float | None = None) -> np.ndarray:
    """(N, K) prior estimates, each from a prior fitted on the other folds (with the ranking ``pairs``,
    (pair_x, pair_margin) of ``chain_pairs``, in every fold when given; ``outside``: the range hinges of
    ``HumanPrior.fit_ranked``)."""
    out = np.zeros_like(y, dtype=np.float64)
    for f in np.unique(folds):
        test = folds == f
        if pairs is None:
            prior = HumanPrior.fit(x[~test], y[~test], alpha)
        else:
            prior = HumanPrior.fit_ranked(x[~test], y[~test], *pairs, alpha=alpha, weight=pair_weight, outside=outside)
        out[test] = prior.predict_inputs(x[test])
    return out


CHAIN_RATINGS = {"technical": "static", "motion": "temporal"}
"""The human rating a chain of each group lowers (the other one must not rise)."""


def chain_pairs(chains, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Ranking pairs of degradation chains for ``HumanPrior.fit_ranked``: every (weaker, stronger) pair of a
    chain; the rating its group hurts must drop by ``margin`` × the strength gap, the other quality rating
    must not rise, prompt alignment is free; a chain whose degradation did not change the clip gives none
    (``corpus.chains.changes``). Returns pair_x (P, 2, D) and pair_margin (P, 3)."""
    from llmvqa.corpus.chains import ranked_chains

    xs, margins = [], []
    for ch in ranked_chains(list(chains)):
        inputs = [prior_input(f, ps) for f, ps in zip(ch.features, ch.prompt_stats or [{}] * len(ch.features),
                                                       strict=True)]
        for i in range(len(inputs)):
            for j in range(i + 1, len(inputs)):
                gap = ch.strengths[j] - ch.strengths[i]
                m = np.zeros(len(PRIOR_TARGETS))
                m[PRIOR_TARGETS.index(CHAIN_RATINGS[ch.group])] = margin * gap
                m[PRIOR_TARGETS.index("alignment")] = np.nan
                xs.append(np.stack([inputs[i], inputs[j]]))
                margins.append(m)
    return np.stack(xs), np.stack(margins)


def source_pairs(rows: Sequence[tuple[Mapping, np.ndarray]], margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Ranking pairs of a synth split for ``HumanPrior.fit_ranked`` that assume nothing about a source's own
    quality: every undegraded clip of a source (no degradations, not a wrong-prompt twin) against each degraded
    clip of the same source. ``rows``: (manifest record, ``prior_input``) pairs. Per rating the pair asks for
    ``margin`` × the corpus' drop of the kinds that hurt it (1 − Π (1 − strength · overall weight) over the
    record's degradations of ``CHAIN_KINDS`` whose group ``CHAIN_RATINGS`` maps to the rating; mutation counts as
    motion), 0 ("not higher") where none does; alignment is free. Records whose degradations hurt neither
    rating (wrong prompt, a static render) give none. Returns pair_x (P, 2, D) and pair_margin (P, 3)."""
    from llmvqa.corpus.chains import CHAIN_KINDS
    from llmvqa.corpus.degradations import DEGRADATIONS

    group_of = {**CHAIN_KINDS, "mutation": "motion"}
    by_source: dict[str, list[tuple[Mapping, np.ndarray]]] = {}
    for rec, x in rows:
        by_source.setdefault(str(rec.get("source") or ""), []).append((rec, x))
    xs, margins = [], []
    for source, members in by_source.items():
        clean = [x for rec, x in members if not rec.get("degradations") and not rec.get("twin_of")]
        if not source or not clean:
            continue
        for rec, x in members:
            kept = {t: 1.0 for t in CHAIN_RATINGS.values()}
            for d in rec.get("degradations") or []:
                group = group_of.get(d["name"])
                if group:
                    kept[CHAIN_RATINGS[group]] *= 1.0 - float(d["strength"]) * DEGRADATIONS[d["name"]].overall
            if all(v == 1.0 for v in kept.values()):
                continue
            m = np.array([margin * (1.0 - kept[t]) if t in kept else np.nan for t in PRIOR_TARGETS])
            for c in clean:
                xs.append(np.stack([c, x]))
                margins.append(m)
    if not xs:
        raise ValueError("no source has both an undegraded and a degraded clip to pair")
    return np.stack(xs), np.stack(margins)


FeaturesOf = Callable[[RatedClip], tuple]
"""clip → (VideoFeatures, prompt_stats dict)."""


def features_from_cache(encoder: dict | None, cache_dir: str | Path) -> FeaturesOf:
    """A ``features_of`` that extracts (or reads from the feature cache) with the model's encoders."""
    from llmvqa.encoders.cache import FeatureCache, get_or_extract
    from llmvqa.encoders.config import EncoderConfig
    from llmvqa.encoders.pipeline import FeatureExtractor

    extractor = FeatureExtractor(EncoderConfig.from_dict(encoder) if encoder else None)
    cache = FeatureCache(cache_dir)

    def features_of(clip: RatedClip):
        f, _ = get_or_extract(extractor, clip.path, cache)
        return f, {k: float(v) for k, v in extractor.prompt_stats(f, clip.prompt or None).items()}

    return features_of


__all__ = ["CHAIN_RATINGS", "FeaturesOf", "RatedClip", "chain_pairs", "cross_fitted", "features_from_cache",
           "load_rated", "prompt_folds", "source_pairs"]
