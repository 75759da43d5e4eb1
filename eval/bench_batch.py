"""Time `llmvqa batch` the way users run it: a whole process over a folder of 4 s 512² clips.

    python eval/bench_batch.py --clips 8 --out eval/reports/batch

Writes ``--clips`` clips (real footage: 4 s windows of the bundled bikes clip at 512², ``--fps`` 8), then runs
``llmvqa batch FOLDER --out results.csv`` as a subprocess, side by side in the same run: score only
(``--no-dimensions``) with the command as it was when the throughput issue was filed (``--baseline REV``, default
74d373c: one video at a time, features and model in series; that revision's code and shipped model, exported with
``git archive`` and run with this Python), in one process (``--workers 0``, the loop before feature workers) and with the default
feature workers; score + every group and dimension in one process and with one feature worker; and with
``--ray`` also ``--engine ray`` score only (a local Ray, ``--replicas`` model replicas of one CPU each). For each run: wall time of the process, time to the first
result row (start-up and model loading included), clips per second after the first row, peak RSS of the
process and all its descendants (Ray's workers too; summed, sampled from /proc every 0.1 s). Prints a table;
writes report.json.

    python eval/bench_batch.py --clips 16 --ray --replicas 2 --out eval/reports/batch
    python eval/bench_batch.py --from-report eval/reports/batch/report.json   # the saved table again
    python eval/bench_batch.py --baseline none      # without the old revision (e.g. a clone without history)
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# `llmvqa batch` when the throughput issue was filed: one video at a time in one process, features then model
ISSUE_LOOP_REV = "74d373c"
BASELINE = "score only, the command when the issue was filed"
LOOP = "score only, one process (--workers 0: the loop before feature workers)"
WORKERS = "score only, --no-dimensions (default: feature workers, batched scoring)"


def export_revision(rev: str, into: Path) -> Path | None:
    """The source tree of git revision ``rev`` of this repository, written under ``into`` (``git archive``);
    None, with the reason on stderr, when it cannot be had (no git, a clone without that commit)."""
    into.mkdir(parents=True, exist_ok=True)
    try:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(into)], input=archive, capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        reason = getattr(e, "stderr", b"") or str(e).encode()
        print(f"note: revision {rev} not timed: {reason.decode(errors='replace').strip()}", file=sys.stderr)
        return None
    return into


def run_batch(folder: Path, out: Path, extra: list[str], code: Path | None = None) -> dict:
    """``llmvqa batch FOLDER --out OUT EXTRA...`` as a subprocess, timed (``benchkit.time_process``); with
    ``code``, that source tree's llmvqa (run from it, so its own shipped model is the default)."""
    from llmvqa.evaluation.benchkit import time_process

    cmd = [sys.executable, "-m", "llmvqa.cli", "batch", str(folder), "--out", str(out), "--no-progress", *extra]
    env = None if code is None else {**os.environ, "PYTHONPATH": str(code)}
    t = time_process(cmd, out, cwd=code, env=env)
    rows = list(csv.DictReader(out.open())) if out.is_file() else []
    return {"command": " ".join(["llmvqa", *cmd[3:]]), "returncode": t["returncode"], "clips": len(rows),
            "ok": sum(r["status"] == "ok" for r in rows), "wall_s": t["wall_s"], "first_result_s": t["first_row_s"],
            "row_times": t["row_times"], "peak_rss_mib": t["peak_rss_mib"], "stderr_tail": t["stderr_tail"]}


