"""Progressive training end to end on CPU with a tiny random backbone (hidden 32, 2 layers, word tokenizer).

Synthetic VideoFeatures whose technical tokens carry the clip's quality stand in for the encoders;
the records use the real prompt files and answer sentences. Checks: all three stages run, the loss
goes down, checkpoint folders hold the expected files, and an interrupted stage resumes at the saved
step and ends with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from llmvqa.errors import ConfigError
from llmvqa.features import VideoFeatures
from llmvqa.train import smoke
from llmvqa.train.checkpoints import STATE_FILE, latest_checkpoint
from llmvqa.train.config import config_from_dict
from llmvqa.train.trainer import Trainer

DIMS = smoke.SMALL_DIMS
NUM_VIDEOS = 12


# ---------------------------------------------------------------- tiny backbone and data (llmvqa.train.smoke)


def make_records() -> list[dict]:
    return smoke.make_records(NUM_VIDEOS)


def make_features(i: int) -> VideoFeatures:
    return smoke.make_features(i, NUM_VIDEOS, DIMS)


class FakeFeatures:
    """record → VideoFeatures; counts lookups."""

    def __init__(self):
        self.cache = {i: make_features(i) for i in range(NUM_VIDEOS)}
        self.calls = 0

    def __call__(self, record: dict) -> VideoFeatures:
        self.calls += 1
        return self.cache[int(re.search(r"\d+", record["video"]).group())]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    records = make_records()
    (root / "data").mkdir()
    (root / "data" / "train.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    backbone = smoke.make_tiny_backbone(root / "tiny-llm", smoke.corpus_texts(records))
    return root, backbone


def recipe(root: Path, backbone: str, out: str, **stage_over) -> dict:
    stage = {"batch_size": 4, "grad_accum": 1, "max_steps": 6, "warmup_ratio": 0.0, "save_every": 2,
             "keep_checkpoints": 5, **stage_over}
    return {
        "model": {"backbone": backbone, "num_query_tokens": 2, "lora_r": 4, "lora_alpha": 8,
                  "lora_targets": ["q_proj", "v_proj"], "dtype": "float32"},
        "data": {"train_files": [str(root / "data" / "train.jsonl")], "feature_cache": str(root / "cache")},
        "stage1": {**stage, "lr": 3e-3},
        "stage2": {**stage, "lr": 3e-3},
        "stage3": {**stage, "lr": 3e-3},
        "output_dir": str(root / out), "seed": 1, "device": "cpu", "precision": "fp32", "log_every": 1,
    }


def _trainable(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters() if "lora_" in k or k.startswith("projectors")}


def test_three_stages_train_and_write_checkpoints(workspace):
    from llmvqa.model.modeling import QualityLLM

    root, backbone = workspace
    cfg = config_from_dict(recipe(root, backbone, "run"))
    feats = FakeFeatures()
    trainer = Trainer(cfg, features=feats, progress=False)

    stage1 = trainer.train_stage(1)
    first = trainer.history[1]
    assert [h["step"] for h in first] == list(range(1, 7))
    assert sum(h["loss"] for h in first[-2:]) < sum(h["loss"] for h in first[:2])  # the loss goes down
    names = {p.name for p in stage1.iterdir()}
    assert {"config.json", "projectors.safetensors", "adapter", "config.yaml", STATE_FILE} <= names
    m1 = QualityLLM.from_pretrained(stage1)
    lora1 = {k: v for k, v in _trainable(m1).items() if "lora_B" in k}
    assert lora1 and all(float(v.abs().sum()) == 0 for v in lora1.values())  # stage 1 leaves LoRA (B=0) alone

    final = trainer.run((2, 3))
    assert final == root / "run" / "stage3" / "final"
    second = trainer.history[2]
    assert all(h["score"] > 0 for h in second)  # PLCC + rank loss on the rating records
    m3 = QualityLLM.from_pretrained(final)
    assert any(float(v.abs().sum()) > 0 for k, v in _trainable(m3).items() if "lora_B" in k)
    ckpt = latest_checkpoint(root / "run" / "stage2")
    assert ckpt is not None and {"trainable.safetensors", "optimizer.pt", "scheduler.pt", "rng.pt",
                                 "config.yaml", STATE_FILE} <= {p.name for p in ckpt.iterdir()}
    state = json.loads((final / STATE_FILE).read_text())
    assert state["global_step"] == 6 and state["seed"] == 1 and state["samples_per_second"] > 0
    assert (root / "run" / "config.yaml").is_file()


def test_resume_continues_at_the_saved_step_with_identical_weights(workspace):
    """Stage 2 (LoRA dropout, score loss) interrupted after 3 of 6 steps, resumed: same weights as straight through."""
    from safetensors.torch import load_file

    root, backbone = workspace
    straight = Trainer(config_from_dict(recipe(root, backbone, "straight")), features=FakeFeatures(), progress=False)
    straight.run((1, 2))
    with pytest.raises(ConfigError, match="stage 1"):
        Trainer(config_from_dict(recipe(root, backbone, "other")), features=FakeFeatures(), progress=False).train_stage(2)

    cut = Trainer(config_from_dict(recipe(root, backbone, "cut")), features=FakeFeatures(), progress=False)
    cut.train_stage(1)
    ckpt = cut.train_stage(2, stop_after=3)  # "interrupted" after 3 steps
    assert ckpt.name == "checkpoint-3" and not cut.is_done(2)
    again = Trainer(config_from_dict(recipe(root, backbone, "cut")), features=FakeFeatures(), progress=False)
    final = again.run((1, 2), resume=True)  # stage 1 is finished: skipped
    assert 1 not in again.history
    steps = [h["step"] for h in again.history[2]]
    assert steps == list(range(1, 7))  # 1–3 restored from the checkpoint, 4–6 trained now, none twice
    assert again.history[2][:3] == cut.history[2][:3]

    for rel in ("projectors.safetensors", "adapter/adapter_model.safetensors"):
        a = load_file(str(root / "straight" / "stage2" / "final" / rel))
        b = load_file(str(final / rel))
        assert a.keys() == b.keys()
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    assert again.train_stage(2, resume=True) == final  # a finished stage is skipped on resume


def test_cli_trains_a_stage_from_the_feature_cache(workspace, tmp_path, capsys):
    """`llmvqa train` reads a YAML recipe and the real FeatureCache (features cached beforehand)."""
    import argparse

    import yaml

    from llmvqa.commands import train as train_cmd
    from llmvqa.encoders.cache import FeatureCache, content_hash
    from llmvqa.encoders.config import EncoderConfig

    root, backbone = workspace
    key = EncoderConfig().key()
    cache = FeatureCache(tmp_path / "cache")
    for i in range(NUM_VIDEOS):
        video = tmp_path / f"v{i}.mp4"
        video.write_bytes(f"not really a video {i}".encode())  # only its bytes' hash matters here
        f = make_features(i)
        f.meta.update(content_hash=content_hash(video), encoder_key=key)
        cache.put(f)
    raw = recipe(root, backbone, "cli")
    raw["output_dir"] = str(tmp_path / "run")
    raw["data"].update(video_root=str(tmp_path), feature_cache=str(tmp_path / "cache"), compute_missing=False)
    cfg_path = tmp_path / "recipe.yaml"
    cfg_path.write_text(yaml.safe_dump(raw))

    parser = argparse.ArgumentParser()
    train_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["train", "--config", str(cfg_path), "--stage", "1", "--quiet",
                              "--override", "stage1.max_steps=2", "stage1.save_every=0",
                              "gradient_checkpointing=true", "tensorboard=true"])
    assert args.func(args) == 0
    assert "checkpoint:" in capsys.readouterr().out
    state = json.loads((tmp_path / "run" / "stage1" / "final" / STATE_FILE).read_text())
    assert state["global_step"] == 2
    meta = json.loads((tmp_path / "run" / "stage1" / "final" / "config.json").read_text())
    assert meta["encoder"] == EncoderConfig().to_dict()  # the checkpoint records the encoder settings
    assert list((tmp_path / "run" / "tb" / "stage1").glob("events.out.tfevents.*"))
    saved = yaml.safe_load((tmp_path / "run" / "stage1" / "final" / "config.yaml").read_text())
    assert saved["gradient_checkpointing"] is True and saved["stage1"]["max_steps"] == 2  # the resolved config

    raw["data"]["feature_cache"] = str(tmp_path / "empty")
    cfg_path.write_text(yaml.safe_dump(raw))
    from llmvqa.errors import DataError

    with pytest.raises(DataError, match="not in the cache"):
        args.func(parser.parse_args(["train", "--config", str(cfg_path), "--stage", "1", "--quiet"]))


def test_a_stage_builds_its_model_without_a_previous_zero3_registration(workspace):
    """A ZeRO-3 stage leaves its config registered with transformers; the next stage must not load
    its backbone partitioned because of it (stage 1 loads whole; on a GPU the stages then diverged)."""
    from transformers.integrations.deepspeed import HfDeepSpeedConfig, is_deepspeed_zero3_enabled

    seen = []

    class Probe(Trainer):
        def build_model(self, *args):
            seen.append(is_deepspeed_zero3_enabled())
            return super().build_model(*args)

    left_over = HfDeepSpeedConfig({"zero_optimization": {"stage": 3}, "train_micro_batch_size_per_gpu": 1})
    assert is_deepspeed_zero3_enabled()  # what the previous ZeRO-3 stage leaves behind
    root, backbone = workspace
    cfg = config_from_dict(recipe(root, backbone, "probe", max_steps=1, save_every=0))
    Probe(cfg, features=FakeFeatures(), progress=False).train_stage(1)
    assert seen == [False]
    del left_over


def test_scorer_from_ships_stage_2_as_the_scorer_of_stage_3(workspace):
    """stage3.scorer_from=2: stage 3's final holds stage 2's checkpoint, which reads the overall level."""
    from llmvqa.model.checkpoint import SCORER_DIR
    from llmvqa.model.modeling import QualityLLM

    root, backbone = workspace
    cfg = config_from_dict({**recipe(root, backbone, "run-scorer", max_steps=2, save_every=0),
                            "stage3": {"batch_size": 4, "max_steps": 2, "lr": 3e-3, "scorer_from": 2}})
    trainer = Trainer(cfg, features=FakeFeatures(), progress=False)
    trainer.run((1, 2))
    (root / "run-scorer" / "stage1" / "final" / STATE_FILE).unlink()
    with pytest.raises(ConfigError, match="stage 2 starts from stage 1's checkpoint"):
        trainer.train_stage(2)
    final = trainer.train_stage(3)
    assert (final / SCORER_DIR / "config.json").is_file() and not (final / SCORER_DIR / SCORER_DIR).exists()
    feats = make_features(0)
    both, stage2 = QualityLLM.from_pretrained(final), QualityLLM.from_pretrained(root / "run-scorer" / "stage2" / "final")
    own = QualityLLM.from_pretrained(final, scorer=False)
    assert both.has_scorer and list(both.score(feats).distribution.values()) == pytest.approx(
        list(stage2.score(feats).distribution.values()), abs=1e-5)
    assert list(own.score(feats).distribution.values()) != pytest.approx(list(stage2.score(feats).distribution.values()), abs=1e-4)


def test_checkpointing_turns_on_in_the_llm_inside_the_model():
    """gradient_checkpointing=true reaches the transformers model wrapped inside ours, under the
    method name this transformers has (activation_… from 5.2x, gradient_… before)."""
    import transformers

    llm = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1))
    wrapper = torch.nn.ModuleDict({"proj": torch.nn.Linear(4, 16), "lm": llm})
    flag = "is_activation_checkpointing" if hasattr(llm, "is_activation_checkpointing") else "is_gradient_checkpointing"
    assert not getattr(llm, flag)
    Trainer._enable_checkpointing(object.__new__(Trainer), wrapper)
    assert getattr(llm, flag)
