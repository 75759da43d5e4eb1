"""The dimension stage: dimension answers that tell the levels apart.

    llmvqa tune-dimensions --model runs/mini/calibrated --synth data/synth/manifest.jsonl --out models/llmvqa-mini

Stages 2–3 train the dimension questions on the synth corpus as it comes: for most dimensions 83–95%
of its clips are "excellent" (no degradation of that kind), so the answers learned to say
"excellent" almost always (balanced accuracy at chance). This stage

1. fits the dimension probe (``llmvqa.model.dimension_probe``): per dimension a logistic
   regression (class-weighted) over the measured statistics of the corpus' train split, whose estimate (1–5) the model
   reads in the prior slot of the dimension's stream when it is asked about that dimension;
2. trains the main model to read it: the stats-token MLPs and prior directions of the main projectors
   (and, with ``lora_lr`` > 0, the main LoRA adapter) in reading steps — estimates in the slot, half uniform
   on 1–5 and half drawn from the probe's cross-fitted estimates (the values the slot holds at rating time,
   most near the top of the scale), the estimate as the target: the only way to it is the slot. Optional
   data steps (``data_steps`` > 0: class-balanced draws — a dimension, then one of its levels, then a clip of
   that level — with the cross-fitted estimate in the slot and the corpus' target) taught the answer to doubt
   the estimate and pulled clean clips to "good"; they are off by default. Loss: soft level cross-entropy plus
   the squared error of the expected score.

3. keeps the probe's statistics only for the dimensions whose answers beat always-the-majority-level by ≥ 0.10
   balanced accuracy on the val split (``select_dimensions``); the others get their base rate (the common level).

The scorer (overall score, groups, prompt alignment: ``llmvqa.train.human``), the human prior and the
interval are copied as they are, so the human-agreement numbers of the model do not change.

How faithfully the shipped reading repeats the estimate (release 5, synth test split, ``eval/dimension_probe.py
--model-answers``, column "answer at the probe's level"): at the probe's level in 90–98% of clips for nine
dimensions, the answer 0.08–0.22 under the estimate; semantic consistency asked with a prompt 39.5% (0.82 under it:
the reading tops out near 4.1–4.4). Tried in session 12 and reverted: measuring each dimension's mean reading
curve on 16 train clips (slot values 0.5–5.5) and asking through its inverse. The reading saturates at the top (a
slot past 5 answers no higher), so "excellent" estimates could not be lifted, and where the inverse did move the
answer the val margins did not improve (release 5's probe: 6 dimensions past +0.15 on val against 7 without the
inverse — compression +0.169 against +0.286; the balance-1.0 probe: 6 against 7). The downward bias of the reading
is part of why some answers beat the probe alone (balanced accuracy rewards the rare levels).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from llmvqa.corpus.manifest import read_manifest
from llmvqa.errors import DataError
from llmvqa.levels import LEVELS, WEIGHTS, level_of_score
from llmvqa.train.losses import soft_level_ce


@dataclass(frozen=True)
class DimensionItem:
    """One clip of the synth corpus with its dimension targets."""

    path: Path
    prompt: str | None
    targets: dict[str, float]
    """Dimension key → target on 1–5 (1 + 4 × the corpus' 0–1 score)."""
    source: str = ""
    """The clip's source video (cross-fitting folds keep a source together)."""


def load_synth_items(manifest: str | Path, split: str = "train") -> list[DimensionItem]:
    """The clips of one split of a synth manifest (``llmvqa sig synth``) with their dimension targets."""
    manifest = Path(manifest)
    items = []
    for rec in read_manifest(manifest, split):
        try:
            targets = {k: 1.0 + 4.0 * float(v) for k, v in rec["scores"].items() if k != "overall"}
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise DataError(f"{manifest} ({rec['video']})", f"bad `scores` ({err})", "re-run llmvqa sig synth") from err
        items.append(DimensionItem(manifest.parent / rec["video"], rec.get("prompt") or None, targets,
                                   str(rec.get("source") or "")))
    if not items:
        raise DataError(str(manifest), f"has no clips in split {split!r}", "use a split the manifest has")
    return items


INPUT_SETS = ("all", "stream")
"""What a dimension's probe may read: "all" — every statistic of the stats token, the ``PROBE_STATISTICS`` that
``PROBE_READERS`` gives the dimension, and the token summary; "stream" — only the statistics of its own stream
(its group), with the ``PROBE_STATISTICS`` it is given (no tokens, no other stream)."""


@dataclass
class DimensionStageConfig:
    steps: int = 300
    """Optimizer steps (one batch each)."""
    batch_size: int = 8
    lr: float = 1e-3
    """Learning rate of the main projectors' stats MLPs."""
    prior_lr: float = 3e-3
    """Learning rate of the main projectors' prior directions (the slot the estimate moves)."""
    lora_lr: float = 0.0
    """Learning rate of the main LoRA adapter (0: frozen; the justification and chat adapter stays as it was)."""
    read_steps: int = 1
    """Reading steps per cycle (random estimates in the slot, the estimate as target)."""
    data_steps: int = 0
    """Data steps per cycle (class-balanced clips, the probe's cross-fitted estimate, the corpus' target). Off by
    default: with balanced draws the answer learns to doubt the estimate and shrinks it toward the middle of the
    scale (clean clips read "good"); the probe already is the best estimate, so the model learns to read it."""
    read_range: tuple[float, float] = (1.0, 5.0)
    read_estimates: float = 0.5
    """Share of the reading steps' estimates drawn from the cross-fitted probe estimates of the drawn dimension
    (the values the slot holds at rating time, most of them near the top of the scale); the rest are uniform in
    ``read_range``."""
    no_prompt_share: float = 0.3
    """Share of the reading steps asked without the clip's text prompt (no prompt clause, no prompt statistics), as
    ``llmvqa rate`` asks when it is given none: a reading trained on prompted clips alone reads nothing right without
    one (release-4 candidate: clean 4 s clips answered fair to bad in every dimension)."""
    probe_kind: str = "trees"
    """"trees" (boosted trees over the statistics and a token summary) or "linear" (a logistic regression over the
    statistics): ``DimensionProbe.fit``."""
    probe_tokens: int = 32
    """Token-summary directions the trees read (0: statistics only)."""
    probe_c: float = 1.0
    """Inverse L2 strength of the probe's logistic regressions (linear)."""
    probe_balance: float | None = None
    """Class weights of the probe ∝ (1 / level share)^probe_balance (None: ``dimension_probe.DEFAULT_BALANCE``
    linear, ``TREE_BALANCE`` trees)."""
    probe_inputs: str = "all"
    """What each dimension's probe reads (``INPUT_SETS``): "all" (release 5: every statistic and the token summary),
    "stream" (its own stream's statistics only) or "cv": per dimension the one whose source-grouped cross-fitted
    estimates on the training clips tell its levels apart best (recorded in the probe's ``info["inputs_cv"]``).
    Session 13, "cv" with ``probe_extra``: exposure and colour chose "stream"; on the val split colour's answers rose
    (−0.003 → +0.094 on release 5's reading, +0.157 with the stage re-run) but exposure's fell (+0.182 → +0.099 / +0.104),
    six dimensions past +0.15 against seven either way (model card, dimension stage 6(d)–(e)), so the default stays."""
    inputs_min_gain: float = 0.02
    """With "cv", a dimension leaves "all" only for a set whose cross-fitted margin is higher by more than this
    (session 13, release 5's corpus: sharpness and flicker differed by 0.001–0.002 between the sets, noise;
    exposure and colour by 0.04)."""
    probe_extra: bool = False
    """The probe also reads the encoders' ``PROBE_STATISTICS`` (highlight_cast, channel_balance; feature version 4);
    False: only the statistics of the stats token, as release 5's probe."""
    probe_offsets: bool = False
    """Move each dimension's level thresholds after the fit: per-level logit offsets (``DimensionProbe.with_offsets``)
    chosen on the probe's source-grouped cross-fitted probabilities of the training clips to maximize balanced
    accuracy (``tune_level_offsets``), keeping at least ``offsets_min_recall`` of the clips of the dimension's
    majority level at that level."""
    offsets_min_recall: float = 0.85
    """See ``probe_offsets``: how many of the majority level's clips (mostly clean ones, "excellent") must keep
    their level — the false alarms the threshold move may add on clean footage are capped at 1 − this (on the
    training clips' cross-fitting). Session 14 (balance 1.0), dimensions of the probe alone past +0.15 on the train
    cross-fitting / val split: no floor 10 / 10 (the majority level kept in 75% / 62% of its clips at worst), 0.85
    10 / 10 (85% / 76%), 0.9 8 / 10, 0.95 8 / 9: 0.85 is the highest floor that keeps every dimension on both."""
    folds: int = 5
    """Source-grouped folds of the cross-fitted estimates the data steps use."""
    mse_weight: float = 1.0
    ce_weight: float = 1.0
    warm_gain: float = 1.0
    """The prior directions start along the gradient of the dimension scores, scaled to about this many levels
    per level of the estimate."""
    seed: int = 0
    dimensions: tuple[str, ...] = field(default_factory=tuple)
    """Dimension keys to train (empty: every dimension of the prompt version whose clips have ≥ 2 levels and that
    the scorer does not read)."""

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 1 or min(self.lr, self.prior_lr, self.lora_lr) < 0:
            raise ValueError("the dimension stage needs steps ≥ 0, batch_size ≥ 1 and learning rates ≥ 0")
        if not (0.0 <= self.read_estimates <= 1.0 and 0.0 <= self.no_prompt_share <= 1.0):
            raise ValueError("read_estimates and no_prompt_share are shares: 0–1")
        if self.probe_kind not in ("linear", "trees") or self.probe_tokens < 0:
            raise ValueError("probe_kind is 'linear' or 'trees', probe_tokens ≥ 0")
        if self.probe_inputs not in (*INPUT_SETS, "cv"):
            raise ValueError(f"probe_inputs is one of {(*INPUT_SETS, 'cv')}, got {self.probe_inputs!r}")
        if not 0.0 <= self.offsets_min_recall <= 1.0:
            raise ValueError("offsets_min_recall is a share: 0–1")
        if self.read_steps + self.data_steps < 1 or self.folds < 2:
            raise ValueError("a dimension-stage cycle needs a reading or data step, and at least 2 folds")


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
    """Fit the dimension probe on ``items``, train the main model to read it, and write the model (``model_dir``
    with the probe and new main projectors) to ``out_dir``. ``features_of(item)`` → (VideoFeatures, prompt stats)."""
    import torch

    from llmvqa.dimensions import load_dimensions
    from llmvqa.model.modeling import QualityLLM
    from llmvqa.model.prior import PRIOR_OF_STREAM
    from llmvqa.prompts import aspect_forms, aspect_prefix
    from llmvqa.train.human import _example

    cfg = cfg or DimensionStageConfig()
    log = log or (lambda _m: None)
    src, out = Path(model_dir), Path(out_dir)
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = QualityLLM.from_pretrained(src, is_trainable=True, scorer=False)
    version = model.cfg.prompt_version
    reads = read_json(src / "scorer" / "config.json").get("scorer_reads") or [] if (src / "scorer").is_dir() else []
    by_scorer = {aspect_prefix(f, version) for a in reads for f in aspect_forms(a, version)}  # by key or by name
    spec = {d.key: d for d in load_dimensions(version).dimensions.values()
            if aspect_prefix(f"dimension:{d.name}", version) not in by_scorer}
    wanted = list(cfg.dimensions) or list(spec)
    dims = [d for d in wanted if d in spec and len({level_of_score(it.targets[d]) for it in items if d in it.targets}) > 1]
    if not dims:
        raise DataError("dimension stage", "no dimension has clips of two or more levels", "use a graded synth corpus")
    log(f"dimension stage: {len(items)} clips, dimensions {dims}")
    feats = [features_of(it) for it in items]
    levels = {d: [level_of_score(it.targets.get(d, 5.0)) for it in items] for d in dims}
    probe, x = _fit_probe(feats, levels, cfg, len(items), [it.source for it in items])
    log(f"probe inputs: {probe.info['inputs']}"
        + (f" (cross-fitted margins {probe.info['inputs_cv']})" if "inputs_cv" in probe.info else ""))
    dims = [d for d in dims if d in probe.dimensions]
    oof = _cross_fitted(x, levels, [it.source for it in items], cfg, probe.dimensions, probe.basis,
                        probe_masks(x.shape[1], probe.basis, probe.extra, probe.info["inputs"]),
                        probe.offsets)  # (N, K)
    base_stats = [model.input_stats(f, ps) for f, ps in feats]  # the human prior's slots, as at rating time
    base_none = [model.input_stats(f, None) for f, _ in feats] if cfg.no_prompt_share > 0 else base_stats
    slot_of = {d: PRIOR_OF_STREAM[spec[d].group] for d in dims}

    def example(i: int, d: str, estimate: float, with_prompt: bool = True):
        f, _ = feats[i]
        stats = {**(base_stats[i] if with_prompt else base_none[i]), slot_of[d]: float(estimate)}
        return _example(model, f"dimension:{spec[d].name}", f, stats, items[i].prompt if with_prompt else None, version)

    model.train()
    stats_params = [p for n, p in model.projectors.named_parameters() if ".stats." in n]
    direction = [p for n, p in model.projectors.named_parameters() if n.endswith("prior_dir")]
    lora = [p for n, p in model.named_parameters() if "lora_" in n] if cfg.lora_lr > 0 else []
    for p in model.parameters():
        p.requires_grad_(False)
    params = [*stats_params, *direction, *lora]
    for p in params:
        p.requires_grad_(True)
    groups = [{"params": stats_params, "lr": cfg.lr}, {"params": direction, "lr": cfg.prior_lr}]
    groups += [{"params": lora, "lr": cfg.lora_lr}] if lora else []
    _warm_start(model, dims, spec, example, items, cfg, rng)
    optim = torch.optim.AdamW(groups, weight_decay=0.0)
    warm = max(1, cfg.steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(optim, lambda s: min(1.0, (s + 1) / warm))
    kinds = ["read"] * cfg.read_steps + ["data"] * cfg.data_steps
    for step in range(cfg.steps):
        kind = kinds[step % len(kinds)]
        draws = balanced_draws(items, dims, cfg.batch_size, rng)
        if kind == "read":
            est = rng.uniform(*cfg.read_range, size=len(draws))
            for j, (_, d) in enumerate(draws if cfg.read_estimates > 0 else ()):
                if rng.random() < cfg.read_estimates:  # a value the slot holds at rating time
                    est[j] = oof[int(rng.integers(len(oof))), probe.dimensions.index(d)]
            bare = rng.random(len(draws)) < cfg.no_prompt_share if cfg.no_prompt_share > 0 else np.zeros(len(draws), bool)
            exs = [example(i, d, e, not b) for (i, d), e, b in zip(draws, est, bare, strict=True)]
            tgt = est.tolist()
        else:
            exs = [example(i, d, oof[i, probe.dimensions.index(d)]) for i, d in draws]
            tgt = [items[i].targets[d] for i, d in draws]
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
            log(f"dimension stage step {step + 1}/{cfg.steps} ({kind}): loss {loss.item():.4f}")
    model.eval()
    if src.resolve() != out.resolve():
        shutil.rmtree(out, ignore_errors=True)
        top = str(src)  # the main adapter and projectors are written below; the scorer's own are copied
        shutil.copytree(src, out, ignore=lambda d, names: [n for n in names if d == top
                                                           and n in ("adapter", "projectors.safetensors")])
    shutil.rmtree(out / "adapter", ignore_errors=True)
    model.interval = None  # the model's own files (interval, prior, scorer) stay as they were copied
    model.prior = None
    model.dimension_probe = probe
    model.save_pretrained(out)
    (out / "config.json").write_text((src / "config.json").read_text(encoding="utf-8"), encoding="utf-8")
    state = {"stage": "dimensions", "base": str(src), "clips": len(items), "dimensions": dims, "steps": cfg.steps,
             "seconds": time.perf_counter() - t0, "settings": {k: v for k, v in vars(cfg).items()}}
    (out / "dimension_stage.json").write_text(json.dumps(state, indent=2, default=list), encoding="utf-8")
    log(f"dimension stage done in {state['seconds']:.0f} s → {out}")
    return out


def refit_probe(model_dir: str | Path, items: Sequence[DimensionItem], features_of: Callable,
                cfg: DimensionStageConfig | None = None) -> Path:
    """Fit the dimension probe of a model already trained to read it (``tune_dimensions``) again on ``items`` with
    ``cfg``'s probe settings, and write it into ``model_dir``: the reading does not depend on the probe's fit."""
    from llmvqa.model.dimension_probe import DimensionProbe

    cfg = cfg or DimensionStageConfig()
    model_dir = Path(model_dir)
    old = DimensionProbe.load(model_dir)
    if old is None:
        raise DataError(str(model_dir), "has no dimension probe to fit again", "run llmvqa tune-dimensions first")
    levels = {d: [level_of_score(it.targets.get(d, 5.0)) for it in items] for d in old.dimensions}
    probe, _ = _fit_probe([features_of(it) for it in items], levels, cfg, len(items), [it.source for it in items])
    probe.save(model_dir)
    state = read_json(model_dir / "dimension_stage.json")
    if "selection" in state:  # made on the probe replaced here: select again (--select-only)
        state["selection_before_refit"] = state.pop("selection")
    state["probe_refit"] = {"kind": cfg.probe_kind, "tokens": cfg.probe_tokens, "c": cfg.probe_c,
                            "balance": probe.info.get("balance"), "clips": len(items),
                            "offsets": cfg.probe_offsets, "offsets_min_recall": cfg.offsets_min_recall}
    (model_dir / "dimension_stage.json").write_text(json.dumps(state, indent=2, default=list), encoding="utf-8")
    return model_dir


READ_CLIPS = 300
"""Train-split clips on which ``tune_reading_centres`` measures the model's reading (about 2.5 s each on 2 cores)."""


def reading_bias(model, items: Sequence[DimensionItem], features_of: Callable,
                 dims: Sequence[str]) -> dict[str, dict[str, list[float]]]:
    """{dimension: {probe level: [answer − slot value, one per clip]}}: how far the model's answer (asked as
    ``answer_margins`` asks) lands from the value in its slot, by the level the probe gives the clip."""
    ask = _dimension_asker(model)
    probe = model.dimension_probe
    out: dict[str, dict[str, list[float]]] = {d: {lv: [] for lv in LEVELS} for d in dims}
    for it in items:
        f, ps = features_of(it)
        own = probe.estimates(f, ps)
        slot = probe.slot_values(f, ps) if probe.reading_centres else own
        for d, sc in zip(dims, ask(f, ps, it.prompt, dims), strict=True):
            out[d][level_of_score(own[d])].append(float(sc.score) - slot[d])
    return out


def centres_from_bias(bias: dict[str, list[float]], min_clips: int = 8, max_move: float = 0.8) -> list[float]:
    """5 reading centres (LEVELS order) from one dimension's ``reading_bias``: each level's weight moved against
    its clips' mean bias (at most ``max_move``, within 1–5); a level with fewer than ``min_clips`` clips keeps its
    weight."""
    out = []
    for lv, w in zip(LEVELS, WEIGHTS, strict=True):
        b = bias.get(lv) or []
        move = -float(np.mean(b)) if len(b) >= min_clips else 0.0
        out.append(float(np.clip(w + np.clip(move, -max_move, max_move), 1.0, 5.0)))
    return out


def tune_reading_centres(model_dir: str | Path, items: Sequence[DimensionItem], select_items: Sequence[DimensionItem],
                         features_of: Callable, clips: int = READ_CLIPS, seed: int = 0,
                         log: Callable[[str], None] | None = None) -> dict[str, list[float]]:
    """Centre each dimension's slot values where the model reads them as the probe's level. The reading was
    trained on estimates, not on this probe: on the synth val split release 6 answered temporal consistency a
    level above the probe's "good" in 45 of 364 clips (the answer 0.38 above the slot on average). On ``clips``
    clips of ``items`` (the train split) the answer's mean bias per dimension and probe level is measured
    (``reading_bias``) and the level's centre moved against it (``centres_from_bias``); a dimension keeps its
    centres only where its answers on ``select_items`` (the val split) then beat always-the-majority-level by more
    balanced accuracy asked one way (with the clip's prompt, or without it as ``llmvqa rate clip.mp4`` asks) and by
    no less the other way (chosen with the prompt alone, the first run kept sharpness for +0.009 on val, and on the
    test split asked without a prompt it fell from +0.168 to +0.143). Writes the probe and ``dimension_stage.json``
    (``reading_centres``) into ``model_dir``; returns the kept centres."""
    from llmvqa.model.modeling import QualityLLM

    log = log or (lambda _m: None)
    model_dir = Path(model_dir)
    model = QualityLLM.from_pretrained(model_dir)
    probe = model.dimension_probe
    if probe is None:
        raise DataError(str(model_dir), "has no dimension probe to centre", "run llmvqa tune-dimensions first")
    probe = model.dimension_probe = probe.with_reading_centres({})  # measure the plain reading
    dims = [d for d in probe.dimensions if d not in set(probe.info.get("base_rate_only", ()))]
    rng = np.random.default_rng(seed)
    measured = [items[i] for i in sorted(rng.choice(len(items), size=min(clips, len(items)), replace=False))]
    bias = reading_bias(model, measured, features_of, dims)
    centres = {d: centres_from_bias(bias[d]) for d in dims}
    moved = [d for d in dims if np.max(np.abs(np.subtract(centres[d], WEIGHTS))) >= 0.05]
    log(f"reading centres measured on {len(measured)} clips; moved: {moved}")
    ways = (True, False)
    before = {w: answer_margins(model, select_items, features_of, moved, w) if moved else {} for w in ways}
    model.dimension_probe = probe.with_reading_centres({d: centres[d] for d in moved})
    after = {w: answer_margins(model, select_items, features_of, moved, w) if moved else {} for w in ways}
    gain = {d: [after[w][d]["margin"] - before[w][d]["margin"] for w in ways] for d in moved}
    keep = {d: centres[d] for d in moved if max(gain[d]) > 0 and min(gain[d]) >= 0}
    for d in moved:
        log(f"dimension {d}: val margin with the prompt {before[True][d]['margin']:+.3f} → "
            f"{after[True][d]['margin']:+.3f}, without {before[False][d]['margin']:+.3f} → "
            f"{after[False][d]['margin']:+.3f} with centres {[round(c, 2) for c in centres[d]]} → "
            f"{'kept' if d in keep else 'not kept'}")
    probe.with_reading_centres(keep).save(model_dir)
    state = read_json(model_dir / "dimension_stage.json")
    state["reading_centres"] = {
        "clips": len(measured), "select_clips": len(select_items),
        "bias": {d: {lv: {"n": len(v), "mean": round(float(np.mean(v)), 4)} for lv, v in bias[d].items() if v}
                 for d in dims},
        "measured": {d: [round(c, 4) for c in centres[d]] for d in moved},
        "margins": {d: [round(before[True][d]["margin"], 4), round(after[True][d]["margin"], 4)] for d in moved},
        "margins_no_prompt": {d: [round(before[False][d]["margin"], 4), round(after[False][d]["margin"], 4)]
                              for d in moved},
        "kept": sorted(keep)}
    (model_dir / "dimension_stage.json").write_text(json.dumps(state, indent=2, default=list), encoding="utf-8")
    return keep


def _dimension_asker(model) -> Callable:
    """``ask(features, prompt_stats, prompt, dims)`` → the model's ratings of the dimensions ``dims`` (keys), each
    asked by its name as ``llmvqa rate`` asks, in one ``score_queries`` call."""
    from llmvqa.dimensions import load_dimensions
    from llmvqa.prompts import aspect_query

    version = model.cfg.prompt_version
    names = {k: d.name for k, d in load_dimensions(version).dimensions.items()}

    def ask(features, prompt_stats, prompt, dims):
        return model.score_queries(features, [aspect_query(f"dimension:{names[d]}", prompt, version) for d in dims],
                                   prompt=prompt, prompt_stats=prompt_stats)

    return ask


def answer_margins(model, items: Sequence[DimensionItem], features_of: Callable,
                   dims: Sequence[str], with_prompt: bool = True) -> dict[str, dict]:
    """Per dimension of ``dims``: the model's answers (asked by name, as ``llmvqa rate`` asks) against the items'
    target levels — ``dimension_accuracy``'s numbers plus ``margin`` (balanced accuracy over always-the-majority-
    level's). ``with_prompt=False`` asks every clip without its text prompt (as ``llmvqa rate clip.mp4`` asks)."""
    from llmvqa.evaluation.suite import dimension_accuracy

    ask = _dimension_asker(model)
    predicted, reference = [], []
    for it in items:
        f, ps = features_of(it)
        prompt = it.prompt if with_prompt else None
        ps = ps if with_prompt else {k: v for k, v in (ps or {}).items() if k != "prompt_alignment"}
        asked = [d for d in dims if d in it.targets]
        scores = ask(f, ps, prompt, asked)
        predicted.append({d: level_of_score(sc.score) for d, sc in zip(asked, scores, strict=True)})
        reference.append({d: level_of_score(it.targets[d]) for d in asked})
    acc = dimension_accuracy(predicted, reference)
    return {d: {**a, "margin": a["balanced_accuracy"] - a["majority_balanced"]} for d, a in acc.items()}


def select_dimensions(model_dir: str | Path, items: Sequence[DimensionItem], features_of: Callable,
                      min_margin: float = 0.10, log: Callable[[str], None] | None = None) -> list[str]:
    """Keep the probe's statistics only for the dimensions whose answers beat always-the-majority-level by
    ``min_margin`` in balanced accuracy on ``items`` (a split the stage did not train on: val). The others get
    their base rate (``DimensionProbe.base_rates``: the same estimate, the common level, for every clip): a probe
    that does not tell a dimension's levels apart on held-out clips only adds false alarms on other footage. Writes
    the probe and the selection (``dimension_stage.json``: ``selection``) into ``model_dir``; returns the kept
    dimensions."""
    from llmvqa.model.dimension_probe import DimensionProbe
    from llmvqa.model.modeling import QualityLLM

    log = log or (lambda _m: None)
    model_dir = Path(model_dir)
    probe = DimensionProbe.load(model_dir)
    if probe is None:
        raise DataError(str(model_dir), "has no dimension probe to select from", "run llmvqa tune-dimensions first")
    model = QualityLLM.from_pretrained(model_dir)
    margins = answer_margins(model, items, features_of, probe.dimensions)
    keep = [d for d in probe.dimensions if margins.get(d, {}).get("margin", -1.0) >= min_margin]
    for d in probe.dimensions:
        m = margins.get(d, {}).get("margin")
        log(f"dimension {d}: answer margin {'n/a' if m is None else f'{m:+.3f}'} → "
            f"{'kept' if d in keep else 'base rate'}")
    probe.base_rates([d for d in probe.dimensions if d not in keep]).save(model_dir)
    state = read_json(model_dir / "dimension_stage.json")
    state["selection"] = {"clips": len(items), "min_margin": min_margin, "kept": keep,
                          "margins": {d: round(m["margin"], 4) for d, m in margins.items()},
                          "accuracy": {d: round(m["accuracy"], 4) for d, m in margins.items()}}
    (model_dir / "dimension_stage.json").write_text(json.dumps(state, indent=2, default=list), encoding="utf-8")
    return keep


def _fit_probe(feats, levels: dict[str, list[str]], cfg: DimensionStageConfig, n_clips: int,
               sources: Sequence[str] | None = None):
    """(the probe of ``cfg``'s kind fitted on ``feats`` — (features, prompt statistics) pairs —, its input matrix).
    With ``probe_inputs`` "cv" each dimension reads the input set of ``INPUT_SETS`` whose source-grouped
    cross-fitted estimates (``sources``; ``cfg.folds``) tell its levels apart best on these clips."""
    from llmvqa.model.dimension_probe import DimensionProbe, TokenBasis, token_summary
    from llmvqa.statistics import PROBE_STATISTICS

    basis = None
    if cfg.probe_kind == "trees" and cfg.probe_tokens > 0:
        basis = TokenBasis.fit(np.stack([token_summary(f) for f, _ in feats]), cfg.probe_tokens)
    extra = [st.name for st in PROBE_STATISTICS] if cfg.probe_extra else []
    x = DimensionProbe.input_matrix(feats, basis, extra)
    sources = list(sources) if sources is not None else [""] * len(x)
    dims = list(levels)
    info: dict = {"split_clips": n_clips, "extra_stats": extra}
    if cfg.probe_inputs == "cv":
        margins = {}
        for name in INPUT_SETS:
            masks = probe_masks(x.shape[1], basis, extra, {d: name for d in dims})
            est = _cross_fitted(x, levels, sources, cfg, dims, basis, masks)
            margins[name] = {d: level_margin(est[:, k], levels[d]) for k, d in enumerate(dims)}
        choice = {d: max(INPUT_SETS, key=lambda n, d=d: margins[n][d] - (0.0 if n == "all" else cfg.inputs_min_gain))
                  for d in dims}
        info["inputs_cv"] = {d: {n: round(margins[n][d], 4) for n in INPUT_SETS} for d in dims}
    else:
        choice = {d: cfg.probe_inputs for d in dims}
    info["inputs"] = choice
    masks = probe_masks(x.shape[1], basis, extra, choice)
    probe = DimensionProbe.fit(x, levels, cfg.probe_c, info=info, balance=cfg.probe_balance, kind=cfg.probe_kind,
                               basis=basis, seed=cfg.seed, inputs=masks)
    if cfg.probe_offsets:
        oof = _cross_fitted_probs(x, levels, sources, cfg, probe.dimensions, basis, masks)
        probe = probe.with_offsets({d: tune_level_offsets(oof[:, k], levels[d], cfg.offsets_min_recall)
                                    for k, d in enumerate(probe.dimensions)})
    return probe, x


def probe_masks(width: int, basis, extra: Sequence[str], choice: dict[str, str]) -> dict[str, np.ndarray]:
    """{dimension key: boolean mask of the probe's input columns it reads} for ``choice`` ({key: one of
    ``INPUT_SETS``}). Columns: ``stat_inputs`` (a prompt statistic: value and indicator), the ``extra`` statistics,
    then the token summary's coordinates (``basis``)."""
    from llmvqa.dimensions import load_dimensions
    from llmvqa.statistics import PROBE_READERS, PROMPT_STATS, STAT_BY_NAME, STATISTICS

    spec = load_dimensions().dimensions
    stream_of_col = [st.stream for st in STATISTICS for _ in range(2 if st.name in PROMPT_STATS else 1)]
    stream_of_col += [STAT_BY_NAME[n].stream for n in extra]
    tokens = 0 if basis is None else basis.components.shape[0]
    if len(stream_of_col) + tokens != width:
        raise ValueError(f"a probe input of {width} columns does not match the statistics and token summary")
    out = {}
    for d, name in choice.items():
        if name not in INPUT_SETS:
            raise ValueError(f"unknown probe input set {name!r}; one of {INPUT_SETS}")
        stream = spec[d].group if d in spec else None
        own = [name == "all" or s == stream for s in stream_of_col]
        for i, n in enumerate(extra):
            own[len(stream_of_col) - len(extra) + i] = d in PROBE_READERS.get(n, ()) and (name == "all" or
                                                                                        STAT_BY_NAME[n].stream == stream)
        out[d] = np.asarray(own + [name == "all"] * tokens, bool)
    return out


def level_margin(estimates: np.ndarray, reference: Sequence[str]) -> float:
    """Balanced accuracy of the estimates' levels against ``reference`` level words, over always-the-majority-level's
    (1 / the number of levels present)."""
    from llmvqa.evaluation.metrics import balanced_accuracy

    return balanced_accuracy([level_of_score(float(e)) for e in estimates], list(reference)) - 1.0 / len(set(reference))


def _cross_fitted_probs(x: np.ndarray, levels: dict[str, list[str]], sources: Sequence[str], cfg: DimensionStageConfig,
                        dims: Sequence[str], basis=None, masks: dict | None = None) -> np.ndarray:
    """(N, K, 5) level probabilities of each clip from a probe fitted without its source's fold (K = ``dims``;
    certain "excellent" where a fold's fit lacks the dimension)."""
    from llmvqa.model.dimension_probe import DimensionProbe
    from llmvqa.train.human_data import prompt_folds

    groups = [src or f"#{i}" for i, src in enumerate(sources)]  # clips of no known source: each its own group
    folds = prompt_folds(groups, cfg.folds, cfg.seed)
    out = np.zeros((len(x), len(dims), len(LEVELS)))
    out[..., 0] = 1.0
    for f in np.unique(folds):
        test = folds == f
        fitted = DimensionProbe.fit(x[~test], {d: [lv for lv, t in zip(levels[d], test, strict=True) if not t]
                                               for d in dims}, cfg.probe_c, balance=cfg.probe_balance,
                                kind=cfg.probe_kind, basis=basis, seed=cfg.seed, inputs=masks)
        p = fitted.probs_inputs(x[test])
        for k, d in enumerate(dims):
            if d in fitted.dimensions:
                out[test, k] = p[:, fitted.dimensions.index(d)]
    return out


def _cross_fitted(x: np.ndarray, levels: dict[str, list[str]], sources: Sequence[str], cfg: DimensionStageConfig,
                  dims: Sequence[str], basis=None, masks: dict | None = None,
                  offsets: dict[str, Sequence[float]] | None = None) -> np.ndarray:
    """(N, K) probe estimates of each clip from a probe fitted without its source's fold (K = ``dims``), with the
    probe's level ``offsets`` where it has them."""
    from llmvqa.model.dimension_probe import estimate_of

    p = _cross_fitted_probs(x, levels, sources, cfg, dims, basis, masks)
    for k, d in enumerate(dims):
        if offsets and d in offsets:
            p[:, k] = _offset_probs(p[:, k], offsets[d])
    return estimate_of(p.reshape(-1, len(LEVELS))).reshape(p.shape[:2])


def _offset_probs(probs: np.ndarray, offsets: Sequence[float]) -> np.ndarray:
    """(N, 5) probabilities with ``offsets`` added to their logits."""
    q = np.asarray(probs, np.float64) * np.exp(np.asarray(offsets, np.float64))[None]
    return q / q.sum(1, keepdims=True)


OFFSET_GRID = tuple(np.round(np.linspace(-2.0, 2.0, 17), 3).tolist())
"""Values each level's logit offset is tried at (``tune_level_offsets``)."""


def tune_level_offsets(probs: np.ndarray, reference: Sequence[str], min_recall: float = 0.0,
                       grid: Sequence[float] = OFFSET_GRID, rounds: int = 3) -> list[float]:
    """5 logit offsets (LEVELS order) for a dimension's (N, 5) level probabilities that maximize the balanced
    accuracy of their estimates' levels (``estimate_of``, the levels a rating reports) against ``reference`` level
    words, while at least ``min_recall`` of the majority level's clips keep that level. Coordinate ascent: each
    level's offset in turn over ``grid``, ``rounds`` times, from 0 (a change is kept only when it helps; a level
    absent from ``reference`` keeps 0).

    Why: a classifier fitted with partial class weights (``TREE_BALANCE``) still favours the common level at a
    threshold; balanced accuracy is highest when each level's threshold is set for it. Session 14, synth corpus,
    probe fitted on the train split, offsets from its source-grouped cross-fitting (model card, dimension stage)."""
    from llmvqa.levels import LEVEL_CUTS
    from llmvqa.model.dimension_probe import estimate_of

    ref = np.array([LEVELS.index(r) for r in reference])
    present = np.unique(ref)
    if len(present) < 2:
        return [0.0] * len(LEVELS)
    major = int(np.bincount(ref, minlength=len(LEVELS)).argmax())
    cuts = np.asarray(LEVEL_CUTS)

    def value(o: np.ndarray) -> float:
        pred = (estimate_of(_offset_probs(probs, o))[:, None] < cuts[None]).sum(1)  # level index, as level_of_score
        bal = float(np.mean([(pred[ref == lv] == lv).mean() for lv in present]))
        return bal if (pred[ref == major] == major).mean() >= min_recall - 1e-12 else bal - 10.0

    off = np.zeros(len(LEVELS))
    best = value(off)
    for _ in range(rounds):
        for lv in present:
            for g in grid:
                trial = off.copy()
                trial[lv] = g
                v = value(trial)
                if v > best + 1e-9:
                    best, off = v, trial
    return off.round(6).tolist()


def _warm_start(model, dims, spec, example, items, cfg: DimensionStageConfig, rng) -> None:
    """Start each stream's prior direction along the gradient of its dimensions' expected scores with respect to
    the slot (estimate 4.0), scaled so one level of the estimate moves them by about ``cfg.warm_gain`` levels."""
    import torch

    for stream, proj in model.projectors.items():
        mine = [d for d in dims if spec[d].group == stream]
        if proj.prior_dir is None or not mine:
            continue
        proj.prior_dir.grad = None
        draws = [(i, d) for i, d in balanced_draws(items, mine, cfg.batch_size * 2, rng)]
        exs = [example(i, d, 4.0) for i, d in draws]
        (model.forward(model.collator(exs))["expected_score"].sum() / len(exs)).backward()
        g = proj.prior_dir.grad.detach().clone()
        with torch.no_grad():
            proj.prior_dir.add_(cfg.warm_gain * g / g.pow(2).sum().clamp_min(1e-12))
        model.zero_grad(set_to_none=True)


__all__ = ["DimensionItem", "DimensionStageConfig", "answer_margins", "balanced_draws", "load_synth_items", "refit_probe",
           "select_dimensions", "tune_dimensions"]
