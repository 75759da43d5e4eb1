"""How well the dimension probe alone tells the levels apart, and how much of it the model's answers keep
(``eval/dimension_probe.py``).

Per clip of a synth split: the reference level of each dimension (the corpus' 0–1 score in five equal bins,
``datasets.reference_levels``), the level of the probe's estimate (``DimensionProbe.estimates``), and with a
model the level it answers when asked the dimension by name (score mode, the estimate in the prior slot).
``probe_results`` scores both with ``suite.dimension_accuracy`` and counts how often the answer is at the probe's
level (``reading_agreement``); ``probe_markdown`` tabulates the balanced accuracy and its margin over
always-the-majority-level (issue 17 asks ≥ +0.15).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

Levels = dict[str, str]


def probe_levels(probe, extractor, rows: Sequence[Mapping], root: str | Path, cache=None,
                 model=None) -> tuple[list[Levels], list[Levels], list[Levels]]:
    """(reference, probe, model) levels per record of a synth split (``rows``: "video" relative to ``root``,
    "scores", "prompt"); features from ``cache`` (extracted when missing); model levels empty without ``model``."""
    from llmvqa.dimensions import load_dimensions
    from llmvqa.encoders.cache import get_or_extract
    from llmvqa.evaluation.datasets import reference_levels
    from llmvqa.levels import level_of_score
    from llmvqa.prompts import aspect_query

    names = {k: d.name for k, d in load_dimensions().dimensions.items()}  # asked by name, as `rate` asks
    ref, by_probe, by_model = [], [], []
    for r in rows:
        f, _ = get_or_extract(extractor, Path(root) / r["video"], cache)
        prompt = r.get("prompt") or None
        ps = {k: float(v) for k, v in extractor.prompt_stats(f, prompt).items()} if prompt else {}
        ref.append(reference_levels(r["scores"]))
        by_probe.append({k: level_of_score(v) for k, v in probe.estimates(f, ps).items()})
        if model is not None:
            queries = [aspect_query(f"dimension:{names[k]}", prompt, model.cfg.prompt_version) for k in probe.dimensions]
            scores = model.score_queries(f, queries, prompt=prompt, prompt_stats=ps)
            by_model.append({k: level_of_score(s.score) for k, s in zip(probe.dimensions, scores, strict=True)})
    return ref, by_probe, by_model


def probe_results(reference: Sequence[Levels], by_probe: Sequence[Levels], by_model: Sequence[Levels] = ()) -> dict:
    """{"probe": dimension_accuracy of the probe's levels, "model": the model's (when there are any)}."""
    from llmvqa.evaluation.suite import dimension_accuracy

    results = {"probe": dimension_accuracy(by_probe, reference)}
    if by_model:
        results["model"] = dimension_accuracy(by_model, reference)
        results["reading"] = reading_agreement(by_probe, by_model)
    return results


def reading_agreement(by_probe: Sequence[Levels], by_model: Sequence[Levels]) -> dict[str, dict]:
    """Per dimension, the share of clips whose answer is at the level of the probe's estimate (how faithfully the
    model reads the estimate in its slot): {"agreement": share, "n": clips}."""
    out: dict[str, dict] = {}
    for p, m in zip(by_probe, by_model, strict=True):
        for k in p.keys() & m.keys():
            row = out.setdefault(k, {"same": 0, "n": 0})
            row["same"] += p[k] == m[k]
            row["n"] += 1
    return {k: {"agreement": v["same"] / v["n"], "n": v["n"]} for k, v in out.items()}


def probe_markdown(results: Mapping[str, Mapping], dimensions: Sequence[str], split: str, clips: int) -> str:
    """A line and a table: per dimension, "balanced accuracy (margin over the majority level)" of each scorer, and
    with ``reading`` in ``results`` the share of answers at the probe's level."""
    labels = {"probe": "probe alone", "model": "model's answer", "reading": "answer at the probe's level"}
    lines = [f"Dimension levels on the synth {split} split ({clips} clips): balanced accuracy "
             "(margin over always-the-majority-level)", "",
             "| dimension | " + " | ".join(labels.get(w, w) for w in results) + " |",
             "|---|" + "---|" * len(results)]
    for k in dimensions:
        cells = []
        for who in results:
            a = results[who].get(k)
            if a is None:
                cells.append("–")
            elif "agreement" in a:
                cells.append(f"{a['agreement']:.1%}")
            else:
                cells.append(f"{a['balanced_accuracy']:.3f} ({a['balanced_accuracy'] - a['majority_balanced']:+.3f})")
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


__all__ = ["probe_levels", "probe_markdown", "probe_results", "reading_agreement"]
