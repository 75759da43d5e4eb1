"""Reports: ``save_report`` (the one writer of every evaluation and benchmark: JSON, Markdown, per-clip JSON
lines) and ``write_report`` (an ``llmvqa evaluate`` report: ``report.json``, ``report.md``, ``scatter.png``).

The PNG plots predicted score against the human score, one panel per method (model and
baselines), with the SRCC/PLCC in each title. matplotlib runs on the Agg backend (no display).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

METHOD_LABELS = {"model": "llmvqa model", "ridge": "ridge on statistics", "best_stat": "best single statistic"}


def _fmt(v, digits: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def correlation_table(correlation: Mapping[str, Mapping], baselines: Mapping[str, Mapping] | None = None) -> str:
    """Markdown table: one row per method with SRCC / PLCC / KRCC / RMSE / n."""
    lines = ["| method | SRCC | PLCC | KRCC | RMSE | n |", "|---|---|---|---|---|---|"]
    for name, c in correlation.items():
        label = METHOD_LABELS.get(name, name)
        b = (baselines or {}).get(name) or {}
        if b.get("statistic"):
            label += f" ({b['statistic']})"
        lines.append(f"| {label} | {_fmt(c['srcc'])} | {_fmt(c['plcc'])} | {_fmt(c['krcc'])} | {_fmt(c['rmse'])} | {c['n']} |")
    return "\n".join(lines)


def markdown(report: Mapping) -> str:
    """The whole report as Markdown."""
    ds = report.get("dataset", {})
    out = [f"# Evaluation of {report.get('model', 'model')}", ""]
    out.append(", ".join(f"{k}: {_fmt(v)}" for k, v in ds.items() if not isinstance(v, (list, dict))))
    out.append("")
    if report.get("correlation"):
        out += ["## Correlation with human scores", "", correlation_table(report["correlation"], report.get("baselines")), ""]
        protocols = {k: b.get("protocol") for k, b in (report.get("baselines") or {}).items() if isinstance(b, dict)}
        if any(protocols.values()):
            out += ["Baselines fitted on: " + "; ".join(f"{k}: {p}" for k, p in protocols.items() if p), ""]
    else:
        out += ["No correlation (fewer than 3 labelled videos scored).", ""]
    acc = report.get("dimension_accuracy")
    if acc:
        out += ["## Per-dimension level accuracy", "",
                "| key | accuracy | within one level | majority-level baseline | balanced accuracy | majority balanced | n |",
                "|---|---|---|---|---|---|---|"]
        out += [f"| {k} | {_fmt(v['accuracy'], 3)} | {_fmt(v['within_one'], 3)} | {_fmt(v.get('majority'), 3)} | "
                f"{_fmt(v.get('balanced_accuracy'), 3)} | {_fmt(v.get('majority_balanced'), 3)} | {v['n']} |"
                for k, v in acc.items()]
        out.append("")
    wp = report.get("wrong_prompt")
    if wp and wp.get("pairs"):
        out += ["## Wrong-prompt check (prompt alignment of the wrong-prompt twin vs. the original)", "",
                "| pairs | strictly lower level | lower score | lower level, or same level and lower score | target |",
                "|---|---|---|---|---|",
                f"| {wp['pairs']} | {_fmt(wp['lower_level'], 3)} | {_fmt(wp['lower_score'], 3)} | "
                f"{_fmt(wp['lower_level_or_tied_lower_score'], 3)} | ≥ {wp['target']} |", ""]
    sc = report.get("self_consistency")
    if sc:
        out += ["## Justifications", "", f"Self-consistency (overall sentence = level of the score): "
                f"{_fmt(sc['fraction'], 3)} over {sc['n']} justifications; states the most likely level: "
                f"{_fmt(sc.get('likeliest_level_fraction'), 3)}.", ""]
    bench = report.get("bench")
    if bench:
        s = bench["summary"]
        out += ["## Justification benchmark", "", "| measure | mean | n |", "|---|---|---|"]
        for name in ("level_agreement", "coverage", "self_consistent"):
            out.append(f"| {name} | {_fmt(s.get(name), 3)} | {s.get(name + '_n', 0)} |")
        for name, v in (s.get("judge") or {}).items():
            out.append(f"| judge: {name} (0–5) | {_fmt(v, 2)} | {s.get('judge_n', 0)} |")
        out += ["", f"{len(bench.get('failures', []))} questions failed.", ""]
    failures = report.get("failures") or []
    if failures:
        out += [f"## Failures ({len(failures)})", ""] + [f"- {f.get('video', f.get('id'))}: {f['error']}" for f in failures[:50]]
        out.append("")
    return "\n".join(out)


def scatter_plot(report: Mapping, path: str | Path) -> Path | None:
    """Predicted vs. human score, one panel per method; None when nothing is labelled."""
    preds = [r for r in report.get("predictions", []) if r.get("target") is not None]
    methods = [m for m in report.get("correlation", {}) if m == "model" or all(m in r.get("baselines", {}) for r in preds)]
    if not preds or not methods:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(methods), figsize=(4.2 * len(methods), 4.0), squeeze=False)
    human = [r["target"] for r in preds]
    for ax, m in zip(axes[0], methods, strict=True):
        y = [r["score"] if m == "model" else r["baselines"][m] for r in preds]
        c = report["correlation"][m]
        ax.scatter(human, y, s=12, alpha=0.7)
        ax.set_xlabel("human score")
        stat = (report.get("baselines", {}).get(m) or {}).get("statistic")
        ax.set_ylabel("predicted (1–5)" if m == "model" else f"signed z-score of {stat}" if stat else "predicted")
        ax.set_title(f"{METHOD_LABELS.get(m, m)}\nSRCC {c['srcc']:.3f}  PLCC {c['plcc']:.3f}", fontsize=9)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def save_report(out: str | Path, report: Mapping | list, *, markdown: str | None = None,
                rows: Iterable[Mapping] | None = None, name: str = "report", rows_name: str = "clips") -> dict[str, Path]:
    """The one report writer of llmvqa's evaluations and benchmarks: ``report`` as indented JSON, the Markdown
    beside it when given, and per-clip ``rows`` as JSON lines when given. ``out`` is a folder (``{name}.json``,
    ``{name}.md``, ``{rows_name}.jsonl`` in it, created as needed) or a ``.json`` file (the Markdown and rows
    beside it, named after it). Returns the paths written."""
    out = Path(out)
    if out.suffix == ".json":
        folder, json_path = out.parent, out
        md_path, rows_path = out.with_suffix(".md"), out.with_name(out.stem + "_" + rows_name + ".jsonl")
    else:
        folder, json_path = out, out / f"{name}.json"
        md_path, rows_path = out / f"{name}.md", out / f"{rows_name}.jsonl"
    folder.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=1, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    paths = {"json": json_path}
    if markdown is not None:
        md_path.write_text(markdown.rstrip("\n") + "\n", encoding="utf-8")
        paths["markdown"] = md_path
    if rows is not None:
        with rows_path.open("w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows)
        paths["rows"] = rows_path
    return paths


def print_report(text: str, out: str | Path | None, report: Mapping | list) -> None:
    """An evaluation script's ending: its Markdown ``text`` on stdout and, with ``out``, ``save_report(out, report,
    markdown=text)``."""
    print(text, end="" if text.endswith("\n") else "\n")
    if out:
        save_report(out, report, markdown=text)


def write_report(report: Mapping, out_dir: str | Path) -> dict[str, Path]:
    """An ``llmvqa evaluate`` report: report.json, report.md and (when something is labelled) scatter.png."""
    paths = save_report(out_dir, report, markdown=markdown(report))
    png = scatter_plot(report, Path(out_dir) / "scatter.png")
    if png is not None:
        paths["png"] = png
    return paths


__all__ = ["correlation_table", "markdown", "print_report", "save_report", "scatter_plot", "write_report"]
