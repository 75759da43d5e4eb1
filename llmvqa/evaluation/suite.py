"""Score a dataset with a model and the baselines; build the report dict (``evaluate_dataset``).

The assessor is injected (anything with ``rate(video, prompt, explain, dimensions)`` returning a
``RatingResult``-like object), so tests run on a fake. Per-video failures are recorded and skipped.

Report keys: ``dataset``, ``model``, ``correlation`` {method: {srcc, plcc, krcc, rmse, n}},
``baselines`` (how each was fitted), ``dimension_accuracy`` (corpora with reference levels),
``wrong_prompt`` (corpora with wrong-prompt twins), ``self_consistency`` (with explain),
``predictions`` (one record per scored video), ``failures``, ``timings``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmvqa.errors import ConfigError
from llmvqa.evaluation.baselines import run_baselines
from llmvqa.evaluation.datasets import DIMENSION_MODES, EvalItem, twin_pairs
from llmvqa.evaluation.justification import self_consistent
from llmvqa.evaluation.metrics import accuracy, balanced_accuracy, correlation_report
from llmvqa.levels import LEVELS

PROMPT_ALIGNMENT = "prompt_alignment"


@dataclass(frozen=True)
class EvalConfig:
    """How to score a dataset."""

    explain: bool = False
    """Also generate justifications (slow) and check their self-consistency."""
    dimensions: str = "auto"
    """Per-dimension levels: "auto" (only when the corpus has reference levels), "on", "off"."""
    baselines: bool = True
    """Score the ridge and best-statistic baselines on the same videos."""
    folds: int = 5
    """Cross-validation folds for the baselines when no train split is used."""
    seed: int = 0
    """Seed of the fold assignment."""
    progress: bool = True
    """Show a tqdm progress bar."""

    def __post_init__(self) -> None:
        if self.dimensions not in DIMENSION_MODES:
            raise ConfigError("--dimensions", f"unknown mode {self.dimensions!r}", f"use one of {DIMENSION_MODES}")
        if self.folds < 2:
            raise ConfigError("--folds", f"must be at least 2, got {self.folds}", "pass e.g. 5")


def _rating_record(item: EvalItem, result: Any, explain: bool) -> dict:
    rec = {
        "id": item.id, "video": item.video, "prompt": item.prompt, "split": item.split, "target": item.target,
        "score": float(result.score), "score_100": float(result.score_100), "level": str(result.level),
        "probs": {k: float(v) for k, v in result.distribution.items()},
        "groups": {k: {"level": r.level, "score": float(r.score)} for k, r in (result.groups or {}).items()},
        "dimensions": {k: {"level": r.level, "score": float(r.score)} for k, r in (result.dimensions or {}).items()},
        "statistics": {k: float(v) for k, v in (result.statistics or {}).items()},
        "reference_levels": dict(item.levels),
    }
    if explain:
        rec["justification"] = result.justification
        text = result.justification or ""
        rec["self_consistent"] = self_consistent(text, result.score)
        rec["states_likeliest_level"] = self_consistent(text, level=result.level)
    return rec


def score_items(assessor: Any, items: Sequence[EvalItem], explain: bool = False, dimensions: bool = False,
                progress: bool = True) -> tuple[list[dict], list[dict]]:
    """(prediction records, failures {id, video, error}) — a failing video is recorded and skipped."""
    from tqdm import tqdm

    records, failures = [], []
    for item in tqdm(items, desc="scoring", unit="video", disable=not progress):
        try:
            result = assessor.rate(item.path, prompt=item.prompt or None, explain=explain, dimensions=dimensions)
            records.append(_rating_record(item, result, explain))
        except Exception as err:  # noqa: BLE001 — one bad video must not stop the run
            failures.append({"id": item.id, "video": item.video, "error": f"{type(err).__name__}: {err}"})
    return records, failures


def dimension_accuracy(predicted: Sequence[Mapping[str, str]], reference: Sequence[Mapping[str, str]]) -> dict:
    """Per key (dimension / group / overall): exact level accuracy, within-one-level accuracy, n, and
    ``majority``: the accuracy of always answering that key's most frequent reference level (chance);
    ``balanced_accuracy``: the mean over the reference levels present of the share of their videos
    given that level (always-the-majority-level scores 1 / the number of levels present:
    ``majority_balanced``).

    Only keys present in both the prediction and the reference of a video count.
    """
    hits: dict[str, list[tuple[str, str]]] = {}
    for pred, ref in zip(predicted, reference, strict=True):
        for key, lv in pred.items():
            if key in ref and lv in LEVELS and ref[key] in LEVELS:
                hits.setdefault(key, []).append((lv, ref[key]))
    out = {}
    for k, v in sorted(hits.items()):
        preds, refs = [h[0] for h in v], [h[1] for h in v]
        within = [abs(LEVELS.index(p) - LEVELS.index(r)) <= 1 for p, r in v]
        out[k] = {"accuracy": accuracy(preds, refs), "within_one": float(np.mean(within)),
                  "n": len(v), "majority": max(refs.count(lv) for lv in set(refs)) / len(refs),
                  "balanced_accuracy": balanced_accuracy(preds, refs), "majority_balanced": 1.0 / len(set(refs))}
    return out


def _predicted_levels(rec: Mapping) -> dict[str, str]:
    levels = {k: v["level"] for k, v in rec.get("dimensions", {}).items()}
    levels.update({k: v["level"] for k, v in rec.get("groups", {}).items()})
    levels["overall"] = rec["level"]
    return levels


def wrong_prompt_check(pairs: Sequence[tuple[tuple[str, float], tuple[str, float]]]) -> dict:
    """Fractions of (original (level, score), wrong-prompt twin (level, score)) pairs where the twin's
    prompt-alignment level is strictly lower, its score is lower, and either (lower level, or same
    level and lower score). Target: ≥ 0.9."""
    n = len(pairs)
    if n == 0:
        return {"pairs": 0}
    rank = LEVELS.index  # 0 = excellent … 4 = bad: a larger index is a lower level
    lower_level = [rank(t[0]) > rank(o[0]) for o, t in pairs]
    lower_score = [t[1] < o[1] for o, t in pairs]
    either = [rank(t[0]) > rank(o[0]) or (t[0] == o[0] and t[1] < o[1]) for o, t in pairs]
    return {"pairs": n, "lower_level": sum(lower_level) / n, "lower_score": sum(lower_score) / n,
            "lower_level_or_tied_lower_score": sum(either) / n, "target": 0.9}


def _twin_alignment(records: Sequence[Mapping], items: Sequence[EvalItem]) -> list:
    by_id = {r["id"]: r for r in records}
    out = []
    for i, j in twin_pairs(list(items)):
        a, b = by_id.get(items[i].id), by_id.get(items[j].id)
        if a and b and PROMPT_ALIGNMENT in a["dimensions"] and PROMPT_ALIGNMENT in b["dimensions"]:
            da, db = a["dimensions"][PROMPT_ALIGNMENT], b["dimensions"][PROMPT_ALIGNMENT]
            out.append(((da["level"], da["score"]), (db["level"], db["score"])))
    return out


def _correlate(pred, target) -> dict | None:
    p, t = np.asarray(pred, float), np.asarray(target, float)
    ok = np.isfinite(p) & np.isfinite(t)
    if ok.sum() < 3:
        return None
    return correlation_report(p[ok], t[ok])


StatsFn = Callable[[EvalItem], Mapping[str, float]]
"""item → its encoder statistics (with prompt_alignment when it has a prompt)."""


def evaluate_dataset(assessor: Any, items: Sequence[EvalItem], config: EvalConfig | None = None,
                     train_items: Sequence[EvalItem] | None = None, stats_fn: StatsFn | None = None,
                     meta: Mapping[str, Any] | None = None) -> dict:
    """Score ``items`` with the model (and the baselines, trained on ``train_items`` via ``stats_fn``,
    or cross-validated on ``items`` when none are given); return the report dict."""
    cfg = config or EvalConfig()
    t0 = time.perf_counter()
    has_levels = any(it.levels for it in items)
    dims = cfg.dimensions == "on" or (cfg.dimensions == "auto" and has_levels)
    records, failures = score_items(assessor, items, cfg.explain, dims, cfg.progress)
    timings = {"model_s": time.perf_counter() - t0}
    report: dict = {"dataset": {**dict(meta or {}), "items": len(items), "scored": len(records),
                                "failed": len(failures), "labelled": sum(r["target"] is not None for r in records)},
                    "model": getattr(assessor, "name", "model"), "correlation": {}, "baselines": {}}
    labelled = [r for r in records if r["target"] is not None]
    target = [r["target"] for r in labelled]
    model_corr = _correlate([r["score"] for r in labelled], target)
    if model_corr:
        report["correlation"]["model"] = model_corr
    if cfg.baselines and len(labelled) >= 3:
        t = time.perf_counter()
        report["baselines"] = _baselines(labelled, target, cfg, train_items, stats_fn, failures)
        for name, b in report["baselines"].items():
            corr = _correlate(b.pop("pred"), target) if "pred" in b else None
            if corr:
                report["correlation"][name] = corr
        timings["baselines_s"] = time.perf_counter() - t
    if dims and has_levels:
        report["dimension_accuracy"] = dimension_accuracy([_predicted_levels(r) for r in records],
                                                          [r["reference_levels"] for r in records])
        pairs = _twin_alignment(records, items)
        if pairs:
            report["wrong_prompt"] = wrong_prompt_check(pairs)
    if cfg.explain:
        flags = [r["self_consistent"] for r in records if "self_consistent" in r]
        likeliest = [r["states_likeliest_level"] for r in records if "states_likeliest_level" in r]
        report["self_consistency"] = {"fraction": float(np.mean(flags)) if flags else None,
                                      "likeliest_level_fraction": float(np.mean(likeliest)) if likeliest else None,
                                      "n": len(flags)}
    timings["total_s"] = time.perf_counter() - t0
    report.update(predictions=records, failures=failures, timings=timings)
    return report


def _baselines(labelled: list[dict], target: list[float], cfg: EvalConfig, train_items, stats_fn, failures) -> dict:
    test_stats = [r["statistics"] for r in labelled]
    train_stats, y_train = None, None
    if train_items and stats_fn is not None:
        from tqdm import tqdm

        train_stats, y_train = [], []
        for it in tqdm([it for it in train_items if it.target is not None], desc="train stats", unit="video",
                       disable=not cfg.progress):
            try:
                train_stats.append(dict(stats_fn(it)))
                y_train.append(it.target)
            except Exception as err:  # noqa: BLE001
                failures.append({"id": it.id, "video": it.video, "error": f"train stats: {type(err).__name__}: {err}"})
        if len(y_train) < 3:
            train_stats = None
    try:
        out = run_baselines(test_stats, target, train_stats, y_train, k=cfg.folds, seed=cfg.seed)
    except ValueError as err:  # too few videos, nothing varies …
        return {"error": str(err)}
    for name, b in out.items():
        for r, p in zip(labelled, b["pred"], strict=True):
            r.setdefault("baselines", {})[name] = float(p)
    return out


def extractor_stats_fn(extractor: Any, cache_dir: str | Path | None = None) -> StatsFn:
    """StatsFn from a FeatureExtractor (features from the on-disk cache when ``cache_dir`` is given)."""
    from llmvqa.encoders.cache import FeatureCache, get_or_extract

    cache = FeatureCache(cache_dir) if cache_dir else None
    last: dict[Path, Any] = {}  # wrong-prompt twins follow their original: extract their video once

    def stats(item: EvalItem) -> dict[str, float]:
        if item.path not in last:
            last.clear()
            last[item.path] = get_or_extract(extractor, item.path, cache)[0]
        features = last[item.path]
        out = {k: float(v) for k, v in features.stats.items()}
        if item.prompt:
            out.update({k: float(v) for k, v in extractor.prompt_stats(features, item.prompt).items()})
        return out

    return stats


class CachedExtractor:
    """A FeatureExtractor that reads/writes the on-disk feature cache (so the model run reuses training's)."""

    def __init__(self, extractor: Any, cache_dir: str | Path):
        from llmvqa.encoders.cache import FeatureCache

        self.inner = extractor
        self.cache = FeatureCache(cache_dir)
        self.key = extractor.key

    def extract(self, path, content_hash_: str | None = None):
        from llmvqa.encoders.cache import get_or_extract

        return get_or_extract(self.inner, path, self.cache)[0]

    def prompt_stats(self, features, prompt):
        return self.inner.prompt_stats(features, prompt)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


__all__ = ["CachedExtractor", "EvalConfig", "dimension_accuracy", "evaluate_dataset", "extractor_stats_fn",
           "score_items", "wrong_prompt_check"]
