"""Leaderboards from batch results: mean score per generator (or folder) with bootstrap intervals.

``build_report(rows, by)`` groups the ``status == ok`` rows of a ``llmvqa batch`` CSV by a column
(``--by generator``) or by the video's parent folder (``--by folder``) and gives, per group, the
number of clips, the mean overall score with a 95% bootstrap interval (percentile method, 2,000
resamples, seed 0) and, when the CSV has ``<name>_score`` columns (``batch --dimensions``), the mean of
each group and dimension. ``write_report`` writes leaderboard.csv / .json, two PNG plots and one
self-contained HTML page (plots embedded), the page ``llmvqa report`` produces.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from llmvqa.errors import DataError

BOOTSTRAP = 2000


@dataclass
class GroupRow:
    group: str
    n: int
    mean: float
    low: float
    high: float
    """95% bootstrap interval of the mean overall score (1–5)."""
    aspects: dict[str, float] = field(default_factory=dict)
    """Mean score (1–5) of each group / dimension column present."""


def read_results(path: str | Path) -> list[dict[str, str]]:
    """The rows of a batch result, CSV or Parquet folder (values as text; DataError when it is not one)."""
    from llmvqa.commands.batch_io import is_parquet
    from llmvqa.commands.batch_io import read_results as read_rows

    path = Path(path)
    parquet = is_parquet(path) and path.is_dir()
    if not (path.is_file() or parquet):
        raise DataError(str(path), "not found", "pass the CSV or Parquet folder `llmvqa batch --out` wrote")
    try:
        rows = read_rows(path)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise DataError(str(path), f"unreadable ({type(err).__name__}: {err})",
                        "pass the CSV or Parquet folder `llmvqa batch --out` wrote") from err
    if not rows:
        raise DataError(str(path), "has no result rows", "run llmvqa batch first")
    if not {"video", "score"} <= set(rows[0]):
        raise DataError(str(path), "is not a llmvqa batch result (needs 'video' and 'score' columns)",
                        "pass the CSV or Parquet folder `llmvqa batch --out` wrote")
    return [{k: "" if v is None else str(v) for k, v in r.items()} for r in rows]


def bootstrap_interval(values: np.ndarray, rng: np.random.Generator, n: int = BOOTSTRAP) -> tuple[float, float]:
    if len(values) < 2:
        return float(values.mean()), float(values.mean())
    means = values[rng.integers(0, len(values), (n, len(values)))].mean(axis=1)  # (n,)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def build_report(rows: list[dict[str, str]], by: str) -> list[GroupRow]:
    """Leaderboard rows, best mean first. ``by``: a column of the CSV, or "folder"."""
    ok = [r for r in rows if (r.get("status") or "ok") == "ok" and r.get("score")]
    if not ok:
        raise DataError("results", "has no rated rows (status ok)", "run llmvqa batch first")
    if by != "folder" and by not in ok[0]:
        raise DataError("results", f"has no column {by!r} (columns: {sorted(ok[0])})",
                        "use --by folder, or a column of the CSV (batch keeps the input CSV's prompt only: "
                        "add the column to the results, e.g. generator)")
    aspect_cols = [c[: -len("_score")] for c in ok[0] if c.endswith("_score") and c != "score"]
    groups: dict[str, list[dict[str, str]]] = {}
    for r in ok:
        key = Path(r.get("path") or r["video"]).parent.name if by == "folder" else (r.get(by) or "(none)")
        groups.setdefault(key, []).append(r)
    rng = np.random.default_rng(0)
    out = []
    for key, members in groups.items():
        scores = np.array([float(r["score"]) for r in members])
        low, high = bootstrap_interval(scores, rng)
        aspects = {}
        for a in aspect_cols:
            vals = [float(r[f"{a}_score"]) for r in members if r.get(f"{a}_score")]
            if vals:
                aspects[a] = float(np.mean(vals))
        out.append(GroupRow(key, len(members), float(scores.mean()), low, high, aspects))
    return sorted(out, key=lambda g: -g.mean)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def plots(board: list[GroupRow]) -> dict[str, bytes]:
    """{"score.png": bar chart with 95% intervals, "dimensions.png": heatmap (when aspect columns exist)}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = {}
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(board) + 2), 3.2))
    x = np.arange(len(board))
    means = np.array([g.mean for g in board])
    err = np.array([[g.mean - g.low for g in board], [g.high - g.mean for g in board]])
    ax.bar(x, means, yerr=err, capsize=4, color="#4c78a8")
    ax.set_xticks(x, [g.group for g in board], rotation=30, ha="right")
    ax.set_ylim(1, 5)
    ax.set_ylabel("mean score (1–5), 95% interval")
    out["score.png"] = _png(fig)
    plt.close(fig)
    names = sorted({a for g in board for a in g.aspects})
    if names:
        grid = np.array([[g.aspects.get(a, np.nan) for a in names] for g in board])
        fig, ax = plt.subplots(figsize=(0.55 * len(names) + 3, 0.45 * len(board) + 1.5))
        im = ax.imshow(grid, vmin=1, vmax=5, cmap="RdYlGn", aspect="auto")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
        ax.set_yticks(range(len(board)), [g.group for g in board])
        fig.colorbar(im, ax=ax, label="mean score (1–5)")
        out["dimensions.png"] = _png(fig)
        plt.close(fig)
    return out


