"""The shipped text-LLM recipes end to end, each on a tiny random backbone of its family built in code.

The recipe is loaded as shipped (configs/*.yaml) with only the size, the machine and the data overridden:
its three stages train on real clips through the real encoders (features extracted into the recipe's cache),
stage 3's model is saved, ``Assessor.from_pretrained`` loads it and rates a clip, and the scores equal the
in-process model's on the same features — what was trained is what loads. For qwen2.5-vl-7b the semantic
stream is the tiny backbone's own vision tower, both in training and when the saved model rates.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from llmvqa.train import smoke
from llmvqa.train.config import load_config
from llmvqa.train.trainer import Trainer

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
NUM_CLIPS = 4


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Four 48×48 clips of falling quality (v0 … v3: ever stronger blur and noise) with smoke's records."""
    import cv2

    from llmvqa.video.writer import write_video

    root = tmp_path_factory.mktemp("e2e-data")
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (8, 48, 48, 3)).astype(np.float32)
    base = np.stack([cv2.GaussianBlur(f, (0, 0), 1.0) for f in base])
    for i in range(NUM_CLIPS):
        q = smoke.quality(i, NUM_CLIPS)
        frames = np.stack([cv2.GaussianBlur(f, (0, 0), 0.3 + 2.5 * (1 - q)) for f in base])
        frames = frames + rng.normal(0, 25 * (1 - q), frames.shape)
        write_video(root / f"v{i}.mp4", np.clip(frames, 0, 255).astype(np.uint8), fps=8)
    records = smoke.make_records(NUM_CLIPS)
    (root / "train.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return root


def _tiny(kind: str, folder: Path) -> str:
    from test_model import _save_backbone

    return _save_backbone(folder, kind)


def _train_and_load(recipe: str, backbone: str, data: Path, out: Path):
    """Train the recipe's three stages on ``data``; returns (trainer, the in-process stage-3 model, assessor)."""
    from llmvqa.assessor import Assessor

    small = {"max_steps": 2, "batch_size": 4, "grad_accum": 1, "save_every": 0}
    overrides = [f"model.backbone={backbone}", "model.dtype=float32", "model.num_query_tokens=2",
                 "model.resampler_heads=2", "model.lora_r=4", "model.lora_alpha=8",
                 f"data.train_files=[{data / 'train.jsonl'}]", f"data.feature_cache={out / 'cache'}",
                 "data.split=train", "data.video_root=''", f"output_dir={out / 'run'}", "device=cpu", "precision=fp32",
                 "deepspeed=''", "tensorboard=false", "log_every=1"]
    overrides += [f"stage{n}.{k}={v}" for n in (1, 2, 3) for k, v in small.items()]
    cfg = load_config(CONFIGS / f"{recipe}.yaml", overrides)
    trainer = Trainer(cfg, progress=False)
    trainer.run((1, 2))
    run = trainer.prepare(3)
    trainer.fit(run)
    final = trainer.save(run)
    model = run.acc.unwrap_model(run.model).eval()
    return trainer, model, Assessor.from_pretrained(final)


def _check(trainer, model, assessor, data: Path) -> None:
    records = {r["video"]: r for r in trainer.records()}
    scores = []
    for i in (0, NUM_CLIPS - 1):
        got = assessor.rate(data / f"v{i}.mp4", explain=False, dimensions=False)
        feats = trainer.feature_source()(records[f"v{i}.mp4"])
        want = model.score(feats)
        assert got.overall.score == pytest.approx(want.score, abs=1e-4)  # the loaded model is the trained one
        assert list(got.overall.distribution.values()) == pytest.approx(list(want.distribution.values()), abs=1e-4)
        scores.append(got.overall.score)
    assert scores[0] != pytest.approx(scores[1], abs=1e-6)  # the clips' features reach the score


@pytest.mark.parametrize("recipe,kind", [("mini", "gemma"), ("qwen2.5-1.5b", "qwen"), ("qwen2.5-vl-7b", "qwen-vl")])
def test_recipe_trains_saves_loads_and_rates(recipe, kind, data, tmp_path, monkeypatch):
    monkeypatch.chdir(CONFIGS.parent)
    trainer, model, assessor = _train_and_load(recipe, _tiny(kind, tmp_path / kind), data, tmp_path)
    _check(trainer, model, assessor, data)
    if kind == "qwen-vl":  # trained and rated on the VL tower's semantic tokens (width 32), not EfficientNet's
        feats = trainer.feature_source()(trainer.records()[0])
        assert feats.tokens["semantic"].shape[-1] == 32 and feats.meta["semantic_source"] == "qwen-vl-vision-tower"
        assert type(assessor.extractor).__name__ == "QwenSemanticExtractor"
