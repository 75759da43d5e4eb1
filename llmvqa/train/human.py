"""Human calibration: the stage that teaches the scorer what people see in AI-generated video.

    llmvqa calibrate --model runs/mini/stage3/final --ratings ../shared/data/fetv_dev \
        --synth data/synth/manifest.jsonl --out models/llmvqa-mini

Input: a trained checkpoint (stages 1–3), human-rated clips (``labels.csv``: name, model, prompt, static,
temporal, alignment on 1–5, FETV's layout) and, optionally, degradation chains of the synth corpus.
Output: a checkpoint whose

- ``prior.safetensors`` is the human prior (``llmvqa.model.prior``): a ridge probe of the encoder
  features fitted to all the ratings — with chains, ranked so that a degraded clip scores below its own
  clean clip on the rating its degradation hurts (``HumanPrior.fit_ranked``);
- ``scorer/`` is the base checkpoint whose stats MLPs and prior directions are trained to read, from the
  prior's estimates alone (feature tokens and raw statistics gated off), the levels people give: overall ←
  mean of static and temporal, technical group ← static, motion group ← temporal, semantic group and
  prompt_alignment ← alignment (``HUMAN_ASPECTS``). Reading steps (random estimates, exact targets), human
  steps (every clip's estimate from a prior fitted *without that clip's prompt*, the human ratings; MSE +
  PLCC + 0.3 × rank + soft level CE) and chain steps (ranks inside a chain);
- ``interval.json`` is a first interval of the overall score from the cross-fitted prior's errors;
  ``eval/human_cv.py --write-interval`` replaces it with the calibrated model's held-out errors (train.sh does);
- the main adapter (dimensions, justifications, chat) is the base checkpoint's, unchanged.

Rated clips, folds and chain pairs: ``llmvqa.train.human_data``.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from llmvqa.corpus.chains import ranked_chains
from llmvqa.model.prior import (
    DEFAULT_ALPHA,
    DEFAULT_MARGIN,
    DEFAULT_OUTSIDE,
    DEFAULT_PAIR_WEIGHT,
    PRIOR_TARGETS,
    HumanPrior,
    prior_input,
    prior_stats,
)
from llmvqa.train.human_data import (
    CHAIN_RATINGS,
    FeaturesOf,
    RatedClip,
    chain_pairs,
    cross_fitted,
    features_from_cache,
    load_rated,
    prompt_folds,
)

HUMAN_ASPECTS: dict[str, tuple[str, ...]] = {
    "overall": ("static", "temporal"),
    "group:technical": ("static",),
    "group:motion": ("temporal",),
    "group:semantic": ("alignment",),
    "dimension:prompt_alignment": ("alignment",),
}
"""Aspect the scorer reads → the human ratings whose mean is its target."""


def target(aspect: str, ratings: dict[str, float]) -> float:
    """The human target of an aspect (``HUMAN_ASPECTS``) on 1–5."""
    return float(np.mean([ratings[t] for t in HUMAN_ASPECTS[aspect]]))


@dataclass
class CalibrationConfig:
    """Settings of the human calibration stage."""

    steps: int = 60
    """Optimizer steps (each one batch of one aspect)."""
    batch_size: int = 8
    """Clips per batch (PLCC and rank losses correlate within a batch)."""
    trainable: str = "stats"
    """What the scorer trains: "stats" (the stats-token MLPs only: they read the statistics and the prior,
    so the scorer cannot memorize clips through their 2,600 feature inputs), "stats+lora", "projectors"
    (all projectors) or "projectors+lora"."""
    lr: float = 2e-4
    """AdamW learning rate of the LoRA weights (trainable "projectors+lora"), warmup over the first 10% of steps."""
    projector_lr: float = 1e-3
    """Learning rate of the projectors (with the raw statistics gated off, their stats MLPs see only the prior's
    estimate, so a larger step cannot memorize clips; at 1e-4 and 30 steps the scorer barely read the slots)."""
    prior_lr: float = 3e-3
    """Learning rate of the prior directions (``StreamProjector.prior_dir``)."""
    mse_weight: float = 1.0
    """Weight of the mean squared error of the expected score (on 1–5 divided by 4)."""
    plcc_weight: float = 1.0
    rank_weight: float = 0.3
    token_gate: float = 0.0
    """Scale of the scorer's feature tokens. 0: the scorer reads the statistics tokens only (the statistics and
    the prior, which the feature tokens feed): the base model's reading of the feature tokens runs against
    people on AI video (fetv_dev SRCC −0.2), and a few dozen rated clips cannot retrain it (eval/human_cv.py)."""
    stats_gate: float = 0.0
    """Scale of the raw statistics in the scorer's stats tokens (streams not in ``open_stats``). 0: those tokens carry the
    prior's estimate only.
    The statistics still reach the score through the prior (they are among its inputs, fitted to people and ranked
    by the chains); the base model's own reading of them was trained on formula targets: with it open the
    calibrated scorer ordered 38% of the held-out chain pairs, the prior it reads 74% (eval/synth_chains.py)."""
    open_stats: tuple[str, ...] = ("semantic",)
    """Streams whose raw statistics the scorer still reads. The semantic stream's (semantic consistency, the
    prompt-alignment statistic) carry what the alignment estimate misses and no degradation chain acts on them:
    with every stream closed, prompt alignment ~ alignment fell from 0.44 to 0.15 on fetv_dev's held-out folds."""
    warm_gain: float = 1.0
    warm_batches: int = 3
    """Batches the warm start's gradient is averaged over."""
    """First-order score change (levels) per level step of the prior estimate at the start (``_warm_start``)."""
    ce_weight: float = 0.5
    """Weight of the cross-entropy against the soft level targets (``losses.soft_level_ce``)."""
    alpha: float = DEFAULT_ALPHA
    """Ridge penalty of the prior."""
    inner_folds: int = 5
    """Prompt-grouped folds of the cross-fitted prior estimates the scorer trains on."""
    read_steps: int = 3
    """Reading steps per cycle: random prior estimates in the stats slots, their aspect mix as target."""
    read_range: tuple[float, float] = (1.3, 4.9)
    """Range of the random estimates of reading steps (1–5 scale)."""
    read_near: float = 0.5
    """Share of reading examples whose estimates are drawn around the rated clips' own (cross-fitted) estimates
    (each estimate plus normal noise of ``read_jitter`` levels) instead of uniformly over ``read_range``: the rated
    clips' estimates crowd into a few tenths of a level, where the reading must be finest."""
    read_jitter: float = 0.3
    read_rank_weight: float = 0.3
    """Weight of the rank loss (``losses.rank_loss``) on reading batches: the order of close estimates, which a
    squared error of a few hundredths barely sees."""
    read_extra_steps: int = 60
    """Most extra reading steps after ``steps`` while the reading check (``reading_check``) fails: its SRCC below
    ``read_check_srcc`` or its mean error beyond ±``read_check_bias`` levels (0: none). Without them the six fold
    scorers of eval/human_cv.py sat −0.97 … +0.32 levels off their prior and one read it at SRCC 0.10; with
    these defaults −0.10 … −0.45, SRCC 0.73–0.99 inside the folds (model card)."""
    read_check_srcc: float = 0.9
    read_check_bias: float = 0.15
    no_prompt_share: float = 0.3
    """Share of reading examples posed without a prompt (no alignment estimate), as `rate` without --prompt does."""
    human_steps: int = 1
    """Human steps per cycle: rated clips, their cross-fitted estimates, the human ratings as targets."""
    chain_steps: int = 1
    """Chain steps per cycle (when chains are given): ranks inside degradation chains."""
    chain_batch: int = 2
    """Chains per chain step (each contributes all its strengths)."""
    chain_margin: float = 1.5
    """Score gap (1–5 scale) a full-strength degradation should open below its clean clip in the scorer's chain
    steps."""
    prior_margin: float = DEFAULT_MARGIN
    """Gap (1–5) a full-strength degradation should open in the prior's estimate of the rating it hurts
    (``HumanPrior.fit_ranked``; eval/prior_pairs.py)."""
    pair_weight: float = DEFAULT_PAIR_WEIGHT
    """Weight of one chain pair in the prior's fit (a rated clip weighs 1)."""
    prior_outside: float | None = DEFAULT_OUTSIDE
    """Range hinges of the prior (``HumanPrior.fit_ranked``'s ``outside``; None: none, release 4's setting). With
    margin 0.35 they rank more chain pairs; the scorer follows them once it reads finely (``read_*``; model card)."""
    coverage: float = 0.8
    """Nominal coverage of the stated interval of the overall score."""
    seed: int = 0
    aspects: tuple[str, ...] = field(default_factory=lambda: tuple(HUMAN_ASPECTS))

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 2:
            raise ValueError(f"calibration needs steps ≥ 0 and batch_size ≥ 2, got {self.steps}, {self.batch_size}")
        if self.trainable not in ("stats", "stats+lora", "projectors", "projectors+lora"):
            raise ValueError(f"trainable must be stats, stats+lora, projectors or projectors+lora, got {self.trainable!r}")
        if self.read_steps + self.human_steps < 1:
            raise ValueError("a calibration cycle needs at least one reading or human step")
        if not 0 < self.coverage < 1:
            raise ValueError(f"coverage must lie in (0, 1), got {self.coverage}")
        unknown = [a for a in self.aspects if a not in HUMAN_ASPECTS]
        if unknown:
            raise ValueError(f"unknown aspects {unknown}; known: {list(HUMAN_ASPECTS)}")


