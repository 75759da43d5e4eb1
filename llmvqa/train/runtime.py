"""What a training stage runs on and what it trains: the device and precision of this machine, the seed, and the
parameters of the stage's part ("projectors", "lora", "llm", joined by "+")."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from llmvqa.errors import ConfigError, ModelError
from llmvqa.train.config import TrainConfig


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
