"""Resumable checkpoints of a training stage: ``<output_dir>/stage<N>/checkpoint-<step>/``.

A checkpoint holds the trainable parameters (``trainable.safetensors``), the optimizer and scheduler states and
the RNG state (or accelerate's ``ds/`` under DeepSpeed), the recipe (``config.yaml``) and, written last, the
trainer state (``trainer_state.json``: step, history): its presence marks the checkpoint complete.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmvqa.errors import ConfigError

STATE_FILE = "trainer_state.json"
"""Written last into a checkpoint: its presence marks the checkpoint complete."""


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



def latest_checkpoint(stage_dir: Path) -> Path | None:
    """The complete checkpoint-<step> with the highest step, if any."""
    best = None
    for d in stage_dir.glob("checkpoint-*"):
        if (d / STATE_FILE).is_file() and d.name.split("-")[-1].isdigit():
            if best is None or int(d.name.split("-")[-1]) > int(best.name.split("-")[-1]):
                best = d
    return best


# ---------------------------------------------------------------- DeepSpeed


def trainable_state(acc, model) -> dict[str, torch.Tensor]:
    """The parameters that train (CPU copies), by name."""
    unwrapped = acc.unwrap_model(model)
    return {k: p.detach().cpu().contiguous() for k, p in unwrapped.named_parameters() if p.requires_grad}


def write_checkpoint(d: Path, state: dict[str, Any], acc, model, optim, sched, is_ds: bool,
                     save_recipe: Callable[[Path], None]) -> Path:
    """Write the checkpoint folder ``d`` (replacing one of the same step); ``state`` goes last."""
    from safetensors.torch import save_file

    if acc.is_main_process:
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
    acc.wait_for_everyone()
    if is_ds:
        acc.save_state(str(d / "ds"))
    elif acc.is_main_process:
        save_file(trainable_state(acc, model), str(d / "trainable.safetensors"))
        torch.save(optim.state_dict(), d / "optimizer.pt")
        torch.save(sched.state_dict(), d / "scheduler.pt")
    if acc.is_main_process:
        torch.save(rng_state(), d / "rng.pt")
        save_recipe(d / "config.yaml")
        (d / STATE_FILE).write_text(json.dumps(state, indent=1))
    return d


def prune_checkpoints(stage_dir: Path, keep: int) -> None:
    """Keep the ``keep`` (≥ 1) complete checkpoints of the highest steps."""
    ckpts = sorted((d for d in stage_dir.glob("checkpoint-*") if (d / STATE_FILE).is_file()),
                   key=lambda d: int(d.name.split("-")[-1]))
    for d in ckpts[: max(0, len(ckpts) - max(keep, 1))]:
        shutil.rmtree(d, ignore_errors=True)


def read_checkpoint(d: Path, acc, model, optim, sched, is_ds: bool,
                    say: Callable[[str], None]) -> tuple[int, list]:
    """Restore a checkpoint into the prepared model, optimizer, scheduler and RNG; returns (step, history)."""
    from safetensors.torch import load_file

    state = json.loads((d / STATE_FILE).read_text())
    if state.get("num_processes", 1) != acc.num_processes and not is_ds:
        say(f"note: checkpoint was written by {state['num_processes']} processes, now {acc.num_processes}")
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
