"""DeepSpeed through accelerate: the ZeRO JSON with its "auto" fields filled per stage, the plugin, and the gather
of partitioned weights before saving. Nothing here launches processes (``accelerate launch`` does)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from llmvqa.errors import ConfigError
from llmvqa.train.config import StageConfig


def hidden_size(model: torch.nn.Module) -> int | None:
    """The hidden size of the first submodule whose config has one (ZeRO bucket sizes scale with it)."""
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


def forget_hf_deepspeed_config() -> None:
    """Forget the DeepSpeed config that accelerate registered with transformers (is_deepspeed_zero3_enabled)."""
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()


def zero3_gather(acc, model: torch.nn.Module, keep=lambda name: True):
    """Under ZeRO-3 the adapter and projector weights are partitioned: gather them before saving."""
    import contextlib

    plugin = getattr(acc.state, "deepspeed_plugin", None)
    if plugin is None or plugin.zero_stage != 3:
        return contextlib.nullcontext()
    import deepspeed

    params = [p for name, p in model.named_parameters() if keep(name)]
    return deepspeed.zero.GatheredParameters(params, modifier_rank=None)
