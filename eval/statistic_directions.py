"""Which way does each encoder statistic run on human-rated AI-generated video?

For every statistic of ``llmvqa.statistics`` (prompt alignment with each clip's own prompt), the SRCC
with the human static, temporal and alignment ratings of a rated folder (FETV layout), beside the
direction the registry assumes (``higher_is_better``). "against" marks a statistic whose assumed
direction people contradict (SRCC of the wrong sign with |SRCC| ≥ 0.2) — no target is built on such
a direction.

    python eval/statistic_directions.py --ratings ../shared/data/fetv_dev --model models/llmvqa-mini

The rows are ``llmvqa.evaluation.human.directions``; the table ``human_report.directions_markdown``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from llmvqa.evaluation.human import directions, rated_statistics
from llmvqa.evaluation.human_report import directions_markdown
from llmvqa.evaluation.report import save_report
from llmvqa.train.human import features_from_cache, load_rated


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratings", default="../shared/data/fetv_dev")
    ap.add_argument("--model", default="models/llmvqa-mini", help="checkpoint whose encoder settings to use")
    ap.add_argument("--cache", default="cache/features")
    ap.add_argument("--out", default=None, help="write statistic_directions.json here")
    args = ap.parse_args(argv)
    meta = json.loads((Path(args.model) / "config.json").read_text(encoding="utf-8"))
    clips = load_rated(args.ratings)
    stats = rated_statistics(clips, features_from_cache(meta.get("encoder"), args.cache))
    rows = directions(stats, [c.ratings for c in clips])
    print(directions_markdown(rows, len(clips), args.ratings), end="")
    if args.out:
        save_report(args.out, rows, name="statistic_directions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
