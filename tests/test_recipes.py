"""Every shipped recipe in configs/ loads through the training dataclasses (litgpt's config-hub test)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmvqa.model.config import ModelConfig
from llmvqa.train.config import load_config
from llmvqa.train.trainer import resolve_deepspeed_config

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
RECIPES = sorted(CONFIGS.glob("*.yaml"))


def test_the_three_recipes_ship():
    names = {p.stem for p in RECIPES}
    assert {"mini", "qwen2.5-1.5b", "qwen2.5-vl-7b"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_loads(path, monkeypatch):
    monkeypatch.chdir(CONFIGS.parent)  # recipes name configs/ds_*.json relative to the repo root
    cfg = load_config(path)
    ModelConfig.from_dict(cfg.model)  # the model section is valid ModelConfig fields
    assert cfg.stage1.trainable == "projectors"
    assert "lora" in cfg.stage2.trainable and cfg.stage2.uses_score_loss
    assert cfg.stage2.batch_size >= 4
    if cfg.deepspeed:
        ds = resolve_deepspeed_config(cfg.deepspeed, cfg.stage2, "bf16", world=8, hidden_size=64)
        assert ds["train_batch_size"] == cfg.stage2.batch_size * cfg.stage2.grad_accum * 8


def test_mini_is_the_offline_cpu_recipe(monkeypatch):
    monkeypatch.chdir(CONFIGS.parent)
    cfg = load_config(CONFIGS / "mini.yaml")
    assert cfg.model["backbone"] == "gemma3-270m" and cfg.device == "cpu" and cfg.precision == "fp32"
    assert 8 <= cfg.model["lora_r"] <= 16


@pytest.mark.parametrize("name,stage", [("ds_zero2.json", 2), ("ds_zero3.json", 3)])
def test_zero_configs_parse(name, stage):
    raw = json.loads((CONFIGS / name).read_text())
    assert raw["zero_optimization"]["stage"] == stage
    assert raw["train_micro_batch_size_per_gpu"] == "auto"
    if stage == 3:
        assert raw["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
