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
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_clips(folder: Path, n: int) -> None:
    """``n`` 4 s 512² clips cut from the bundled bikes footage (different windows)."""
    import numpy as np

    from llmvqa.assessor import resolve_video
    from llmvqa.video.loader import load_clip
    from llmvqa.video.writer import write_video

    src = load_clip(resolve_video("example:bikes"), nframes=64)
    frames = src.frames  # (64, H, W, 3)
    h, w = frames.shape[1:3]
    side = min(h, w)
    import cv2

    for i in range(n):
        start = (i * 7) % max(1, len(frames) - 32)
        window = frames[start:start + 32, :side, (i * 37) % max(1, w - side + 1):][:, :, :side]
        clip = np.stack([cv2.resize(f, (512, 512), interpolation=cv2.INTER_AREA) for f in window])
        write_video(folder / f"clip_{i:03d}.mp4", clip, fps=8.0)


def tree_rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` and every descendant, MiB (a snapshot)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, float] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(d.name))
            rss[int(d.name)] = int(fields[21]) * 4096 / 2**20  # resident pages
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0.0)
        todo += children.get(p, [])
    return total


def run_batch(folder: Path, out: Path, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "llmvqa.cli", "batch", str(folder), "--out", str(out), "--no-progress", *extra]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first = None
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, tree_rss_mib(proc.pid) if proc.poll() is None else 0.0)
        if first is None and out.is_file() and sum(1 for _ in out.open()) >= 2:
            first = time.perf_counter() - t0
        time.sleep(0.1)
    wall = time.perf_counter() - t0
    rows = list(csv.DictReader(out.open()))
    ok = sum(r["status"] == "ok" for r in rows)
    after_first = wall - (first or wall)
    return {"command": " ".join(["llmvqa", *cmd[3:]]), "returncode": proc.returncode, "clips": len(rows), "ok": ok,
            "wall_s": wall, "first_result_s": first, "clips_per_s_after_first": (ok - 1) / after_first if after_first > 0 else None,
            "peak_rss_mib": peak, "stderr_tail": proc.stderr.read().decode()[-300:]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--out", default=None)
    ap.add_argument("--ray", action="store_true", help="also time --engine ray (score only)")
    ap.add_argument("--replicas", type=int, default=2, help="model replicas of the Ray run (one CPU each)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        folder = Path(tmp) / "clips"
        folder.mkdir()
        write_clips(folder, args.clips)
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
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "report.json").write_text(json.dumps(runs, indent=2), encoding="utf-8")
        (Path(args.out) / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