def render_html(board: list[GroupRow], images: dict[str, bytes], title: str) -> str:
    """One self-contained page: the leaderboard table, the per-dimension table, the plots inline."""
    names = sorted({a for g in board for a in g.aspects})
    head = "".join(f"<th>{html.escape(a)}</th>" for a in names)
    rows = []
    for rank, g in enumerate(board, 1):
        cells = "".join(f"<td>{g.aspects[a]:.2f}</td>" if a in g.aspects else "<td></td>" for a in names)
        rows.append(f"<tr><td>{rank}</td><td class='group'>{html.escape(g.group)}</td><td>{g.n}</td>"
                    f"<td class='mean'>{g.mean:.2f}</td><td>{g.low:.2f}–{g.high:.2f}</td>{cells}</tr>")
    imgs = "".join(f"<figure><img alt='{html.escape(k)}' src='data:image/png;base64,"
                   f"{base64.b64encode(v).decode()}'/></figure>" for k, v in images.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td.group{{text-align:left}}</style></head>
<body><h1>{html.escape(title)}</h1>
<p>Mean overall score (1–5) per group with its 95% bootstrap interval ({BOOTSTRAP} resamples); group and
dimension columns are mean scores (1–5).</p>
<table id="leaderboard"><thead><tr><th>rank</th><th>group</th><th>clips</th><th>mean</th><th>95% interval</th>{head}</tr>
</thead><tbody>{''.join(rows)}</tbody></table>
{imgs}
</body></html>
"""


def write_report(board: list[GroupRow], out: str | Path, title: str = "llmvqa leaderboard") -> Path:
    """leaderboard.csv, leaderboard.json, the PNG plots and index.html in ``out``; returns index.html."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = sorted({a for g in board for a in g.aspects})
    with (out / "leaderboard.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["rank", "group", "clips", "mean", "low", "high", *names])
        for rank, g in enumerate(board, 1):
            w.writerow([rank, g.group, g.n, f"{g.mean:.4f}", f"{g.low:.4f}", f"{g.high:.4f}",
                        *(f"{g.aspects[a]:.4f}" if a in g.aspects else "" for a in names)])
    (out / "leaderboard.json").write_text(json.dumps([asdict(g) for g in board], indent=2) + "\n", encoding="utf-8")
    images = plots(board)
    for name, data in images.items():
        (out / name).write_bytes(data)
    page = out / "index.html"
    page.write_text(render_html(board, images, title), encoding="utf-8")
    return page
