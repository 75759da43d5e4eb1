"""Time `llmvqa batch` the way users run it: a whole process over a folder of 4 s 512² clips.

    python eval/bench_batch.py --clips 8 --out eval/reports/batch

Writes ``--clips`` clips (real footage: 4 s windows of the bundled bikes clip at 512², 8 fps), then runs
``llmvqa batch FOLDER --out results.csv`` as a subprocess, score only, once with ``--no-dimensions`` and once
with the default (every group and dimension), and with ``--ray`` also ``--engine ray`` score only (a local Ray,
``--replicas`` model replicas of one CPU each). For each run: wall time of the process, time to the first
result row (start-up and model loading included), clips per second after the first row, peak RSS of the
process and all its descendants (Ray's workers too; summed, sampled from /proc every 0.1 s). Prints a table;
writes report.json.

    python eval/bench_batch.py --clips 16 --ray --replicas 2 --out eval/reports/batch
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path


def run_batch(folder: Path, out: Path, extra: list[str]) -> dict:
    """``llmvqa batch FOLDER --out OUT EXTRA...`` as a subprocess, timed (``benchkit.time_process``)."""
    from llmvqa.evaluation.benchkit import time_process

    cmd = [sys.executable, "-m", "llmvqa.cli", "batch", str(folder), "--out", str(out), "--no-progress", *extra]
    t = time_process(cmd, out)
    rows = list(csv.DictReader(out.open())) if out.is_file() else []
    ok = sum(r["status"] == "ok" for r in rows)
    after_first = t["wall_s"] - (t["first_row_s"] or t["wall_s"])
    return {"command": " ".join(["llmvqa", *cmd[3:]]), "returncode": t["returncode"], "clips": len(rows), "ok": ok,
            "wall_s": t["wall_s"], "first_result_s": t["first_row_s"],
            "clips_per_s_after_first": (ok - 1) / after_first if after_first > 0 else None,
            "peak_rss_mib": t["peak_rss_mib"], "stderr_tail": t["stderr_tail"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--out", default=None)
    ap.add_argument("--ray", action="store_true", help="also time --engine ray (score only)")
    ap.add_argument("--replicas", type=int, default=2, help="model replicas of the Ray run (one CPU each)")
    args = ap.parse_args(argv)

    from llmvqa.evaluation.benchkit import footage_clips, write_clips
    from llmvqa.evaluation.report import save_report

    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        folder = Path(tmp) / "clips"
        folder.mkdir()
        write_clips(folder, footage_clips(args.clips, size=512, length=32), 8.0, name="clip_{i:03d}")
        variants = [("score only, --no-dimensions", ["--no-dimensions"]), ("score + dimensions (default)", [])]
        if args.ray:
            variants.append((f"score only, --engine ray, {args.replicas} replicas × 1 CPU",
                             ["--no-dimensions", "--engine", "ray", "--replicas", str(args.replicas)]))
        runs = {name: run_batch(folder, Path(tmp) / f"run{i}.csv", extra) for i, (name, extra) in enumerate(variants)}
    lines = [f"`llmvqa batch` over {args.clips} clips of 4 s at 512² (bikes footage), whole process, 2 CPU threads", "",
             "| run | clips ok | wall s | first result s | clips/s after the first | peak RSS MiB (process tree) |", "|---|---|---|---|---|---|"]
    for name, r in runs.items():
        rate = r["clips_per_s_after_first"]
        lines.append(f"| {name} | {r['ok']}/{r['clips']} | {r['wall_s']:.1f} | {r['first_result_s'] or float('nan'):.1f} | "
                     f"{rate:.2f} | {r['peak_rss_mib']:.0f} |" if rate is not None else f"| {name} | {r['ok']} | {r['wall_s']:.1f} | — | — | — |")
    print("\n".join(lines))
    if args.out:
        save_report(args.out, runs, markdown="\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
