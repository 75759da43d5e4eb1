"""Training pieces without a model: recipe checks, score losses, data order, DeepSpeed configs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from llmvqa.errors import ConfigError, DataError
from llmvqa.train.config import DataConfig, StageConfig, TrainConfig, field_docs, load_config
from llmvqa.train.data import BatchPlan, epoch_batches, read_records, stage_records
from llmvqa.train.deepspeed_setup import deepspeed_plugin, resolve_deepspeed_config
from llmvqa.train.losses import expected_level_score, plcc_loss, rank_loss, score_loss, score_targets

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


# ---------------------------------------------------------------- config


def _write(tmp_path, text: str) -> Path:
    p = tmp_path / "r.yaml"
    p.write_text(text)
    return p


def test_unknown_key_names_key_and_file(tmp_path):
    p = _write(tmp_path, "stage2:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "stage2.lrr" in str(e.value) and str(p) in str(e.value)
    with pytest.raises(ConfigError, match="'outdir'"):
        load_config(_write(tmp_path, "outdir: x\n"))


def test_score_loss_needs_four_per_micro_batch(tmp_path):
    with pytest.raises(ConfigError, match="batch_size"):
        load_config(_write(tmp_path, "stage2:\n  batch_size: 2\n  grad_accum: 8\n"))
    StageConfig(batch_size=2, plcc_weight=0, rank_weight=0)  # fine without the score loss


def test_scorer_from_names_an_earlier_stage(tmp_path):
    assert load_config(_write(tmp_path, "stage3:\n  scorer_from: 2\n")).stage3.scorer_from == 2
    for text in ("stage3:\n  scorer_from: 3\n", "stage2:\n  scorer_from: 2\n"):
        with pytest.raises(ConfigError, match=r"scorer_from: must name an earlier stage"):
            load_config(_write(tmp_path, text))
    with pytest.raises(ConfigError, match="scorer_from"):
        StageConfig(scorer_from=-1)


@pytest.mark.parametrize("field,value", [("trainable", "everything"), ("tasks", ["nope"]), ("warmup_ratio", 1.5),
                                         ("lr", 0.0), ("grad_accum", 0), ("score_tasks", ["dimension"])])
def test_stage_checks(field, value):
    with pytest.raises(ConfigError, match=field):
        StageConfig(**{field: value})


def test_score_targets_keep_only_answers_that_end_in_the_overall_level():
    target = torch.tensor([2.0, 3.0, 4.0, 5.0, 1.5])
    level_pos = torch.tensor([7, 7, -1, 9, 8])
    tasks = ["rating", "dimension", "rating_cot", "improve", "why"]
    out = score_targets(target, level_pos, tasks, ["rating", "rating_cot", "improve"])
    assert out[0] == 2.0 and out[3] == 5.0
    assert torch.isnan(out[1]) and torch.isnan(out[2]) and torch.isnan(out[4])  # dimension; no level word; not asked
    assert target[1] == 3.0  # the batch's own tensor is left alone
    # a stage-3 style micro-batch: the loss sees only the two overall answers
    logits = torch.randn(5, 5)
    assert torch.allclose(score_loss(logits, out, 1.0, 0.0), score_loss(logits[[0, 3]], target[[0, 3]], 1.0, 0.0))
    assert score_loss(logits, score_targets(target, level_pos, tasks, ["rating"]), 1.0, 0.3) is None


def test_numbers_written_without_a_dot_are_numbers(tmp_path):
    # YAML 1.1 reads 5e-5 as a string; a recipe or an override that writes it so must still work
    cfg = load_config(_write(tmp_path, "stage3:\n  lr: 5e-5\n  max_steps: 1e2\n"), ["stage2.lr=2e-4", "seed=7"])
    assert cfg.stage3.lr == 5e-5 and isinstance(cfg.stage3.lr, float)
    assert cfg.stage3.max_steps == 100 and isinstance(cfg.stage3.max_steps, int)
    assert cfg.stage2.lr == 2e-4 and cfg.seed == 7
    with pytest.raises(ConfigError, match=r"stage3\.lr must be a number, got 'fast'"):
        load_config(_write(tmp_path, "stage3:\n  lr: fast\n"))
    with pytest.raises(ConfigError, match=r"stage1\.max_steps must be a whole number"):
        load_config(_write(tmp_path, "seed: 1\n"), ["stage1.max_steps=2.5"])
    with pytest.raises(ConfigError, match=r"stage1\.batch_size must be a number"):
        load_config(_write(tmp_path, "stage1:\n  batch_size: true\n"))
    from llmvqa.encoders.config import EncoderConfig
    from llmvqa.model.config import ModelConfig

    assert ModelConfig.from_dict({"lora_dropout": "5e-2", "lora_r": 8}).lora_dropout == 0.05
    enc = EncoderConfig.from_dict({"semantic": {"scoring_top_k": "2e1", "alignment_scoring": "class_expectation"}})
    assert enc.semantic.scoring_top_k == 20
    with pytest.raises(ConfigError, match=r"model\.lora_r must be a number"):
        ModelConfig.from_dict({"lora_r": "eight"})


def test_overrides_and_roundtrip(tmp_path):
    cfg = load_config(CONFIGS / "mini.yaml", ["stage1.max_steps=3", "model.lora_r=4", "seed=7"])
    assert cfg.stage1.max_steps == 3 and cfg.model.lora_r == 4 and cfg.seed == 7
    cfg.save(tmp_path / "c.yaml")
    again = load_config(tmp_path / "c.yaml")
    assert again.to_dict() == cfg.to_dict()
    with pytest.raises(ConfigError, match="key=value"):
        load_config(CONFIGS / "mini.yaml", ["stage1.max_steps"])


def test_every_field_is_documented():
    for cls in (TrainConfig, DataConfig, StageConfig):
        docs = field_docs(cls)
        missing = [f for f in cls.__dataclass_fields__ if not docs.get(f)]
        assert not missing, f"{cls.__name__} fields without a docstring: {missing}"


# ---------------------------------------------------------------- losses


def test_plcc_loss_bounds_and_sign():
    y = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert plcc_loss(y * 2 + 1, y).item() == pytest.approx(0.0, abs=1e-6)
    assert plcc_loss(-y, y).item() == pytest.approx(1.0, abs=1e-6)


def test_rank_loss_matches_formula():
    y = torch.tensor([1.0, 3.0, 2.0, 5.0])
    p = torch.tensor([2.0, 1.0, 2.5, 4.0])
    expected = [max(0.0, abs(y[i] - y[j]) - math.copysign(1, y[i] - y[j]) * (p[i] - p[j]))
                for i in range(4) for j in range(4) if i != j]
    assert rank_loss(p, y).item() == pytest.approx(float(torch.tensor(expected).mean()), rel=1e-6)
    assert rank_loss(y, y).item() == pytest.approx(0.0)


def test_score_loss_skips_nan_targets_and_small_batches():
    logits = torch.randn(4, 5, requires_grad=True)
    target = torch.tensor([1.0, float("nan"), 4.0, 5.0])
    loss = score_loss(logits, target, 1.0, 0.3)
    loss.backward()
    assert logits.grad[1].abs().sum() == 0 and logits.grad[0].abs().sum() > 0
    assert score_loss(logits, torch.tensor([1.0, float("nan"), float("nan"), float("nan")]), 1.0, 0.3) is None
    # the expected score follows LEVELS order: all mass on "excellent" → 5
    assert expected_level_score(torch.tensor([[20.0, 0, 0, 0, 0]])).item() == pytest.approx(5.0, abs=1e-4)


# ---------------------------------------------------------------- data


def _records_file(tmp_path, n=10) -> Path:
    tasks = ["rating", "dimension", "why", "rating_cot"]
    lines = []
    for i in range(n):
        ans = "The overall quality of this video is good." if i % 2 else " ".join(["word"] * 60)
        lines.append(json.dumps({"id": f"r{i}", "video": f"v{i}.mp4", "prompt": "", "task": tasks[i % 4],
                                 "split": "train" if i < 8 else "val",
                                 "conversations": [{"from": "human", "value": "<video>\nq"}, {"from": "gpt", "value": ans}]}))
    p = tmp_path / "train.jsonl"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_records_split_tasks_and_answer_length(tmp_path):
    p = _records_file(tmp_path)
    recs = read_records(DataConfig(train_files=[str(tmp_path / "*.jsonl")]))
    assert len(recs) == 8 and all(r["_root"] == str(tmp_path) for r in recs)
    s = stage_records(recs, StageConfig(tasks=["rating", "dimension"], max_answer_words=40, plcc_weight=0), 0)
    assert [r["id"] for r in s] == ["r1", "r5"]  # r0/r4 rating answers are 60 words
    p.write_text(p.read_text() + "{bad json\n")
    with pytest.raises(DataError, match=":11"):
        read_records(DataConfig(train_files=[str(p)]))


def test_epoch_order_is_a_function_of_seed_and_epoch():
    a, b = epoch_batches(10, 4, 3, 1, False), epoch_batches(10, 4, 3, 1, False)
    assert a == b and a != epoch_batches(10, 4, 3, 2, False)
    assert sorted(i for batch in a for i in batch) == list(range(10))
    assert all(len(batch) == 4 for batch in epoch_batches(10, 4, 3, 1, True))


def test_plan_shards_processes_without_overlap():
    plans = [BatchPlan(16, 2, grad_accum=1, seed=0, rank=rank, world=2) for rank in range(2)]
    assert plans[0].micro_per_epoch == 4
    seen = [i for p in plans for m in range(4) for i in p.micro_batch(m)[1]]
    assert sorted(seen) == list(range(16))
    assert plans[0].micro_batch(4)[0] == 1  # micro-batch 4 opens epoch 1


# ---------------------------------------------------------------- DeepSpeed


@pytest.mark.parametrize("name", ["ds_zero2.json", "ds_zero3.json"])
def test_deepspeed_configs_fill_auto_and_build_a_plugin(name):
    stage = StageConfig(batch_size=4, grad_accum=3, max_grad_norm=0.5)
    ds = resolve_deepspeed_config(CONFIGS / name, stage, "bf16", world=2, hidden_size=32)
    flat = json.dumps(ds)
    assert '"auto"' not in flat
    assert ds["train_batch_size"] == 24 and ds["bf16"]["enabled"] is True and ds["fp16"]["enabled"] is False
    plugin = deepspeed_plugin(CONFIGS / name, stage, "bf16", world=2, hidden_size=32)
    assert plugin.zero_stage == int(name[7])
    assert plugin.deepspeed_config["gradient_accumulation_steps"] == 3


def test_deepspeed_config_with_an_optimizer_is_refused(tmp_path):
    p = tmp_path / "ds.json"
    p.write_text(json.dumps({"optimizer": {"type": "AdamW"}, "zero_optimization": {"stage": 2}}))
    with pytest.raises(ConfigError, match="optimizer"):
        resolve_deepspeed_config(p, StageConfig(), "fp32", 1)


def test_train_sh_asks_the_config_loader_and_stops_on_a_bad_recipe(tmp_path):
    """train.sh reads output folder, DeepSpeed and corpus from load_config (so --override reaches them): a
    recipe the loader rejects stops it before any work, with the loader's message."""
    import subprocess
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    bad = tmp_path / "bad.yaml"
    bad.write_text("stage1:\n  no_such_field: 1\n")
    run = subprocess.run(["bash", str(repo / "train.sh"), str(bad)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "no_such_field" in run.stderr and "cannot read the recipe" in run.stderr
    assert "stage 1" not in run.stdout.lower()
