"""Progressive training loop (Score2Instruct): stage 1 projectors → stage 2 LoRA + score loss → stage 3 full mix.

One loop for CPU, one GPU and many (accelerate's Accelerator, with a DeepSpeedPlugin when
``deepspeed`` names a JSON). Run directory layout::

    <output_dir>/stage<N>/checkpoint-<step>/   resumable: trainable.safetensors, optimizer.pt, scheduler.pt,
                                               rng.pt (or ds/ under DeepSpeed), trainer_state.json, config.yaml
    <output_dir>/stage<N>/final/               QualityLLM.save_pretrained + trainer_state.json + config.yaml

Each stage starts from the previous stage's ``final/``. ``resume=True`` skips finished stages
and continues an unfinished one from its last checkpoint at the saved step (the data order
is a function of seed and epoch, and the RNG state is restored, so nothing repeats).
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmvqa.errors import ConfigError, DataError, ModelError
from llmvqa.train.config import StageConfig, TrainConfig
from llmvqa.train.data import BatchPlan, CachedFeatures, FeatureSource, read_records, stage_records
from llmvqa.train.losses import score_loss, score_targets

STATE_FILE = "trainer_state.json"
"""Written last into a checkpoint: its presence marks the checkpoint complete."""


# ---------------------------------------------------------------- helpers


def to_device(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


def param_kind(name: str) -> str:
    """"lora", "projectors" or "llm" for a QualityLLM parameter name."""
    if "lora_" in name:
        return "lora"
    parts = name.split(".")
    if parts and parts[0] in LLM_ATTRS:
        return "llm"
    return "projectors"


LLM_ATTRS = ("llm", "lm", "language_model", "backbone", "base_model")
"""Top-level QualityLLM attributes that hold the (frozen) language model."""


def set_trainable(model: torch.nn.Module, trainable: str) -> list[str]:
    """Give gradients to the stage's parts only; returns the trainable parameter names."""
    want = set(trainable.split("+"))
    names = []
    for name, p in model.named_parameters():
        on = param_kind(name) in want and p.is_floating_point()
        p.requires_grad_(on)
        if on:
            names.append(name)
    if not names:
        raise ModelError("trainer", f"no parameters match trainable={trainable!r}",
                         "check that the model has projectors / LoRA adapters (model.use_lora)")
    return names


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_precision(cfg: TrainConfig) -> str:
    """"fp32", "bf16" or "fp16" for this machine."""
    if cfg.precision != "auto":
        return cfg.precision
    if use_cuda(cfg) and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


def use_cuda(cfg: TrainConfig) -> bool:
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", "is 'cuda' but no CUDA GPU is visible", "set device: auto or cpu")
    return cfg.device != "cpu" and torch.cuda.is_available()


def latest_checkpoint(stage_dir: Path) -> Path | None:
    """The complete checkpoint-<step> with the highest step, if any."""
    best = None
    for d in stage_dir.glob("checkpoint-*"):
        if (d / STATE_FILE).is_file() and d.name.split("-")[-1].isdigit():
            if best is None or int(d.name.split("-")[-1]) > int(best.name.split("-")[-1]):
                best = d
    return best


# ---------------------------------------------------------------- DeepSpeed


def _hidden_size(model: torch.nn.Module) -> int | None:
    for m in model.modules():
        size = getattr(getattr(m, "config", None), "hidden_size", None)
        if isinstance(size, int):
            return size
    return None


def resolve_deepspeed_config(path: str | Path, stage: StageConfig, precision: str, world: int,
                             hidden_size: int | None = None) -> dict[str, Any]:
    """The DeepSpeed JSON with its HF-style "auto" fields filled from the stage and precision."""
    try:
        ds = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(str(path), f"cannot read the DeepSpeed config ({err})", "fix the JSON") from None
    if "optimizer" in ds or "scheduler" in ds:
        raise ConfigError(str(path), "has an optimizer/scheduler section", "remove it: the trainer builds AdamW + warmup-cosine per stage")
    fill = {
        "train_micro_batch_size_per_gpu": stage.batch_size,
        "gradient_accumulation_steps": stage.grad_accum,
        "train_batch_size": stage.batch_size * stage.grad_accum * world,
        "gradient_clipping": stage.max_grad_norm,
    }
    for key, value in fill.items():
        if ds.get(key, "auto") == "auto":
            ds[key] = value
    for key, on in (("bf16", precision == "bf16"), ("fp16", precision == "fp16")):
        if isinstance(ds.get(key), dict) and ds[key].get("enabled") == "auto":
            ds[key]["enabled"] = on
    zero = ds.get("zero_optimization", {})
    if hidden_size:
        sizes = {"reduce_bucket_size": hidden_size * hidden_size,
                 "stage3_prefetch_bucket_size": int(0.9 * hidden_size * hidden_size),
                 "stage3_param_persistence_threshold": 10 * hidden_size}
        for key, value in sizes.items():
            if zero.get(key) == "auto":
                zero[key] = value
    return ds


