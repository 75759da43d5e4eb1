"""Training throughput (samples/s) and peak memory of a recipe's stages, on cached or synthetic features.

    python eval/bench_train.py                       # configs/mini.yaml, 2 threads, 4 timed steps per stage
    python eval/bench_train.py --steps 8 --threads 2 --json eval/reports/bench_train.json

Records: the instruct JSONL files of the recipe when present (else instruct_data/sample_*.jsonl);
features: synthetic VideoFeatures of the real stream widths (encoders are frozen and cached in
training, so the benchmark measures the projector + LLM step only). The first step of each stage
is a warm-up and is not timed. Peak memory = the process's maximum resident set size (CPU) or
torch.cuda.max_memory_allocated (GPU).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(REPO / "configs" / "mini.yaml"))
    ap.add_argument("--steps", type=int, default=4, help="timed optimizer steps per stage (after 1 warm-up step)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--stages", default="1,2,3")
    ap.add_argument("--override", nargs="*", default=[])
    ap.add_argument("--json", default="", help="also write the results here")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from llmvqa.evaluation.benchkit import peak_rss_mib, synthetic_features
    from llmvqa.evaluation.report import save_report
    from llmvqa.train.config import load_config
    from llmvqa.train.trainer import Trainer

    os.chdir(REPO)
    cfg = load_config(args.config, args.override)
    files = [f for pat in cfg.data.train_files for f in glob.glob(pat)] or glob.glob("instruct_data/sample_*.jsonl")
    cfg.data.train_files = files
    cfg.data.split = ""
    out = tempfile.mkdtemp(prefix="bench_train_")
    cfg.output_dir = out
    stages = [int(s) for s in args.stages.split(",")]
    for n in stages:
        st = cfg.stage(n)
        st.max_steps, st.save_every, st.max_samples = args.steps + 1, 0, 0
    dims = {"technical": 1280, "motion": 64, "semantic": 1280}
    cache: dict[str, object] = {}

    def features(record):
        if record["video"] not in cache:
            cache[record["video"]] = synthetic_features(dims, seed=len(cache))
        return cache[record["video"]]

    trainer = Trainer(cfg, features=features, progress=False)
    results = {"config": args.config, "backbone": cfg.model.backbone, "threads": args.threads,
               "records_from": files, "stages": {}}
    for n in stages:
        t0 = time.perf_counter()
        trainer.train_stage(n)
        wall = time.perf_counter() - t0
        times = trainer.step_times[n]  # (wall, CPU) seconds at the end of each step
        st = cfg.stage(n)
        timed = times[-1][0] - times[0][0]
        cpu = times[-1][1] - times[0][1]
        samples = args.steps * st.batch_size * st.grad_accum
        results["stages"][n] = {
            "trainable": st.trainable, "batch_size": st.batch_size, "grad_accum": st.grad_accum,
            "timed_steps": args.steps, "samples_per_second": round(samples / timed, 3),
            "seconds_per_step": round(timed / args.steps, 3),
            # CPU seconds per sample: less sensitive to other processes on a shared machine;
            # samples/s on otherwise idle cores ≈ threads / cpu_seconds_per_sample
            "cpu_seconds_per_sample": round(cpu / samples, 3),
            "stage_wall_seconds_incl_load_and_save": round(wall, 1),
        }
    results["peak_rss_mib"] = round(peak_rss_mib(), 1)
    if torch.cuda.is_available():
        results["peak_cuda_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    print(json.dumps(results, indent=1))
    print("\n| stage | trainable | batch | samples/s | s/step | CPU s/sample |\n|---|---|---|---|---|---|")
    for n, r in results["stages"].items():
        print(f"| {n} | {r['trainable']} | {r['batch_size']}×{r['grad_accum']} | {r['samples_per_second']} "
              f"| {r['seconds_per_step']} | {r['cpu_seconds_per_sample']} |")
    print(f"\npeak RSS: {results['peak_rss_mib']} MiB")
    if args.json:
        save_report(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