def calibrate(base_dir: str | Path, clips: Sequence[RatedClip], features_of: FeaturesOf, out_dir: str | Path,
              cfg: CalibrationConfig | None = None, log: Callable[[str], None] | None = None,
              chains: Sequence | None = None) -> Path:
    """Fit the prior on ``clips``, train the scorer from ``base_dir`` and write the model to ``out_dir``.

    chains: degradation chains (``llmvqa.corpus.chains.Chain``) whose clean clip's quality is unknown:
    they teach relative ranks only (a stronger degradation scores lower, on the overall score and
    on the group it hurts)."""
    import torch

    from llmvqa.model.modeling import QualityLLM
    from llmvqa.train.losses import plcc_loss, rank_loss, soft_level_ce

    cfg = cfg or CalibrationConfig()
    log = log or (lambda _m: None)
    base, out = Path(base_dir), Path(out_dir)
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    feats = [features_of(c) for c in clips]
    x = np.stack([prior_input(f, ps) for f, ps in feats])  # (N, D)
    y = np.array([[c.ratings[t] for t in PRIOR_TARGETS] for c in clips])  # (N, 3)
    folds = prompt_folds([c.prompt for c in clips], cfg.inner_folds, cfg.seed)
    info = {"dataset": str(Path(clips[0].path).parent.parent.name), "targets_of": {"prior_" + t: t for t in PRIOR_TARGETS}}
    chains = ranked_chains(list(chains or []))  # a degradation that did not change its clip has nothing to rank
    pairs = chain_pairs(chains, cfg.prior_margin) if chains else None
    # (N, 3): what the scorer sees while training
    oof = cross_fitted(x, y, folds, cfg.alpha, pairs, cfg.pair_weight, cfg.prior_outside)
    if pairs is None:
        prior = HumanPrior.fit(x, y, cfg.alpha, info=info)
    else:  # degradations lower the estimate of the rating they hurt: a degraded clip below its own clean clip
        prior = HumanPrior.fit_ranked(x, y, *pairs, alpha=cfg.alpha, weight=cfg.pair_weight, outside=cfg.prior_outside,
                                      info={**info, "chains": len(chains), "margin": cfg.prior_margin})

    model = QualityLLM.from_pretrained(base, is_trainable=True, scorer=False)
    model.prior = None  # stats are passed explicitly below (cross-fitted)
    model.interval = None  # the interval belongs to the calibrated model (written below), not to its scorer
    model.train()
    lora = [p for n, p in model.named_parameters() if "lora_" in n] if cfg.trainable.endswith("+lora") else []
    direction = [p for n, p in model.projectors.named_parameters() if n.endswith("prior_dir")]
    proj = [p for n, p in model.projectors.named_parameters()
            if not n.endswith("prior_dir") and (cfg.trainable.startswith("projectors") or ".stats." in n)]
    for p in model.parameters():
        p.requires_grad_(False)
    params = [*lora, *proj, *direction]
    for p in params:
        p.requires_grad_(True)
    groups = [{"params": proj, "lr": cfg.projector_lr}, {"params": direction, "lr": cfg.prior_lr}]
    groups += [{"params": lora, "lr": cfg.lr}] if lora else []
    optim = torch.optim.AdamW(groups, weight_decay=0.0)
    warm = max(1, cfg.steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(optim, lambda s: min(1.0, (s + 1) / warm))
    version = model.cfg.prompt_version
    stats = [{**ps, **prior_stats(dict(zip(PRIOR_TARGETS, oof[i], strict=True)))} for i, (_, ps) in enumerate(feats)]
    chain_stats = [[{**ps, **prior.stats(f, ps)} for f, ps in zip(ch.features, ch.prompt_stats or [{}] * len(ch.features),
                                                                  strict=True)] for ch in chains]
    # reading steps draw from the rated clips and the chains' clean clips (a degraded clip must not learn
    # "follow the prior whatever the picture shows")
    pool = [(f, ps, c.prompt or None) for (f, ps), c in zip(feats, clips, strict=True)]
    pool += [(ch.features[0], {}, None) for ch in chains if ch.strengths[0] == 0]
    with torch.no_grad():
        for stream, p in model.projectors.items():
            p.token_gate.fill_(cfg.token_gate)
            p.stats_gate.fill_(1.0 if stream in cfg.open_stats else cfg.stats_gate)
    _warm_start(model, pool, cfg, rng, version)
    def update(loss) -> None:
        optim.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optim.step()

    kinds = _step_kinds(cfg, bool(chains))
    counts = dict.fromkeys(("read", "human", "chain"), 0)
    for step in range(cfg.steps):
        kind = kinds[step % len(kinds)]
        if kind == "chain":
            loss = _chain_loss(model, chains, chain_stats, counts["chain"], cfg, rng, version)
        elif kind == "read":
            loss = _read_loss(model, pool, cfg, rng, version, near=oof)
        else:
            aspect = cfg.aspects[counts["human"] % len(cfg.aspects)]
            pick = rng.choice(len(clips), size=min(cfg.batch_size, len(clips)), replace=False)
            exs = [_example(model, aspect, feats[i][0], stats[i], clips[i].prompt or None, version) for i in pick]
            res = model.forward(model.collator(exs))
            pred = res["expected_score"]  # (B,) on 1–5
            tgt = torch.tensor([target(aspect, clips[i].ratings) for i in pick], dtype=pred.dtype)
            loss = (cfg.mse_weight * torch.mean(((pred - tgt) / 4.0) ** 2) + cfg.plcc_weight * plcc_loss(pred, tgt)
                    + cfg.rank_weight * rank_loss(pred, tgt) + cfg.ce_weight * soft_level_ce(res["level_logits"], tgt))
        counts[kind] += 1
        update(loss)
        sched.step()
        if step % 10 == 0 or step == cfg.steps - 1:
            log(f"calibrate step {step + 1}/{cfg.steps} ({kind}): loss {loss.item():.4f}")

    model.eval()
    reading = reading_check(model, pool, oof, cfg, version)
    extra = 0
    while extra < cfg.read_extra_steps and (reading["srcc"] < cfg.read_check_srcc
                                            or abs(reading["mean_error"]) > cfg.read_check_bias):
        model.train()
        for _ in range(min(10, cfg.read_extra_steps - extra)):  # at the full learning rate, reading only
            update(_read_loss(model, pool, cfg, rng, version, near=oof))
            extra += 1
        model.eval()
        reading = reading_check(model, pool, oof, cfg, version)
    reading["extra_steps"] = extra
    log(f"reading check: overall |score − estimate| {reading['mean_abs_error']:.3f} (mean {reading['mean_error']:+.3f}) "
        f"on the rated clips' estimates, SRCC {reading['srcc']:.3f}; {extra} extra reading steps")
    out.mkdir(parents=True, exist_ok=True)
    scorer_dir = out / "scorer"
    shutil.rmtree(scorer_dir, ignore_errors=True)
    model.save_pretrained(scorer_dir)
    meta = json.loads((scorer_dir / "config.json").read_text(encoding="utf-8"))
    meta["scorer_reads"] = list(cfg.aspects)
    (scorer_dir / "config.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    for name in ("config.json", "projectors.safetensors"):
        if (base / name).resolve() != (out / name).resolve():
            shutil.copy2(base / name, out / name)
    if (base / "adapter").resolve() != (out / "adapter").resolve():
        shutil.rmtree(out / "adapter", ignore_errors=True)
        shutil.copytree(base / "adapter", out / "adapter")
    prior.save(out)
    overall_oof = oof[:, :2].mean(axis=1)
    overall_y = y[:, :2].mean(axis=1)
    half = float(np.quantile(np.abs(overall_oof - overall_y), cfg.coverage))
    interval = {"coverage": cfg.coverage, "half_width": half, "fitted_on": len(clips),
                "how": "quantile of the cross-fitted prior's absolute error on the overall target"}
    (out / "interval.json").write_text(json.dumps(interval, indent=2), encoding="utf-8")
    state = {"stage": "calibrate", "base": str(base), "clips": len(clips), "steps": cfg.steps,
             "seconds": time.perf_counter() - t0, "reading": reading, "settings": {k: v for k, v in vars(cfg).items()}}
    (out / "calibration.json").write_text(json.dumps(state, indent=2, default=list), encoding="utf-8")
    log(f"calibrated in {state['seconds']:.0f} s → {out}")
    return out


def reading_check(model, pool, estimates: np.ndarray, cfg: CalibrationConfig, version: str, n: int = 32) -> dict:
    """How faithfully the trained scorer reads the prior: the overall score asked with ``n`` of the rated clips'
    own estimates (``estimates``, cross-fitted; ``pool``: the same clips first, as (features, prompt statistics,
    prompt)), asked as ``llmvqa rate --prompt`` asks it, against their overall target
    (mean of static and temporal): mean |score − target|, mean signed error and SRCC."""
    import torch
    from scipy.stats import spearmanr

    from llmvqa.model.prior import prior_stats

    rng = np.random.default_rng(cfg.seed + 1)
    idx = rng.choice(len(estimates), size=min(n, len(estimates)), replace=False)
    scores = []
    with torch.no_grad():
        for chunk in np.array_split(idx, max(1, len(idx) // cfg.batch_size)):
            exs = [_example(model, "overall", pool[i][0], {**pool[i][1], **prior_stats(dict(zip(PRIOR_TARGETS, estimates[i],
                                                                                              strict=True)))},
                            pool[i][2], version) for i in chunk]
            scores += model.forward(model.collator(exs))["expected_score"].tolist()
    score, tgt = np.array(scores), estimates[idx, :2].mean(axis=1)
    return {"clips": len(idx), "mean_abs_error": float(np.mean(np.abs(score - tgt))),
            "mean_error": float(np.mean(score - tgt)), "srcc": float(spearmanr(score, tgt)[0])}


def _step_kinds(cfg: CalibrationConfig, with_chains: bool) -> list[str]:
    """The repeating pattern of step kinds: reading steps, human steps, chain steps."""
    kinds = ["read"] * cfg.read_steps + ["human"] * cfg.human_steps
    if with_chains and cfg.chain_steps:
        kinds += ["chain"] * cfg.chain_steps
    return kinds


def _example(model, aspect: str, features, stats: dict, prompt: str | None, version: str):
    from llmvqa.model.collate import encode_conversation
    from llmvqa.prompts import aspect_query

    question, prefix = aspect_query(aspect, prompt, version)
    return encode_conversation(model._user_turn(question, "rating", prompt), features, model.template, prompt=prompt,
                               prompt_stats=stats, open_answer=prefix)


WARM_ASPECTS = {"technical": ("group:technical", "overall"), "motion": ("group:motion", "overall"),
                "semantic": ("group:semantic", "dimension:prompt_alignment")}
"""The aspects each stream's prior estimate should raise (their summed score gradient starts its direction)."""


def _warm_start(model, pool, cfg: CalibrationConfig, rng, version: str) -> None:
    """Start each stream's prior direction along the gradient of the expected scores it should raise
    (``WARM_ASPECTS``) with respect to the stats token, averaged over ``warm_batches`` batches and scaled
    so that one level step of the estimate moves them by about ``cfg.warm_gain`` levels to first order;
    training refines it."""
    import torch

    from llmvqa.model.prior import PRIOR_OF_STREAM

    idx = rng.choice(len(pool), size=min(cfg.batch_size * cfg.warm_batches, len(pool)), replace=False)
    for stream, aspects in WARM_ASPECTS.items():
        proj = model.projectors[stream]
        if proj.prior_dir is None:
            continue
        proj.prior_dir.grad = None
        for aspect in aspects:
            for chunk in np.array_split(idx, max(1, len(idx) // cfg.batch_size)):
                exs = [_example(model, aspect, pool[i][0], {**pool[i][1], PRIOR_OF_STREAM[stream]: 4.0}, pool[i][2],
                                version) for i in chunk]  # estimate 4.0 → slot value 1
                (model.forward(model.collator(exs))["expected_score"].sum() / (len(idx) * len(aspects))).backward()
        g = proj.prior_dir.grad.detach().clone()
        with torch.no_grad():
            proj.prior_dir.copy_(cfg.warm_gain * g / g.pow(2).sum().clamp_min(1e-12))
        model.zero_grad(set_to_none=True)


def _read_estimates(cfg: CalibrationConfig, rng, near: np.ndarray | None) -> np.ndarray:
    """One reading example's estimates (``PRIOR_TARGETS`` order, 1–5): uniform over ``cfg.read_range`` or, for a
    ``cfg.read_near`` share, a random row of ``near`` (the rated clips' estimates) plus noise, kept in the range."""
    lo, hi = cfg.read_range
    if near is not None and len(near) and rng.random() < cfg.read_near:
        row = near[int(rng.integers(len(near)))]
        return np.clip(row + rng.normal(0.0, cfg.read_jitter, size=len(PRIOR_TARGETS)), lo, hi)
    return rng.uniform(lo, hi, size=len(PRIOR_TARGETS))


def _read_loss(model, pool, cfg: CalibrationConfig, rng, version: str, near: np.ndarray | None = None):
    """Teach the scorer to read the prior: random estimates in the stats slots (``_read_estimates``), the
    aspect's own mix of them as the target (MSE on the 1–5 scale / 4, soft level CE and, with
    ``cfg.read_rank_weight``, the rank loss). Content and estimate are independent here, so the only way to
    the target is the slot."""
    import torch

    from llmvqa.model.prior import prior_stats
    from llmvqa.train.losses import rank_loss, soft_level_ce

    exs, tgt = [], []
    for i in rng.choice(len(pool), size=min(cfg.batch_size, len(pool)), replace=False):
        f, ps, prompt = pool[i]
        est = dict(zip(PRIOR_TARGETS, _read_estimates(cfg, rng, near), strict=True))
        aspects = cfg.aspects
        if rng.random() < cfg.no_prompt_share:  # as rated without a prompt: no alignment slot, quality aspects only
            ps = {k: v for k, v in ps.items() if k != "prompt_alignment"}
            prompt = None
            est.pop("alignment")
            aspects = tuple(a for a in cfg.aspects if "alignment" not in HUMAN_ASPECTS[a]) or cfg.aspects
        aspect = aspects[int(rng.integers(len(aspects)))]
        exs.append(_example(model, aspect, f, {**ps, **prior_stats(est)}, prompt, version))
        tgt.append(target(aspect, est))
    out = model.forward(model.collator(exs))
    t = torch.tensor(tgt, dtype=out["expected_score"].dtype)
    loss = torch.mean(((out["expected_score"] - t) / 4.0) ** 2) + cfg.ce_weight * soft_level_ce(out["level_logits"], t)
    return loss + cfg.read_rank_weight * rank_loss(out["expected_score"], t) if cfg.read_rank_weight else loss


def _chain_loss(model, chains, chain_stats, k: int, cfg: CalibrationConfig, rng, version: str):
    """Rank loss inside each of ``cfg.chain_batch`` chains: targets −margin × strength (relative only),
    asked as the overall score (even chain steps) or the chain's group (odd ones)."""
    import torch

    from llmvqa.train.losses import rank_loss

    picks = rng.choice(len(chains), size=min(cfg.chain_batch, len(chains)), replace=False)
    exs, groups = [], []
    for c in picks:
        ch = chains[c]
        aspect = "overall" if k % 2 == 0 else f"group:{ch.group}"
        exs += [_example(model, aspect, f, st, None, version) for f, st in zip(ch.features, chain_stats[c], strict=True)]
        groups.append(torch.tensor([-cfg.chain_margin * s for s in ch.strengths]))
    pred = model.forward(model.collator(exs))["expected_score"]  # (sum of chain lengths,)
    losses, start = [], 0
    for tgt in groups:
        losses.append(rank_loss(pred[start:start + len(tgt)], tgt.to(pred.dtype)))
        start += len(tgt)
    return torch.stack(losses).mean()


# the data helpers live in llmvqa.train.human_data; they are re-exported here for the callers of this stage
__all__ = ["CHAIN_RATINGS", "HUMAN_ASPECTS", "CalibrationConfig", "FeaturesOf", "RatedClip", "calibrate", "chain_pairs",
           "cross_fitted", "features_from_cache", "load_rated", "prompt_folds", "target"]
