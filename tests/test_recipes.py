"""Every shipped recipe in configs/ loads through the training dataclasses (litgpt's config-hub test)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmvqa.model.config import ModelConfig
from llmvqa.train.config import load_config
from llmvqa.train.deepspeed_setup import resolve_deepspeed_config

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
RECIPES = sorted(CONFIGS.glob("*.yaml"))


def test_the_three_recipes_ship():
    names = {p.stem for p in RECIPES}
    assert {"mini", "qwen2.5-1.5b", "qwen2.5-vl-7b"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_loads(path, monkeypatch):
    monkeypatch.chdir(CONFIGS.parent)  # recipes name configs/ds_*.json relative to the repo root
    cfg = load_config(path)
    assert isinstance(cfg.model, ModelConfig)  # the model section is checked as ModelConfig fields when it loads
    assert cfg.stage1.trainable == "projectors"
    assert "lora" in cfg.stage2.trainable and cfg.stage2.uses_score_loss
    assert cfg.stage2.batch_size >= 4
    if cfg.deepspeed:
        ds = resolve_deepspeed_config(cfg.deepspeed, cfg.stage2, "bf16", world=8, hidden_size=64)
        assert ds["train_batch_size"] == cfg.stage2.batch_size * cfg.stage2.grad_accum * 8


SECTIONS = ("model", "data", "data.encoder", "data.encoder.semantic", "stage1", "stage2", "stage3")


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_section_of_every_recipe_is_typed_and_checked_when_it_loads(path, monkeypatch):
    from llmvqa.encoders.config import EncoderConfig
    from llmvqa.errors import ConfigError
    from llmvqa.train.config import DataConfig, StageConfig, config_from_dict

    monkeypatch.chdir(CONFIGS.parent)
    cfg = load_config(path)
    assert isinstance(cfg.data, DataConfig) and isinstance(cfg.data.encoder, EncoderConfig)
    assert all(isinstance(cfg.stage(n), StageConfig) for n in (1, 2, 3))
    assert config_from_dict(cfg.to_dict()) == cfg  # what a checkpoint's config.yaml records loads back the same
    for section in SECTIONS:  # a wrong key anywhere fails at load time, naming the section and the file
        with pytest.raises(ConfigError, match=rf"{path.name}.*{section.split('.')[-1]}"):
            load_config(path, [f"{section}.not_a_setting=1"])


def test_mini_is_the_offline_cpu_recipe(monkeypatch):
    monkeypatch.chdir(CONFIGS.parent)
    cfg = load_config(CONFIGS / "mini.yaml")
    assert cfg.model.backbone == "gemma3-270m" and cfg.device == "cpu" and cfg.precision == "fp32"
    assert 8 <= cfg.model.lora_r <= 16


@pytest.mark.parametrize("name,stage", [("ds_zero2.json", 2), ("ds_zero3.json", 3)])
def test_zero_configs_parse(name, stage):
    raw = json.loads((CONFIGS / name).read_text())
    assert raw["zero_optimization"]["stage"] == stage
    assert raw["train_micro_batch_size_per_gpu"] == "auto"
    if stage == 3:
        assert raw["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
