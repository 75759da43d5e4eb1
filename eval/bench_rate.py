"""End-to-end speed of `rate` (latency per clip) and of the one-process batch loop (videos/s) on CPU.

The batch row is ``run_batch`` (``--workers 0``) called in this process with the model already loaded; the
command users run — whole process, feature workers, start-up included — is timed by eval/bench_batch.py.

Targets (T2VQA-DB-like clips: 4 s, 512x512): score-only <= 1.5 s per clip and >= 1 clip/s
in batch; with explanation <= 10 s per clip.

    python eval/bench_rate.py                          # models/llmvqa-mini, else an untrained model
    python eval/bench_rate.py --model runs/mini/final --clips 4 --threads 2
    python eval/bench_rate.py --untrained --clips 2    # tiny CPU smoke run, no trained model needed

Writes eval/reports/bench_rate.json and bench_rate.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model directory (default: models/llmvqa-mini)")
    ap.add_argument("--untrained", action="store_true", help="benchmark a freshly built, untrained model")
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--fps", type=float, default=8.0)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (the target machine has 2 cores)")
    ap.add_argument("--explain-clips", type=int, default=2, help="clips timed with explanation (slow)")
    ap.add_argument("--out", type=Path, default=REPO / "eval" / "reports" / "bench_rate.json")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from llmvqa.commands.batch import Job, run_batch
    from llmvqa.evaluation.benchkit import load_assessor, photo_clips, time_rate, write_clips
    from llmvqa.evaluation.report import save_report

    tmpdir = tempfile.TemporaryDirectory()
    clips = write_clips(tmpdir.name, photo_clips(args.clips, seconds=args.seconds, size=args.size, fps=args.fps), args.fps)
    t = time.perf_counter()
    assessor, model_desc = load_assessor(args.model, args.untrained, clips[0])
    load_s = time.perf_counter() - t
    report: dict = {"model": model_desc, "load_s": load_s, "threads": args.threads, "clips": args.clips,
                    "clip": f"{args.seconds:g} s, {args.size}x{args.size}, {args.fps:g} fps",
                    "machine": platform.processor() or platform.machine(), "device": str(getattr(assessor.model, "device", "cpu")),
                    "load_average_start": os.getloadavg()[0]}
    with tmpdir as tmp:
        assessor.rate(clips[0], explain=False, dimensions=False)  # warm-up (lazy loads, allocator)
        modes = {
            "score_only": dict(explain=False, dimensions=False),
            "score_and_dimensions": dict(explain=False, dimensions=True),
        }
        modes["with_explanation"] = dict(explain=True, dimensions=False)
        for name, kwargs in modes.items():
            subset = clips[: args.explain_clips] if kwargs["explain"] else clips
            report[name] = r = time_rate(assessor, subset, **kwargs)
            print(f"{name}: {r['mean_s']:.2f} s/clip wall, {r['mean_cpu_s']:.2f} s CPU", file=sys.stderr)
        stage = assessor.rate(clips[0], explain=False, dimensions=False)
        report["features_s_warm_cache"] = stage.timings.get("features")
        assessor.clear_features()
        out_csv = Path(tmp) / "batch.csv"
        cpu0 = time.process_time()
        summary = run_batch(assessor, [Job(str(p), str(p)) for p in clips], out_csv, progress=False)
        cpu = time.process_time() - cpu0
        report["batch_score_only"] = {"videos": summary.done, "seconds": summary.seconds, "cpu_s": cpu,
                                      "videos_per_s": summary.done / summary.seconds,
                                      "videos_per_s_from_cpu": summary.done * args.threads / cpu,
                                      "failed": len(summary.failed)}
        print(f"batch: {summary.done / summary.seconds:.2f} videos/s", file=sys.stderr)
    report["load_average_end"] = os.getloadavg()[0]
    report["targets"] = {
        "score_only_le_1.5s": report["score_only"]["mean_s"] <= 1.5,
        "batch_ge_1_per_s": report["batch_score_only"]["videos_per_s"] >= 1.0,
        "explain_le_10s": report["with_explanation"]["mean_s"] <= 10.0,
    }
    b = report["batch_score_only"]
    md = ["| measure | wall | CPU s / threads | target | met (wall) |", "|---|---|---|---|---|",
          *(f"| rate, {label} | {report[k]['mean_s']:.2f} s/clip | {report[k]['mean_cpu_s'] / args.threads:.2f} s/clip "
            f"| {target} | {met} |"
            for k, label, target, met in (
                ("score_only", "score only", "≤ 1.5 s", report["targets"]["score_only_le_1.5s"]),
                ("score_and_dimensions", "score + groups + dimensions", "—", "—"),
                ("with_explanation", "with explanation", "≤ 10 s", report["targets"]["explain_le_10s"]))),
          f"| batch loop in this process (--workers 0, model loaded), score only | {b['videos_per_s']:.2f} videos/s | {b['videos_per_s_from_cpu']:.2f} videos/s | ≥ 1/s "
          f"| {report['targets']['batch_ge_1_per_s']} |"]
    header = (f"Model: {model_desc}; {args.clips} clips of {report['clip']}; {args.threads} CPU threads; "
              f"model load {load_s:.1f} s; load average {report['load_average_start']:.1f} → "
              f"{report['load_average_end']:.1f} (wall times are inflated when it exceeds the thread count).\n\n")
    save_report(args.out, report, markdown=header + "\n".join(md))
    print(header + "\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