def render(runs: dict, clips: int) -> str:
    """The table and the score-only comparison; rates from each run's row times (``benchkit.after_first_rate`` /
    ``steady_rate``), so rows that arrive in bursts (Ray: a batch at a time) count when they arrive."""
    from llmvqa.evaluation.benchkit import after_first_rate, steady_rate

    for r in runs.values():
        r["clips_per_s_after_first"] = after_first_rate(r["row_times"])
        r["clips_per_s_second_half"] = steady_rate(r["row_times"])

    def num(v, fmt):
        return "—" if v is None else format(v, fmt)

    run = next(iter(runs.values()))  # reports before --fps: 8 fps on 2 CPUs
    lines = [f"`llmvqa batch` over {clips} clips of 4 s at 512², {run.get('fps', 8)} fps (bikes footage), whole "
             f"process, {run.get('cpus', 2)} CPUs", "",
             "| run | clips ok | wall s | first result s | clips/s after the first | clips/s, second half of the rows | "
             "peak RSS MiB (process tree) |", "|---|---|---|---|---|---|---|"]
    for name, r in runs.items():
        lines.append(f"| {name} | {r['ok']}/{r['clips']} | {r['wall_s']:.1f} | {num(r['first_result_s'], '.1f')} | "
                     f"{num(r['clips_per_s_after_first'], '.2f')} | {num(r['clips_per_s_second_half'], '.2f')} | "
                     f"{r['peak_rss_mib']:.0f} |")
    names = list(runs)
    baseline = runs[names[0]] if names[0].startswith(BASELINE) else None
    loop, workers = runs[LOOP], runs[WORKERS]
    lines.append("")
    for key, what in (("clips_per_s_after_first", "after the first result"),
                      ("clips_per_s_second_half", "over the second half of the rows")):
        if workers[key] and baseline and baseline[key]:
            lines.append(f"score only, {what}: feature workers {workers[key]:.2f} clips/s, the command when the issue "
                         f"was filed {baseline[key]:.2f} (×{workers[key] / baseline[key]:.2f})")
        if workers[key] and loop[key]:
            lines.append(f"score only, {what}: feature workers {workers[key]:.2f} clips/s, today's one-process loop "
                         f"(--workers 0) {loop[key]:.2f} (×{workers[key] / loop[key]:.2f})")
    lines.append(f"first result: {num(workers['first_result_s'], '.1f')} s with feature workers, "
                 f"{num(loop['first_result_s'], '.1f')} s in one process; targets: ≥ 3 clips/s, ≥ ×2, first result < 8 s")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--out", default=None)
    ap.add_argument("--fps", type=int, default=8, help="frame rate of the 4 s clips (default %(default)s; T2V models "
                                                       "write 8 to 30)")
    ap.add_argument("--score-only", action="store_true", help="time only the score-only runs")
    ap.add_argument("--ray", action="store_true", help="also time --engine ray (score only)")
    ap.add_argument("--replicas", type=int, default=2, help="model replicas of the Ray run (one CPU each)")
    ap.add_argument("--baseline", default=ISSUE_LOOP_REV, metavar="REV",
                    help="also time this git revision's `llmvqa batch --no-dimensions` (default %(default)s: the "
                         "command when the throughput issue was filed); none: skip it")
    ap.add_argument("--from-report", default=None, help="print a saved report.json's table again (no run)")
    args = ap.parse_args(argv)

    from llmvqa.evaluation.report import print_report

    if args.from_report:
        import json

        runs = json.loads(Path(args.from_report).read_text())
        print(render(runs, max(r["clips"] for r in runs.values())))
        return 0
    from llmvqa.evaluation.benchkit import footage_clips, write_clips

    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        folder = Path(tmp) / "clips"
        folder.mkdir()
        frames = 4 * args.fps
        write_clips(folder, footage_clips(args.clips, size=512, length=frames, pool=max(64, 2 * frames)), args.fps,
                    name="clip_{i:03d}")
        code = None if args.baseline == "none" else export_revision(args.baseline, Path(tmp) / "baseline")
        variants = [(f"{BASELINE} ({args.baseline}, one video at a time)", ["--no-dimensions"], code)] if code else []
        variants += [(LOOP, ["--no-dimensions", "--workers", "0"], None), (WORKERS, ["--no-dimensions"], None),
                     ("score + dimensions, one process (--workers 0)", ["--workers", "0"], None),
                     ("score + dimensions, 1 feature worker (--workers 1)", ["--workers", "1"], None)]
        if args.score_only:
            variants = [v for v in variants if v[0].startswith("score only")]
        if args.ray:
            variants.append((f"score only, --engine ray, {args.replicas} replicas × 1 CPU",
                             ["--no-dimensions", "--engine", "ray", "--replicas", str(args.replicas)], None))
        runs = {name: run_batch(folder, Path(tmp) / f"run{i}.csv", extra, code)
                for i, (name, extra, code) in enumerate(variants)}
    for r in runs.values():
        r.update(fps=args.fps, cpus=os.cpu_count())
    print_report(render(runs, args.clips), args.out, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
