"""The dimension stage: class-balanced training of the main model's dimension answers.

    llmvqa tune-dimensions --model runs/mini/calibrated --synth data/synth/manifest.jsonl --out models/llmvqa-mini

Stages 2–3 train the dimension questions on the synth corpus as it comes: for most dimensions 83–95%
of its clips are "excellent" (no degradation of that kind), so the answers learned to say
"excellent" almost always (balanced accuracy at chance). This stage trains the same answers on
class-balanced draws: each example picks a dimension, then one of the levels its clips have (each
level equally often), then a clip of that level; the loss is the soft level cross-entropy plus the
squared error of the expected score against the corpus' target (1 + 4 × the 0–1 dimension score).

What it trains: the stats-token MLPs of the main projectors (they read the measured statistics of
each stream) and, with ``lora_lr`` > 0, the main LoRA adapter. The human prior's slot stays as it
is; the scorer (overall score, groups, prompt alignment: ``llmvqa.train.human``) is not touched, so
the human-agreement numbers of the model do not change. Output: the input model with its main
projectors and adapter replaced.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from llmvqa.errors import DataError
from llmvqa.levels import LEVELS, level_of_score


@dataclass(frozen=True)
class DimensionItem:
    """One clip of the synth corpus with its dimension targets."""

    path: Path
    prompt: str | None
    targets: dict[str, float]
    """Dimension name → target on 1–5 (1 + 4 × the corpus' 0–1 score)."""


def load_synth_items(manifest: str | Path, split: str = "train") -> list[DimensionItem]:
    """The clips of one split of a synth manifest (``llmvqa sig synth``) with their dimension targets."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise DataError(str(manifest), "not found", "pass the manifest.jsonl that `llmvqa sig synth` wrote")
    items = []
    for i, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if rec.get("split") != split:
                continue
            targets = {k: 1.0 + 4.0 * float(v) for k, v in rec["scores"].items() if k != "overall"}
            items.append(DimensionItem(manifest.parent / rec["video"], rec.get("prompt") or None, targets))
        except (ValueError, KeyError, TypeError) as err:
            raise DataError(f"{manifest}:{i}", f"bad record ({err})", "re-run llmvqa sig synth") from err
    if not items:
        raise DataError(str(manifest), f"has no clips in split {split!r}", "use a split the manifest has")
    return items


@dataclass
class DimensionStageConfig:
    steps: int = 240
    """Optimizer steps (one batch each)."""
    batch_size: int = 8
    lr: float = 1e-3
    """Learning rate of the main projectors' stats MLPs."""
    lora_lr: float = 1e-4
    """Learning rate of the main LoRA adapter (0: frozen)."""
    mse_weight: float = 1.0
    ce_weight: float = 1.0
    seed: int = 0
    dimensions: tuple[str, ...] = field(default_factory=tuple)
    """Dimension keys to train (empty: every dimension of the prompt version whose clips have ≥ 2 levels and that
    the scorer does not read)."""

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 1 or self.lr < 0 or self.lora_lr < 0:
            raise ValueError("the dimension stage needs steps ≥ 0, batch_size ≥ 1 and learning rates ≥ 0")


def balanced_draws(items: Sequence[DimensionItem], dimensions: Sequence[str], n: int,
                   rng: np.random.Generator) -> list[tuple[int, str]]:
    """``n`` (item index, dimension) pairs: a dimension uniformly, then a level uniformly among those its
    items have (the level of the target, ``level_of_score``), then an item of that level."""
    by_level = {d: {} for d in dimensions}
    for i, it in enumerate(items):
        for d in dimensions:
            if d in it.targets:
                by_level[d].setdefault(level_of_score(it.targets[d]), []).append(i)
    out = []
    for _ in range(n):
        d = dimensions[int(rng.integers(len(dimensions)))]
        levels = sorted(by_level[d], key=LEVELS.index)
        pool = by_level[d][levels[int(rng.integers(len(levels)))]]
        out.append((pool[int(rng.integers(len(pool)))], d))
    return out


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def tune_dimensions(model_dir: str | Path, items: Sequence[DimensionItem], features_of: Callable, out_dir: str | Path,
                    cfg: DimensionStageConfig | None = None, log: Callable[[str], None] | None = None) -> Path:
    """Train the main model's dimension answers on class-balanced draws of ``items`` and write the model
    (``model_dir`` with new main projectors and adapter) to ``out_dir``. ``features_of(item)`` →
    (VideoFeatures, prompt statistics)."""
    import torch

    from llmvqa.dimensions import load_dimensions
    from llmvqa.model.modeling import QualityLLM
    from llmvqa.train.human import _example
    from llmvqa.train.losses import soft_level_ce

    cfg = cfg or DimensionStageConfig()
    log = log or (lambda _m: None)
    src, out = Path(model_dir), Path(out_dir)
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = QualityLLM.from_pretrained(src, is_trainable=True, scorer=False)
    version = model.cfg.prompt_version
    by_scorer = set(read_json(src / "scorer" / "config.json").get("scorer_reads") or []) if (src / "scorer").is_dir() else set()
    known = {d.key: d.name for d in load_dimensions(version).dimensions.values() if f"dimension:{d.name}" not in by_scorer}
    wanted = list(cfg.dimensions) or list(known)
    dims = [d for d in wanted if d in known and len({level_of_score(it.targets[d]) for it in items if d in it.targets}) > 1]
    if not dims:
        raise DataError("dimension stage", "no dimension has clips of two or more levels", "use a graded synth corpus")
    cache: dict[int, tuple] = {}

    def feats(i: int):
        if i not in cache:
            f, ps = features_of(items[i])
            cache[i] = (f, model.input_stats(f, ps))
        return cache[i]

    model.train()
    stats_params = [p for n, p in model.projectors.named_parameters() if ".stats." in n]
    lora = [p for n, p in model.named_parameters() if "lora_" in n] if cfg.lora_lr > 0 else []
    for p in model.parameters():
        p.requires_grad_(False)
    params = [*stats_params, *lora]
    for p in params:
        p.requires_grad_(True)
    groups = [{"params": stats_params, "lr": cfg.lr}] + ([{"params": lora, "lr": cfg.lora_lr}] if lora else [])
    optim = torch.optim.AdamW(groups, weight_decay=0.0)
    warm = max(1, cfg.steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(optim, lambda s: min(1.0, (s + 1) / warm))
    for step in range(cfg.steps):
        draws = balanced_draws(items, dims, cfg.batch_size, rng)
        exs, tgt = [], []
        for i, d in draws:
            f, stats = feats(i)
            prompt = items[i].prompt
            exs.append(_example(model, f"dimension:{known[d]}", f, stats, prompt, version))
            tgt.append(items[i].targets[d])
        res = model.forward(model.collator(exs))
        t = torch.tensor(tgt, dtype=res["expected_score"].dtype)
        loss = (cfg.mse_weight * torch.mean(((res["expected_score"] - t) / 4.0) ** 2)
                + cfg.ce_weight * soft_level_ce(res["level_logits"], t))
        optim.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optim.step()
        sched.step()
        if step % 20 == 0 or step == cfg.steps - 1:
            log(f"dimension stage step {step + 1}/{cfg.steps}: loss {loss.item():.4f}")
    model.eval()
    if src.resolve() != out.resolve():
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(src, out, ignore=shutil.ignore_patterns("adapter", "projectors.safetensors"))
    shutil.rmtree(out / "adapter", ignore_errors=True)
    model.interval = None  # the model's own files (interval, prior, scorer) stay as they were copied
    model.prior = None
    model.save_pretrained(out)
    (out / "config.json").write_text((src / "config.json").read_text(encoding="utf-8"), encoding="utf-8")
    state = {"stage": "dimensions", "base": str(src), "clips": len(items), "dimensions": dims, "steps": cfg.steps,
             "seconds": time.perf_counter() - t0, "settings": {k: v for k, v in vars(cfg).items()}}
    (out / "dimension_stage.json").write_text(json.dumps(state, indent=2, default=list), encoding="utf-8")
    log(f"dimension stage done in {state['seconds']:.0f} s → {out}")
    return out


__all__ = ["DimensionItem", "DimensionStageConfig", "balanced_draws", "load_synth_items", "tune_dimensions"]
