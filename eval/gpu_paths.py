"""Run the GPU training paths for real on a tiny random backbone and report each one.

    python eval/gpu_paths.py --out runs/gpu-paths                       # every mode this machine can run
    python eval/gpu_paths.py --modes bf16,zero2,qlora --hidden 256 --layers 4 --json report.json

Modes (each: the three stages through the real CLI, ``llmvqa train --stage all``):

    cpu     fp32 on the CPU, plain python (the reference; runs anywhere)
    bf16    one GPU, bf16 autocast, plain python
    zero2   DeepSpeed ZeRO-2 (configs/ds_zero2.json) through accelerate, under torchrun
    zero3   DeepSpeed ZeRO-3 (configs/ds_zero3.json), adapter and projectors gathered on save
    qlora   the backbone in bitsandbytes nf4 (model.load_in_4bit=true), LoRA + projectors in bf16

The data is generated here (llmvqa.train.smoke): a random Llama-style backbone of the given size
with a word tokenizer, three instruct records per clip and a feature cache in which each clip's
quality is written into its technical tokens, so a working loop must learn it. Per mode the report
gives ok / the error, the loss over the first and last steps of each stage, wall time, training
samples/s and peak CUDA memory per stage, the files of the final checkpoint, the Spearman
correlation between the reloaded final model's scores and the clips' quality (on the GPU where
there is one), the number of 4-bit layers in the reloaded model (bitsandbytes' Linear4bit plus PEFT's LoRA
wrappers of them, which share the class name), and a resume check (stage 3 and
stage 2's final folder removed, the run repeated with --resume: stage 1 skipped, stage 2 continued
from its mid-stage checkpoint with no step twice), and a scorer check (stage 3 keeps stage 2 as its
scorer, ``stage3.scorer_from: 2``: the reloaded final model's overall levels must be stage 2's, its
dimension levels its own, and explain must end in the scorer's level). Nothing here is timed for a target; it checks
that the paths work. Report of the H100 run: eval/reports/gpu_paths.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODES = ("cpu", "bf16", "zero2", "zero3", "qlora")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_workspace(root: Path, clips: int, hidden: int, layers: int) -> tuple[str, Path]:
    """Backbone folder, records and a feature cache under root; returns (backbone, data_dir)."""
    from llmvqa.encoders.cache import FeatureCache, content_hash
    from llmvqa.encoders.config import EncoderConfig
    from llmvqa.train import smoke

    records = smoke.make_records(clips)
    data = root / "data"
    (data / "videos").mkdir(parents=True, exist_ok=True)
    (data / "train.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    backbone = smoke.make_tiny_backbone(root / "backbone", smoke.corpus_texts(records), hidden=hidden,
                                        layers=layers, heads=max(2, hidden // 64))
    cache = FeatureCache(data / "cache")
    key = EncoderConfig().key()
    for i in range(clips):
        video = data / "videos" / f"v{i}.mp4"
        video.write_bytes(f"clip {i}".encode())  # the cache is keyed by the file's bytes; never decoded
        f = smoke.make_features(i, clips, smoke.SMALL_DIMS, frames=8)
        f.meta.update(content_hash=content_hash(video), encoder_key=key)
        cache.put(f)
    return backbone, data


def recipe(mode: str, backbone: str, data: Path, out: Path, steps: int, batch: int) -> dict:
    stage = {"batch_size": batch, "grad_accum": 2, "max_steps": steps, "warmup_ratio": 0.1,
             "save_every": max(1, steps // 2), "keep_checkpoints": 1}
    gpu = mode != "cpu"
    cfg = {
        "model": {"backbone": backbone, "num_query_tokens": 4, "lora_r": 8, "lora_alpha": 16,
                  "lora_targets": ["q_proj", "k_proj", "v_proj", "o_proj"],
                  "dtype": "bfloat16" if gpu else "float32", "load_in_4bit": mode == "qlora"},
        "data": {"train_files": [str(data / "train.jsonl")], "feature_cache": str(data / "cache"),
                 "video_root": str(data / "videos"), "compute_missing": False},
        "stage1": {**stage, "lr": 2e-3},
        "stage2": {**stage, "lr": 1e-3},
        "stage3": {**stage, "lr": 5e-4, "scorer_from": 2},
        "output_dir": str(out), "seed": 0, "device": "cuda" if gpu else "cpu",
        "precision": "bf16" if gpu else "fp32", "gradient_checkpointing": gpu, "log_every": 5,
    }
    if mode in ("zero2", "zero3"):
        cfg["deepspeed"] = str(REPO / "configs" / f"ds_{mode}.json")
    return cfg


def launch_command(mode: str, cfg_path: Path) -> list[str]:
    args = ["train", "--config", str(cfg_path), "--stage", "all", "--quiet"]
    if mode in ("zero2", "zero3"):  # a distributed launcher, as train.sh uses on several GPUs
        return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1",
                "--master_port", str(free_port()), "-m", "llmvqa.cli", *args]
    return [sys.executable, "-m", "llmvqa.cli", *args]


def spearman_of_final(final: Path, clips: int) -> tuple[float, int]:
    """Score every clip with the reloaded final checkpoint: (SRCC against the clips' quality,
    number of bitsandbytes 4-bit linear layers in the reloaded model)."""
    import torch
    from scipy.stats import spearmanr

    from llmvqa.model.modeling import QualityLLM
    from llmvqa.train import smoke

    model = QualityLLM.from_pretrained(final)
    if torch.cuda.is_available():
        model = model.to("cuda")
    model.eval()
    feats = [smoke.make_features(i, clips, smoke.SMALL_DIMS, frames=8) for i in range(clips)]
    scores = []
    for k in range(0, clips, 16):
        scores += [s.score for s in model.score_batch(feats[k:k + 16])]
    srcc = float(spearmanr(scores, [smoke.quality(i, clips) for i in range(clips)])[0])
    four_bit = sum(type(m).__name__ == "Linear4bit" for m in model.modules())  # bitsandbytes nf4 layers
    return round(srcc, 4), four_bit


def scorer_check(out: Path, clips: int) -> dict:
    """The final checkpoint holds stage 2 as its scorer: overall levels equal stage 2's, a dimension
    level equals the final model's own (loaded without the scorer), explain ends in the scorer's level."""
    import torch

    from llmvqa.model.modeling import QualityLLM
    from llmvqa.prompts import level_prefix
    from llmvqa.train import smoke

    final, stage2 = out / "stage3" / "final", out / "stage2" / "final"
    both, own, scorer = (QualityLLM.from_pretrained(d, scorer=s) for d, s in ((final, True), (final, False), (stage2, True)))
    feats = [smoke.make_features(i, clips, smoke.SMALL_DIMS, frames=8) for i in range(min(clips, 8))]

    def probs(scores):
        return torch.tensor([list(s.distribution.values()) for s in scores])

    dim = ("How is the flicker of this video ?", level_prefix("dimension", dimension="flicker"))
    overall_diff = float((probs(both.score_batch(feats)) - probs(scorer.score_batch(feats))).abs().max())
    own_diff = float((probs(both.score_batch(feats)) - probs(own.score_batch(feats))).abs().max())
    dim_diff = float((probs(both.score_batch(feats, question=dim[0], answer_prefix=dim[1]))
                      - probs(own.score_batch(feats, question=dim[0], answer_prefix=dim[1]))).abs().max())
    text, score = both.explain(feats[0], max_new_tokens=32)
    res = {"has_scorer": both.has_scorer, "overall_vs_stage2_max_diff": round(overall_diff, 5),
           "overall_vs_own_max_diff": round(own_diff, 5), "dimension_vs_own_max_diff": round(dim_diff, 5),
           "explain_ends_in_scorer_level": text.endswith(f"{level_prefix('overall')} {score.level}.")}
    res["ok"] = bool(res["has_scorer"] and overall_diff < 1e-2 and dim_diff < 1e-2 and own_diff > overall_diff
                     and res["explain_ends_in_scorer_level"])
    return res


def run_mode(mode: str, root: Path, backbone: str, data: Path, args) -> dict:
    import yaml

    out = root / f"run-{mode}"
    shutil.rmtree(out, ignore_errors=True)
    cfg_path = root / f"{mode}.yaml"
    cfg_path.write_text(yaml.safe_dump(recipe(mode, backbone, data, out, args.steps, args.batch)))
    cmd = launch_command(mode, cfg_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    (root / f"{mode}.log").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    res: dict = {"mode": mode, "command": " ".join(cmd[1:]), "exit": proc.returncode, "wall_seconds": round(wall, 1)}
    if proc.returncode != 0:
        err = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        res["ok"] = False
        res["error"] = "\n".join(err[-12:])
        return res
    stages = {}
    for n in (1, 2, 3):
        state = json.loads((out / f"stage{n}" / "final" / "trainer_state.json").read_text())
        hist = state["log_history"]
        k = max(1, len(hist) // 5)
        stages[n] = {"steps": state["global_step"],
                     "loss_first": round(sum(h["loss"] for h in hist[:k]) / k, 4),
                     "loss_last": round(sum(h["loss"] for h in hist[-k:]) / k, 4),
                     "samples_per_second": state.get("samples_per_second"),
                     "peak_cuda_mib": state.get("peak_cuda_mib")}
    final = out / "stage3" / "final"
    res["stages"] = stages
    res["final_files"] = sorted(str(p.relative_to(final)) for p in final.rglob("*") if p.is_file())
    ckpts = sorted(p.name for p in (out / "stage2").glob("checkpoint-*"))
    res["stage2_checkpoints"] = {c: sorted(p.name for p in (out / "stage2" / c).iterdir()) for c in ckpts}
    try:
        res["srcc_final_vs_quality"], res["linear4bit_modules"] = spearman_of_final(final, args.clips)
    except Exception as e:  # noqa: BLE001 - a reload failure is part of the report, not a crash
        res["reload_error"] = f"{e.__class__.__name__}: {str(e)[:300]}"
    try:
        res["scorer"] = scorer_check(out, args.clips)
    except Exception as e:  # noqa: BLE001 - part of the report
        res["scorer"] = {"ok": False, "error": f"{e.__class__.__name__}: {str(e)[:300]}"}
    if args.resume_check:
        res["resume"] = resume_check(out, cmd, env, root, mode)
    res["ok"] = ("reload_error" not in res and res.get("resume", {}).get("ok", True)
                 and res["scorer"].get("ok", False))
    return res


def resume_check(out: Path, cmd: list[str], env: dict, root: Path, mode: str) -> dict:
    """Drop stage 3 and stage 2's final folder, run again with --resume: stage 1 must be skipped and
    stage 2 must continue from its mid-stage checkpoint without repeating a step."""
    shutil.rmtree(out / "stage3")
    shutil.rmtree(out / "stage2" / "final")
    ckpt = sorted(int(p.name.split("-")[1]) for p in (out / "stage2").glob("checkpoint-*"))
    proc = subprocess.run([*cmd, "--resume"], cwd=REPO, env=env, capture_output=True, text=True)
    (root / f"{mode}-resume.log").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    res = {"exit": proc.returncode, "resumed_from_step": ckpt[-1] if ckpt else None}
    if proc.returncode != 0:
        return {**res, "ok": False, "error": proc.stderr.strip().splitlines()[-1:]}
    hist = json.loads((out / "stage2" / "final" / "trainer_state.json").read_text())["log_history"]
    steps = [h["step"] for h in hist]
    res.update(stage1_skipped="stage 1: already finished" in proc.stdout,
               stage2_resumed=f"resuming from {out / 'stage2' / f'checkpoint-{ckpt[-1]}'}" in proc.stdout if ckpt else False,
               stage2_steps_unique_and_complete=steps == list(range(1, len(steps) + 1)),
               stage3_done=(out / "stage3" / "final" / "trainer_state.json").is_file())
    res["ok"] = all(v for k, v in res.items() if k not in ("exit", "resumed_from_step"))
    return res


def versions() -> dict:
    import importlib.metadata as md

    import torch

    v = {"python": sys.version.split()[0], "torch": torch.__version__,
         "cuda": torch.version.cuda, "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    for pkg in ("transformers", "peft", "accelerate", "deepspeed", "bitsandbytes"):
        try:
            v[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            v[pkg] = None
    return v


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modes", default="", help=f"comma list of {', '.join(MODES)} (default: cpu, plus all GPU modes on a GPU)")
    ap.add_argument("--out", default="runs/gpu-paths", help="work folder (backbone, data, runs, logs)")
    ap.add_argument("--clips", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--steps", type=int, default=30, help="optimizer steps per stage")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--resume-check", action=argparse.BooleanOptionalAction, default=True,
                    help="after each mode, drop stage 3 and stage 2's final folder and resume (default: on)")
    ap.add_argument("--json", default="", help="also write the report here")
    args = ap.parse_args(argv)

    import torch

    modes = [m for m in args.modes.split(",") if m] or (list(MODES) if torch.cuda.is_available() else ["cpu"])
    bad = [m for m in modes if m not in MODES]
    if bad:
        ap.error(f"unknown mode(s) {bad}; choose from {', '.join(MODES)}")
    root = Path(args.out).resolve()
    root.mkdir(parents=True, exist_ok=True)
    backbone, data = build_workspace(root, args.clips, args.hidden, args.layers)
    report = {"versions": versions(), "backbone": {"hidden": args.hidden, "layers": args.layers},
              "clips": args.clips, "steps_per_stage": args.steps, "modes": []}
    for mode in modes:
        print(f"== {mode}", flush=True)
        res = run_mode(mode, root, backbone, data, args)
        report["modes"].append(res)
        print(json.dumps(res, indent=1), flush=True)
        if args.json:  # written after every mode: a later crash loses nothing
            Path(args.json).write_text(json.dumps(report, indent=1))
    print("\n| mode | ok | wall s | stage 1 loss | stage 2 loss | stage 3 loss | peak CUDA MiB | SRCC | 4-bit layers "
          "| resume | scorer |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in report["modes"]:
        st = r.get("stages", {})
        losses = [f"{st[n]['loss_first']}→{st[n]['loss_last']}" if n in st else "-" for n in (1, 2, 3)]
        peak = max((st[n]["peak_cuda_mib"] or 0) for n in st) if st else "-"
        resumed = r.get("resume", {})
        resumed = f"ok from step {resumed.get('resumed_from_step')}" if resumed.get("ok") else (resumed and "FAILED") or "-"
        print(f"| {r['mode']} | {r['ok']} | {r['wall_seconds']} | {' | '.join(losses)} | {peak} "
              f"| {r.get('srcc_final_vs_quality', '-')} | {r.get('linear4bit_modules', '-')} | {resumed} "
              f"| {'ok' if r.get('scorer', {}).get('ok') else 'FAILED'} |")
    print(json.dumps(report["versions"]))
    return 0 if all(r["ok"] for r in report["modes"]) else 1


if __name__ == "__main__":
    sys.exit(main())
