"""Benchmark the feature pipeline: seconds per stage and peak memory.

Run: ``python eval/bench_encoders.py [--repeats 3] [--json out.json]``

Generates, in a temporary folder, two H.264 clips of a real photo (skimage astronaut)
panned across the frame: 4 s 512x512 at 8 fps (the shape of T2VQA-DB videos) and
10 s 1920x1080 at 24 fps. For each it prints the seconds of probe, decode, technical,
motion and semantic (first run = cold, then the median of the warm runs), the model
load time once, and the peak RSS of the process. The clips are written by a child
process so their frames do not count towards the peak RSS.

Targets: the three encoders together <= 1.0 s on the 512x512 clip (warm), peak RSS <= 2 GiB.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
from pathlib import Path

from llmvqa.evaluation.benchkit import ENCODERS, peak_rss_mib, time_stages, write_photo_clip

STAGES = ("probe", "decode", "technical", "motion", "semantic")
CLIPS = {
    # name: (width, height, seconds, fps)
    "t2vqa_512x512_4s_8fps": (512, 512, 4.0, 8.0),
    "fullhd_1920x1080_10s_24fps": (1920, 1080, 10.0, 24.0),
}
TARGET_ENCODERS_S = 1.0
TARGET_RSS_GIB = 2.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per clip (the first is the cold run)")
    parser.add_argument("--nframes", type=int, default=16, help="frames sampled per video")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--clips", nargs="+", choices=sorted(CLIPS), default=list(CLIPS), help="which clips to time")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench_encoders_") as tmp:
        paths = {}
        ctx = mp.get_context("spawn")
        for name in args.clips:
            w, h, secs, fps = CLIPS[name]
            paths[name] = Path(tmp) / f"{name}.mp4"
            proc = ctx.Process(target=write_photo_clip, args=(str(paths[name]), w, h, secs, fps))
            proc.start()
            proc.join()
            if proc.exitcode != 0:
                print(f"could not write {name}", file=sys.stderr)
                return 1

        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        from llmvqa.encoders.config import EncoderConfig
        from llmvqa.encoders.pipeline import FeatureExtractor

        rss_before = peak_rss_mib() / 1024
        extractor = FeatureExtractor(EncoderConfig(nframes=args.nframes), device=args.device)
        results: dict = {
            "torch_threads": torch.get_num_threads(),
            "nframes": args.nframes,
            "model_load_s": extractor.load_seconds,
            "shared_backbone": extractor.shared_backbone,
            "rss_after_imports_gib": rss_before,
            "clips": {},
        }
        for name, path in paths.items():
            runs = [time_stages(extractor, path) for _ in range(max(1, args.repeats))]
            warm = runs[1:] or runs
            results["clips"][name] = {
                "file_mb": path.stat().st_size / 1e6,
                "cold": runs[0],
                "warm_median": {k: statistics.median(r[k] for r in warm) for k in runs[0]},
            }
        results["peak_rss_gib"] = peak_rss_mib() / 1024
        results["load_average_1min"] = os.getloadavg()[0]
        results["cpu_count"] = os.cpu_count()

    print(report(results))
    if args.json:
        from llmvqa.evaluation.report import save_report

        save_report(args.json, results)
    return 0


def report(results: dict) -> str:
    lines = [
        f"model load: {results['model_load_s']:.2f} s (shared backbone: {results['shared_backbone']}); "
        f"torch threads: {results['torch_threads']}; nframes: {results['nframes']}; "
        f"load average {results['load_average_1min']:.1f} on {results['cpu_count']} cores "
        "(wall times stretch when the machine is busy; CPU seconds do not)",
        "",
        "wall seconds per stage, then CPU seconds (all threads) per encoder:",
        "",
        "| clip | run | " + " | ".join(STAGES) + " | encoders | " + " | ".join(f"{k} cpu" for k in ENCODERS) + " |",
        "|---|---|" + "---:|" * (len(STAGES) + 1 + len(ENCODERS)),
    ]
    for name, r in results["clips"].items():
        for run in ("cold", "warm_median"):
            t = r[run]
            enc = sum(t[k] for k in ENCODERS)
            cpu = " | ".join(f"{t[k + '_cpu']:.3f}" for k in ENCODERS)
            lines.append(f"| {name} | {run} | " + " | ".join(f"{t[k]:.3f}" for k in STAGES) + f" | {enc:.3f} | {cpu} |")
    rss = results["peak_rss_gib"]
    lines += ["", f"peak RSS: {rss:.2f} GiB"]
    if "t2vqa_512x512_4s_8fps" in results["clips"]:
        t2v = results["clips"]["t2vqa_512x512_4s_8fps"]["warm_median"]
        enc = sum(t2v[k] for k in ENCODERS)
        verdict = "PASS" if enc <= TARGET_ENCODERS_S else "FAIL"
        lines.append(f"target encoders <= {TARGET_ENCODERS_S} s on 512x512 (warm): {enc:.3f} s -> {verdict}")
    lines.append(
        f"target peak RSS <= {TARGET_RSS_GIB} GiB: {rss:.2f} GiB -> " + ("PASS" if rss <= TARGET_RSS_GIB else "FAIL")
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
