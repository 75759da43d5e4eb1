"""Progressive training loop (Score2Instruct): stage 1 projectors → stage 2 LoRA + score loss → stage 3 full mix.

One loop for CPU, one GPU and many (accelerate's Accelerator, with a DeepSpeedPlugin when
``deepspeed`` names a JSON). Run directory layout::

    <output_dir>/stage<N>/checkpoint-<step>/   resumable: trainable.safetensors, optimizer.pt, scheduler.pt,
                                               rng.pt (or ds/ under DeepSpeed), trainer_state.json, config.yaml
    <output_dir>/stage<N>/final/               QualityLLM.save_pretrained + trainer_state.json + config.yaml

A stage is prepared (records, model, accelerator, optimizer, a checkpoint to resume: ``Trainer.prepare`` →
``StageRun``), fitted (``Trainer.fit``) and saved (``Trainer.save``; checkpoints: ``llmvqa.train.checkpoints``).
Each stage starts from the previous stage's ``final/``. ``resume=True`` skips finished stages
and continues an unfinished one from its last checkpoint at the saved step (the data order
is a function of seed and epoch, and the RNG state is restored, so nothing repeats).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from llmvqa.errors import ConfigError, DataError
from llmvqa.train.checkpoints import (
    STATE_FILE,
    latest_checkpoint,
    prune_checkpoints,
    read_checkpoint,
    write_checkpoint,
)
from llmvqa.train.config import StageConfig, TrainConfig
from llmvqa.train.data import BatchPlan, CachedFeatures, FeatureSource, read_records, stage_records
from llmvqa.train.deepspeed_setup import (
    deepspeed_plugin,
    forget_hf_deepspeed_config,
    hidden_size,
    zero3_gather,
)
from llmvqa.train.losses import score_loss, score_targets
from llmvqa.train.runtime import param_kind, resolve_precision, seed_everything, set_trainable, to_device, use_cuda

__all__ = ["StageRun", "Trainer"]


# ---------------------------------------------------------------- trainer



@dataclass
class StageRun:
    """One stage being trained: what ``Trainer.prepare`` sets up, ``fit`` advances and ``save`` writes."""

    n: int
    stage: StageConfig
    records: list[dict[str, Any]]
    model: torch.nn.Module
    collator: Any
    acc: Any
    optim: Any
    sched: Any
    plan: BatchPlan
    params: list[torch.nn.Parameter]
    total: int
    is_ds: bool
    writer: Any = None
    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    samples: int = 0
    elapsed: float = 0.0


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
                self.features = QwenSemanticFeatures(self.features, self.cfg.model.backbone, device=device)
        return self.features

    def model_config(self, sample_features) -> Any:
        """The recipe's ModelConfig (a copy: building a model records into it), stream widths from the features
        where the recipe leaves them out."""
        import copy

        cfg = copy.deepcopy(self.cfg.model)
        if not cfg.stream_dims:
            cfg.stream_dims = {s: int(t.shape[-1]) for s, t in sample_features.tokens.items()}
        return cfg

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
            out["semantic_tokens"] = str(self.cfg.model.backbone)
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
        if resume and self.is_done(n):
            self._say(f"stage {n}: already finished at {self.final_dir(n)}")
            return self.final_dir(n)
        run = self.prepare(n, resume)
        self.fit(run, stop_after)
        if run.step < run.total:  # stopped early on purpose: leave a resumable checkpoint
            return self._save_checkpoint(run)
        return self.save(run)

    def prepare(self, n: int, resume: bool = False) -> StageRun:
        """Check the stage can start, build its model, accelerator, optimizer and schedule, and restore the last
        checkpoint when resuming."""
        stage = self.cfg.stage(n)
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
        forget_hf_deepspeed_config()
        feats = self.feature_source()
        sample = feats(records[0])
        model = self.build_model(n, init_dir, sample)
        names = set(set_trainable(model, stage.trainable))
        if self.cfg.gradient_checkpointing:
            self._enable_checkpointing(model)
        collator = self.make_collator(model)

        plugin = None
        plugin = None
        if self.cfg.deepspeed:
            world = PartialState(cpu=cpu).num_processes
            plugin = deepspeed_plugin(self.cfg.deepspeed, stage, precision, world, hidden_size(model))
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
        run = StageRun(n, stage, records, model, collator, acc, optim, sched, plan, params, total, is_ds)
        ckpt = latest_checkpoint(self.stage_dir(n)) if resume else None
        if ckpt is not None:
            run.step, run.history = read_checkpoint(ckpt, acc, model, optim, sched, is_ds, self._say)
            self._say(f"stage {n}: resuming from {ckpt} at step {run.step}/{total}")
        run.writer = self._tensorboard(acc, n)
        self._save_yaml_once(acc)
        return run

    def fit(self, run: StageRun, stop_after: int | None = None) -> None:
        """Train ``run`` to its last step (or ``stop_after`` steps more), saving checkpoints on the way."""
        from tqdm.auto import tqdm

        n, stage, acc, model, collator, records = run.n, run.stage, run.acc, run.model, run.collator, run.records
        bar = tqdm(total=run.total, initial=run.step, desc=f"stage {n}",
                   disable=not (self.progress and acc.is_main_process))
        model.train()
        t0, c0 = time.perf_counter(), time.process_time()
        self.step_times[n] = times = []
        end = run.total if stop_after is None else min(run.total, run.step + stop_after)
        while run.step < end:
            sums = {"loss": 0.0, "ce": 0.0, "score": 0.0}
            for a in range(stage.grad_accum):
                epoch, idx = run.plan.micro_batch(run.step * stage.grad_accum + a)
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
                    if acc.sync_gradients and stage.max_grad_norm > 0 and not run.is_ds:
                        acc.clip_grad_norm_(run.params, stage.max_grad_norm)
                    run.optim.step()
                    run.optim.zero_grad(set_to_none=True)
                sums["loss"] += float(loss.detach()) / stage.grad_accum
                sums["ce"] += float(ce.detach()) / stage.grad_accum
                sums["score"] += float(s_loss.detach()) / stage.grad_accum if s_loss is not None else 0.0
                run.samples += len(idx)
            run.sched.step()
            run.step += 1
            times.append((time.perf_counter() - t0, time.process_time() - c0))
            entry = {"step": run.step, "epoch": round(run.plan.epoch_of_step(run.step), 4),
                     "lr": run.sched.get_last_lr()[0], **sums}
            run.history.append(entry)
            bar.update(1)
            bar.set_postfix(loss=f"{sums['loss']:.4f}")
            if run.writer is not None:
                for k in ("loss", "ce", "score", "lr"):
                    run.writer.add_scalar(f"stage{n}/{k}", entry[k], run.step)
            if run.step % self.cfg.log_every == 0 and acc.is_main_process and not self.progress:
                print(f"stage {n} step {run.step}/{run.total} loss {sums['loss']:.4f} lr {entry['lr']:.2e}", flush=True)
            if stage.save_every and run.step % stage.save_every == 0 and run.step < run.total:
                self._save_checkpoint(run)
        bar.close()
        run.elapsed += time.perf_counter() - t0
        self.history[n] = run.history
        if run.writer is not None:
            run.writer.close()

    def save(self, run: StageRun) -> Path:
        """Write the stage's final checkpoint (the model, its scorer when the stage names one, the recipe and the
        trainer state) and return its folder."""
        n, acc = run.n, run.acc
        final = self.final_dir(n)
        acc.wait_for_everyone()
        unwrapped = acc.unwrap_model(run.model)
        with zero3_gather(acc, unwrapped, keep=lambda name: param_kind(name) != "llm"):
            if acc.is_main_process:
                if final.exists():
                    shutil.rmtree(final)
                final.mkdir(parents=True)
                self.save_model(unwrapped, final)
                scorer = self.cfg.stage(n).scorer_from
                if scorer:  # that stage's checkpoint reads the overall level (QualityLLM.attach_scorer)
                    from llmvqa.model.checkpoint import copy_scorer

                    copy_scorer(self.final_dir(scorer), final)
        if acc.is_main_process:
            self.cfg.save(final / "config.yaml")
            state = self._state(run)
            state.update(train_seconds=round(run.elapsed, 2), samples=run.samples,
                         samples_per_second=round(run.samples / max(run.elapsed, 1e-9), 3))
            if torch.cuda.is_available():
                state["peak_cuda_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
            (final / STATE_FILE).write_text(json.dumps(state, indent=1))
        acc.wait_for_everyone()
        return final

    # -- internals

    def _say(self, msg: str) -> None:
        """Status lines (resume, skipped stage): printed with or without progress bars, by rank 0 only."""
        if int(os.environ.get("RANK", "0")) == 0:
            print(msg, flush=True)

    def _enable_checkpointing(self, model: torch.nn.Module) -> None:
        """Activation checkpointing on the first transformers model inside ``model`` (the LLM)."""
        for m in model.modules():
            if m is model:
                continue
            if hasattr(m, "activation_checkpointing_enable"):  # transformers >= 5.2x (the old name is deprecated)
                m.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            elif hasattr(m, "gradient_checkpointing_enable"):
                m.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            else:
                continue
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
    def _state(self, run: StageRun) -> dict[str, Any]:
        return {"stage": run.n, "global_step": run.step, "max_steps": run.total, "seed": self.cfg.seed,
                "num_processes": run.acc.num_processes, "log_history": run.history}

    def _save_checkpoint(self, run: StageRun) -> Path:
        d = write_checkpoint(self.stage_dir(run.n) / f"checkpoint-{run.step}", self._state(run), run.acc, run.model,
                             run.optim, run.sched, run.is_ds, self.cfg.save)
        if run.acc.is_main_process:
            prune_checkpoints(self.stage_dir(run.n), self.cfg.stage(run.n).keep_checkpoints)
        run.acc.wait_for_everyone()
        return d
