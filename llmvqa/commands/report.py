"""`llmvqa report RESULTS --by COLUMN --out DIR` — a leaderboard of batch results.

    llmvqa batch videos/ --out results.csv
    llmvqa report results.csv --by folder --out report/          # one row per folder (e.g. per generator)
    llmvqa report results.csv --by generator --out report/       # a column of the CSV

Writes leaderboard.csv / .json (mean score per group with a 95% bootstrap interval, and the mean of
each group and dimension column), score.png, dimensions.png and index.html (one self-contained page).
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser("report", help="leaderboard (per generator or folder) of batch results",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", help="CSV written by llmvqa batch")
    p.add_argument("--by", default="folder", help="a column of the CSV, or 'folder' (the video's folder; default)")
    p.add_argument("--out", required=True, help="folder for leaderboard.csv/.json, the plots and index.html")
    p.add_argument("--title", default="llmvqa leaderboard")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from llmvqa.report import build_report, read_results, write_report

    board = build_report(read_results(args.results), args.by)
    page = write_report(board, args.out, args.title)
    for rank, g in enumerate(board, 1):
        print(f"{rank:>3}  {g.group:<30} {g.mean:.2f}  [{g.low:.2f}, {g.high:.2f}]  n={g.n}")
    print(f"report: {page}", file=sys.stderr)
    return 0
