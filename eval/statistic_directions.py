"""Which way does each encoder statistic run on human-rated AI-generated video?

For every statistic of ``llmvqa.statistics`` (prompt alignment with each clip's own prompt), the SRCC
with the human static, temporal and alignment ratings of a rated folder (FETV layout), beside the
direction the registry assumes (``higher_is_better``). "against" marks a statistic whose assumed
direction people contradict (SRCC of the wrong sign with |SRCC| ≥ 0.2) — no target is built on such
a direction.

    python eval/statistic_directions.py --ratings ../shared/data/fetv_dev --model models/llmvqa-mini
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from llmvqa.evaluation.human import human_table
from llmvqa.evaluation.metrics import srcc
from llmvqa.statistics import STATISTICS
from llmvqa.train.human import features_from_cache, load_rated


def directions(stats: list[dict], ratings: list[dict]) -> list[dict]:
    """One row per statistic: SRCC with each human rating and the verdict on its assumed direction."""
    human = human_table(ratings)
    rows = []
    for st in STATISTICS:
        values = np.array([s.get(st.name, np.nan) for s in stats], float)
        ok = np.isfinite(values)
        row = {"statistic": st.name, "stream": st.stream, "assumed": st.higher_is_better}
        for k in ("static", "temporal", "alignment"):
            row[k] = srcc(values[ok], human[k][ok]) if ok.sum() >= 3 and np.ptp(values[ok]) > 0 else float("nan")
        main = row["alignment"] if st.name == "prompt_alignment" else row["static" if st.stream == "technical" else "temporal"]
        if st.higher_is_better is None or not np.isfinite(main):
            row["verdict"] = "no direction assumed" if st.higher_is_better is None else "—"
        elif abs(main) < 0.2:
            row["verdict"] = "weak"
        else:
            row["verdict"] = "as assumed" if (main > 0) == st.higher_is_better else "against"
        rows.append(row)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratings", default="../shared/data/fetv_dev")
    ap.add_argument("--model", default="models/llmvqa-mini", help="checkpoint whose encoder settings to use")
    ap.add_argument("--cache", default="cache/features")
    ap.add_argument("--out", default=None, help="write report.json here")
    args = ap.parse_args(argv)
    meta = json.loads((Path(args.model) / "config.json").read_text(encoding="utf-8"))
    clips = load_rated(args.ratings)
    features_of = features_from_cache(meta.get("encoder"), args.cache)
    stats = []
    for c in clips:
        f, ps = features_of(c)
        stats.append({**{k: float(v) for k, v in f.stats.items()}, **ps})
    rows = directions(stats, [c.ratings for c in clips])
    print(f"SRCC of each statistic with the human ratings of {len(clips)} clips ({args.ratings})\n")
    print("| statistic | stream | assumed | static | temporal | alignment | verdict |\n|---|---|---|---|---|---|---|")
    for r in rows:
        assumed = {True: "higher better", False: "lower better", None: "—"}[r["assumed"]]
        print(f"| {r['statistic']} | {r['stream']} | {assumed} | {r['static']:.2f} | {r['temporal']:.2f} | "
              f"{r['alignment']:.2f} | {r['verdict']} |")
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "statistic_directions.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
