"""End-to-end speed of `rate` (latency per clip) and `batch` (videos/s) on CPU.

Targets (T2VQA-DB-like clips: 4 s, 512x512): score-only <= 1.5 s per clip and >= 1 clip/s
in batch; with explanation <= 10 s per clip.

    python eval/bench_rate.py                          # models/llmvqa-mini, else an untrained model
    python eval/bench_rate.py --model runs/mini/final --clips 4 --threads 2
    python eval/bench_rate.py --untrained --clips 2    # tiny CPU smoke run, no trained model needed

Writes eval/reports/bench_rate.json and bench_rate.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def make_clips(folder: Path, n: int, seconds: float, size: int, fps: float) -> list[Path]:
    """n real-photo clips (skimage images) panned and zoomed: uint8 frames written as H.264 mp4."""
    from skimage import data
    from skimage.transform import resize

    from llmvqa.video.writer import write_video

    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    paths = []
    frames_n = int(round(seconds * fps))
    for i in range(n):
        img = resize(photos[i % len(photos)], (size * 2, size * 2), anti_aliasing=True)
        img = (img * 255).astype(np.uint8)
        frames = []
        for t in range(frames_n):
            x, y = (3 + i) * t % size, (2 * t) % size
            frames.append(img[y : y + size, x : x + size])
        paths.append(write_video(folder / f"clip{i}.mp4", np.stack(frames), fps=fps))
    return paths


def load_assessor(model: str | None, untrained: bool, probe_clip: Path):
    from llmvqa.assessor import DEFAULT_MODEL_DIR, Assessor

    if not untrained and (model or (DEFAULT_MODEL_DIR / "config.json").is_file()):
        return Assessor.from_pretrained(model), str(model or DEFAULT_MODEL_DIR)
    from llmvqa.encoders.config import EncoderConfig
    from llmvqa.encoders.pipeline import FeatureExtractor
    from llmvqa.model.config import ModelConfig
    from llmvqa.model.modeling import QualityLLM

    enc = EncoderConfig()
    extractor = FeatureExtractor(enc)
    feats = extractor.extract(probe_clip)
    dims = {s: int(t.shape[1]) for s, t in feats.tokens.items()}  # projector input widths
    qmodel = QualityLLM.build(ModelConfig(stream_dims=dims), enc.to_dict())
    qmodel.eval()
    return Assessor(qmodel, extractor, name="untrained"), "untrained (default ModelConfig, fresh projectors/LoRA)"


def time_rate(assessor, clips: list[Path], **kwargs) -> dict:
    """Wall and process-CPU seconds per clip of a cold rate() (features re-extracted each time).

    CPU seconds / threads is what the wall time would be on otherwise idle cores; the wall time
    is inflated when other processes share the cores.
    """
    wall, cpu, stages = [], [], []
    for clip in clips:
        assessor.clear_features()
        t, c = time.perf_counter(), time.process_time()
        result = assessor.rate(clip, **kwargs)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        stages.append(result.timings)
    return {"mean_s": statistics.fmean(wall), "max_s": max(wall), "mean_cpu_s": statistics.fmean(cpu),
            "per_clip_s": wall, "stages": stages}


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

    tmpdir = tempfile.TemporaryDirectory()
    clips = make_clips(Path(tmpdir.name), args.clips, args.seconds, args.size, args.fps)
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
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    b = report["batch_score_only"]
    md = ["| measure | wall | CPU s / threads | target | met (wall) |", "|---|---|---|---|---|",
          *(f"| rate, {label} | {report[k]['mean_s']:.2f} s/clip | {report[k]['mean_cpu_s'] / args.threads:.2f} s/clip "
            f"| {target} | {met} |"
            for k, label, target, met in (
                ("score_only", "score only", "≤ 1.5 s", report["targets"]["score_only_le_1.5s"]),
                ("score_and_dimensions", "score + groups + dimensions", "—", "—"),
                ("with_explanation", "with explanation", "≤ 10 s", report["targets"]["explain_le_10s"]))),
          f"| batch, score only | {b['videos_per_s']:.2f} videos/s | {b['videos_per_s_from_cpu']:.2f} videos/s | ≥ 1/s "
          f"| {report['targets']['batch_ge_1_per_s']} |"]
    header = (f"Model: {model_desc}; {args.clips} clips of {report['clip']}; {args.threads} CPU threads; "
              f"model load {load_s:.1f} s; load average {report['load_average_start']:.1f} → "
              f"{report['load_average_end']:.1f} (wall times are inflated when it exceeds the thread count).\n\n")
    args.out.with_suffix(".md").write_text(header + "\n".join(md) + "\n", encoding="utf-8")
    print(header + "\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