def deepspeed_plugin(path: str | Path, stage: StageConfig, precision: str, world: int = 1,
                     hidden_size: int | None = None):
    """accelerate DeepSpeedPlugin built from a ZeRO JSON (does not launch anything)."""
    import importlib.util

    from accelerate.utils import DeepSpeedPlugin

    if importlib.util.find_spec("deepspeed") is None:
        raise ConfigError(str(path), "the recipe trains with DeepSpeed, which is not installed",
                          "DS_BUILD_OPS=0 pip install --no-build-isolation 'llmvqa[deepspeed]' (or remove `deepspeed:`)")
    ds = resolve_deepspeed_config(path, stage, precision, world, hidden_size)
    return DeepSpeedPlugin(hf_ds_config=ds, gradient_accumulation_steps=stage.grad_accum,
                           gradient_clipping=stage.max_grad_norm or None)


# ---------------------------------------------------------------- trainer


class Trainer:
    """Runs the stages of a TrainConfig. ``features`` overrides the FeatureCache lookup (tests, benchmarks)."""

    def __init__(self, cfg: TrainConfig, features: FeatureSource | None = None, progress: bool = True):
        self.cfg = cfg
        self.features = features
        self.progress = progress
        self.out = Path(cfg.output_dir)
        self._records: list[dict[str, Any]] | None = None
        self.history: dict[int, list[dict[str, float]]] = {}
        self.step_times: dict[int, list[tuple[float, float]]] = {}
        """(wall, process CPU) seconds since the stage's loop started, at the end of each step trained here."""

    # -- pieces a test or a new model family can replace

    def records(self) -> list[dict[str, Any]]:
        if self._records is None:
            self._records = read_records(self.cfg.data)
        return self._records

    def feature_source(self) -> FeatureSource:
        if self.features is None:
            self.features = CachedFeatures(self.cfg.data)
            if self.cfg.data.semantic_from_backbone:
                from llmvqa.model.qwen_vl import QwenSemanticFeatures

                device = "cuda" if use_cuda(self.cfg) else "cpu"
                self.features = QwenSemanticFeatures(self.features, self.cfg.model.get("backbone", ""), device=device)
        return self.features

    def model_config(self, sample_features) -> Any:
        from llmvqa.model.config import ModelConfig

        raw = dict(self.cfg.model)
        if not raw.get("stream_dims"):
            raw["stream_dims"] = {s: int(t.shape[-1]) for s, t in sample_features.tokens.items()}
        return ModelConfig.from_dict(raw)

    def build_model(self, stage_n: int, init_dir: Path | None, sample_features) -> torch.nn.Module:
        from llmvqa.model.modeling import QualityLLM

        device = None if use_cuda(self.cfg) else "cpu"  # device: cpu keeps the model off a visible GPU
        if init_dir is None:
            return QualityLLM.build(self.model_config(sample_features), self.encoder_dict(), device=device)
        # a scorer of the previous stage is not carried on: this stage's scorer_from decides
        return QualityLLM.from_pretrained(init_dir, is_trainable=True, device=device, scorer=False)

    def encoder_dict(self) -> dict | None:
        """The encoder settings the features came from (recorded in the checkpoint)."""
        enc = getattr(self.features, "encoder_config", None)
        if enc is None:
            return None
        out = enc.to_dict()
        if self.cfg.data.semantic_from_backbone:  # the semantic stream is the VL backbone's vision tower
            out["semantic_tokens"] = str(self.cfg.model.get("backbone", ""))
        return out

    def make_collator(self, model: torch.nn.Module):
        return model.collator

    def save_model(self, model: torch.nn.Module, path: Path) -> None:
        model.save_pretrained(path)

    def _item(self, record: dict[str, Any]) -> tuple:
        """(record, features, prompt_stats) as the Collator takes it."""
        feats = self.feature_source()(record)
        prompt_stats = getattr(self.features, "prompt_stats", None)
        return record, feats, (prompt_stats(record, feats) if prompt_stats else None)

    # -- directories

    def stage_dir(self, n: int) -> Path:
        return self.out / f"stage{n}"

    def final_dir(self, n: int) -> Path:
        return self.stage_dir(n) / "final"

    def is_done(self, n: int) -> bool:
        return (self.final_dir(n) / STATE_FILE).is_file()

    # -- entry points

    def run(self, stages: Iterable[int] = (1, 2, 3), resume: bool = False) -> Path:
        """Train the given stages in order; returns the last stage's final checkpoint."""
        last = None
        for n in stages:
            last = self.train_stage(n, resume=resume)
        if last is None:
            raise ConfigError("stages", "no stage to run", "pass --stage 1, 2, 3 or all")
        return last

    def train_stage(self, n: int, resume: bool = False, stop_after: int | None = None) -> Path:
        """Train stage n (from stage n−1's final checkpoint). stop_after: leave after that many steps (tests)."""
        stage = self.cfg.stage(n)
        final = self.final_dir(n)
        if resume and self.is_done(n):
            self._say(f"stage {n}: already finished at {final}")
            return final
        init_dir = None
        if n > 1:
            init_dir = self.final_dir(n - 1)
            if not self.is_done(n - 1):
                raise ConfigError(str(init_dir), f"stage {n} starts from stage {n - 1}'s checkpoint, which is missing",
                                  f"run stage {n - 1} first (llmvqa train --stage {n - 1}) or --stage all")
        if stage.scorer_from and not self.is_done(stage.scorer_from):
            raise ConfigError(str(self.final_dir(stage.scorer_from)),
                              f"stage{n}.scorer_from={stage.scorer_from} needs that stage's final checkpoint, which is missing",
                              f"run stage {stage.scorer_from} first, or set stage{n}.scorer_from to 0")
        from accelerate import Accelerator, PartialState
        from accelerate.state import AcceleratorState, GradientState

        seed_everything(self.cfg.seed + n)
        precision = resolve_precision(self.cfg)
        cpu = not use_cuda(self.cfg)
        records = stage_records(self.records(), stage, self.cfg.seed)
        if not records:
            raise DataError(", ".join(self.cfg.data.train_files), f"no records for stage {n} (tasks {stage.tasks})",
                            "check the stage's tasks / max_answer_words and data.split")
        if not resume and self.stage_dir(n).exists() and PartialState(cpu=cpu).is_main_process:
            shutil.rmtree(self.stage_dir(n))  # a fresh start: no stale checkpoint can be resumed later
        # a fresh accelerate state per stage: grad-accum and DeepSpeed settings differ between stages.
        # Reset before the model is built: the previous stage's ZeRO-3 plugin would otherwise still be
        # registered with transformers, which then loads this stage's backbone partitioned (zero.Init)
        # while stage 1 loaded it whole; the stages must build their models the same way.
        AcceleratorState._reset_state(reset_partial_state=False)
        GradientState._reset_state()
        _unset_hf_deepspeed_config()
        feats = self.feature_source()
        sample = feats(records[0])
        model = self.build_model(n, init_dir, sample)
        names = set(set_trainable(model, stage.trainable))
        if self.cfg.gradient_checkpointing:
            self._enable_checkpointing(model)
        collator = self.make_collator(model)

        plugin = None
        if self.cfg.deepspeed:
            world = PartialState(cpu=cpu).num_processes
            plugin = deepspeed_plugin(self.cfg.deepspeed, stage, precision, world, _hidden_size(model))
        acc = Accelerator(cpu=cpu, mixed_precision={"fp32": "no"}.get(precision, precision),
                          gradient_accumulation_steps=stage.grad_accum, deepspeed_plugin=plugin)
        plan = BatchPlan(len(records), stage.batch_size, grad_accum=stage.grad_accum, seed=self.cfg.seed + n,
                         rank=acc.process_index, world=acc.num_processes, drop_last=stage.uses_score_loss)
        total = plan.total_steps(stage)

        from transformers import get_cosine_schedule_with_warmup

        params = [p for name, p in model.named_parameters() if name in names]
        optim = torch.optim.AdamW(params, lr=stage.lr, weight_decay=stage.weight_decay)
        sched = get_cosine_schedule_with_warmup(optim, math.ceil(stage.warmup_ratio * total), total)
        is_ds = plugin is not None
        if is_ds:
            model, optim, sched = acc.prepare(model, optim, sched)
        else:
            model, optim = acc.prepare(model, optim)

        step, history = 0, []
        ckpt = latest_checkpoint(self.stage_dir(n)) if resume else None
        if ckpt is not None:
            step, history = self._load_checkpoint(ckpt, acc, model, optim, sched, is_ds)
            self._say(f"stage {n}: resuming from {ckpt} at step {step}/{total}")
        writer = self._tensorboard(acc, n)
        self._save_yaml_once(acc)

        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=step, desc=f"stage {n}", disable=not (self.progress and acc.is_main_process))
        model.train()
        t0, c0, samples = time.perf_counter(), time.process_time(), 0
        self.step_times[n] = times = []
        end = total if stop_after is None else min(total, step + stop_after)
        while step < end:
            sums = {"loss": 0.0, "ce": 0.0, "score": 0.0}
            for a in range(stage.grad_accum):
                epoch, idx = plan.micro_batch(step * stage.grad_accum + a)
                batch = to_device(collator([self._item(records[i]) for i in idx]), acc.device)
                with acc.accumulate(model):
                    out = model(batch)
                    ce = out["loss"] if out["loss"] is not None else out["level_logits"].sum() * 0.0
                    loss = stage.ce_weight * ce
                    s_loss = None
                    if stage.uses_score_loss:
                        target = score_targets(batch["target_score"], batch["level_pos"],
                                               [records[i].get("task") for i in idx], stage.score_tasks)
                        s_loss = score_loss(out["level_logits"], target, stage.plcc_weight, stage.rank_weight)
                        if s_loss is not None:
                            loss = loss + s_loss
                    acc.backward(loss)
                    if acc.sync_gradients and stage.max_grad_norm > 0 and not is_ds:
                        acc.clip_grad_norm_(params, stage.max_grad_norm)
                    optim.step()
                    optim.zero_grad(set_to_none=True)
                sums["loss"] += float(loss.detach()) / stage.grad_accum
                sums["ce"] += float(ce.detach()) / stage.grad_accum
                sums["score"] += float(s_loss.detach()) / stage.grad_accum if s_loss is not None else 0.0
                samples += len(idx)
            sched.step()
            step += 1
            times.append((time.perf_counter() - t0, time.process_time() - c0))
            entry = {"step": step, "epoch": round(plan.epoch_of_step(step), 4), "lr": sched.get_last_lr()[0], **sums}
            history.append(entry)
            bar.update(1)
            bar.set_postfix(loss=f"{sums['loss']:.4f}")
            if writer is not None:
                for k in ("loss", "ce", "score", "lr"):
                    writer.add_scalar(f"stage{n}/{k}", entry[k], step)
            if step % self.cfg.log_every == 0 and acc.is_main_process and not self.progress:
                print(f"stage {n} step {step}/{total} loss {sums['loss']:.4f} lr {entry['lr']:.2e}", flush=True)
            if stage.save_every and step % stage.save_every == 0 and step < total:
                self._save_checkpoint(n, step, total, history, acc, model, optim, sched, is_ds)
        bar.close()
        elapsed = time.perf_counter() - t0
        self.history[n] = history
        if writer is not None:
            writer.close()
        if step < total:  # stopped early on purpose: leave a resumable checkpoint
            return self._save_checkpoint(n, step, total, history, acc, model, optim, sched, is_ds)
        self._save_final(n, step, total, history, acc, model, elapsed, samples)
        return final

    # -- internals

    def _say(self, msg: str) -> None:
        """Status lines (resume, skipped stage): printed with or without progress bars, by rank 0 only."""
        if int(os.environ.get("RANK", "0")) == 0:
            print(msg, flush=True)

    def _enable_checkpointing(self, model: torch.nn.Module) -> None:
        for m in model.modules():
            if hasattr(m, "gradient_checkpointing_enable") and m is not model:
                m.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
                if hasattr(m, "enable_input_require_grads"):
                    m.enable_input_require_grads()
                return

    def _tensorboard(self, acc, n: int):
        if not (self.cfg.tensorboard and acc.is_main_process):
            return None
        import importlib.util

        if importlib.util.find_spec("tensorboard") is None:
            raise ConfigError("tensorboard", "the recipe logs to TensorBoard, which is not installed",
                              "pip install 'llmvqa[train]' (or set tensorboard: false)")
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(str(self.out / "tb" / f"stage{n}"))

    def _save_yaml_once(self, acc) -> None:
        if acc.is_main_process:
            self.out.mkdir(parents=True, exist_ok=True)
            self.cfg.save(self.out / "config.yaml")

    def _state(self, n: int, step: int, total: int, history: list[dict[str, float]], acc) -> dict[str, Any]:
        return {"stage": n, "global_step": step, "max_steps": total, "seed": self.cfg.seed,
                "num_processes": acc.num_processes, "log_history": history}

    def _trainable_state(self, acc, model) -> dict[str, torch.Tensor]:
        unwrapped = acc.unwrap_model(model)
        return {k: p.detach().cpu().contiguous() for k, p in unwrapped.named_parameters() if p.requires_grad}

    def _save_checkpoint(self, n, step, total, history, acc, model, optim, sched, is_ds) -> Path:
        from safetensors.torch import save_file

        d = self.stage_dir(n) / f"checkpoint-{step}"
        if acc.is_main_process:
            if d.exists():
                shutil.rmtree(d)
            d.mkdir(parents=True)
        acc.wait_for_everyone()
        if is_ds:
            acc.save_state(str(d / "ds"))
        elif acc.is_main_process:
            save_file(self._trainable_state(acc, model), str(d / "trainable.safetensors"))
            torch.save(optim.state_dict(), d / "optimizer.pt")
            torch.save(sched.state_dict(), d / "scheduler.pt")
        if acc.is_main_process:
            torch.save(rng_state(), d / "rng.pt")
            self.cfg.save(d / "config.yaml")
            (d / STATE_FILE).write_text(json.dumps(self._state(n, step, total, history, acc), indent=1))
            self._prune(n)
        acc.wait_for_everyone()
        return d

    def _prune(self, n: int) -> None:
        keep = self.cfg.stage(n).keep_checkpoints
        ckpts = sorted((d for d in self.stage_dir(n).glob("checkpoint-*") if (d / STATE_FILE).is_file()),
                       key=lambda d: int(d.name.split("-")[-1]))
        for d in ckpts[: max(0, len(ckpts) - max(keep, 1))]:
            shutil.rmtree(d, ignore_errors=True)

    def _load_checkpoint(self, d: Path, acc, model, optim, sched, is_ds) -> tuple[int, list]:
        from safetensors.torch import load_file

        state = json.loads((d / STATE_FILE).read_text())
        if state.get("num_processes", 1) != acc.num_processes and not is_ds:
            self._say(f"note: checkpoint was written by {state['num_processes']} processes, now {acc.num_processes}")
        if is_ds:
            acc.load_state(str(d / "ds"))
        else:
            saved = load_file(str(d / "trainable.safetensors"))
            unwrapped = acc.unwrap_model(model)
            params = dict(unwrapped.named_parameters())
            missing = sorted(set(k for k, p in params.items() if p.requires_grad) - set(saved))
            if missing:
                raise ConfigError(str(d), f"checkpoint lacks trainable parameters {missing[:3]}...",
                                  "it belongs to another recipe; start without --resume")
            with torch.no_grad():
                for k, v in saved.items():
                    params[k].copy_(v.to(params[k].dtype))
            optim.load_state_dict(torch.load(d / "optimizer.pt", map_location="cpu", weights_only=False))
            sched.load_state_dict(torch.load(d / "scheduler.pt", map_location="cpu", weights_only=False))
        set_rng_state(torch.load(d / "rng.pt", map_location="cpu", weights_only=False))
        return int(state["global_step"]), list(state.get("log_history", []))

    def _save_final(self, n, step, total, history, acc, model, elapsed, samples) -> None:
        final = self.final_dir(n)
        acc.wait_for_everyone()
        unwrapped = acc.unwrap_model(model)
        gather = _zero3_gather(acc, unwrapped)
        with gather:
            if acc.is_main_process:
                if final.exists():
                    shutil.rmtree(final)
                final.mkdir(parents=True)
                self.save_model(unwrapped, final)
                scorer = self.cfg.stage(n).scorer_from
                if scorer:  # that stage's checkpoint reads the overall level (QualityLLM.attach_scorer)
                    from llmvqa.model.modeling import copy_scorer

                    copy_scorer(self.final_dir(scorer), final)
        if acc.is_main_process:
            self.cfg.save(final / "config.yaml")
            state = self._state(n, step, total, history, acc)
            state.update(train_seconds=round(elapsed, 2), samples=samples,
                         samples_per_second=round(samples / max(elapsed, 1e-9), 3))
            if torch.cuda.is_available():
                state["peak_cuda_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
            (final / STATE_FILE).write_text(json.dumps(state, indent=1))
        acc.wait_for_everyone()


def _unset_hf_deepspeed_config() -> None:
    """Forget the DeepSpeed config that accelerate registered with transformers (is_deepspeed_zero3_enabled)."""
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()


def _zero3_gather(acc, model: torch.nn.Module):
    """Under ZeRO-3 the adapter and projector weights are partitioned: gather them before saving."""
    import contextlib

    plugin = getattr(acc.state, "deepspeed_plugin", None)
    if plugin is None or plugin.zero_stage != 3:
        return contextlib.nullcontext()
    import deepspeed

    params = [p for name, p in model.named_parameters() if param_kind(name) != "llm"]
    return deepspeed.zero.GatheredParameters(params, modifier_rank=None)
