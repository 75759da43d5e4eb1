"""Training settings: typed dataclasses loaded from a YAML recipe in configs/.

A recipe has the sections ``model`` (``llmvqa.model.config.ModelConfig``), ``data`` (DataConfig, whose
``encoder`` is an ``llmvqa.encoders.config.EncoderConfig``), ``stage1``/``stage2``/``stage3`` (StageConfig) and
the run fields of TrainConfig: typed all the way down, every section checked when the recipe loads. Unknown
keys are an error that names the key and the file.
``--override stage2.lr=1e-4`` edits a field by its dotted path before the checks run.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from llmvqa.errors import ConfigError
from llmvqa.settings import coerce_number
from llmvqa.sig.instructions import OVERALL_TASKS, TASKS

if TYPE_CHECKING:  # the sections' own packages load torch: imported when a recipe is built, not for `--help`
    from llmvqa.encoders.config import EncoderConfig
    from llmvqa.model.config import ModelConfig


def _encoder_config(raw: Any = None) -> EncoderConfig:
    from llmvqa.encoders.config import EncoderConfig

    return raw if isinstance(raw, EncoderConfig) else EncoderConfig.from_dict(raw or {})


def _model_config(raw: Any = None) -> ModelConfig:
    from llmvqa.model.config import ModelConfig

    return raw if isinstance(raw, ModelConfig) else ModelConfig.from_dict(raw or {})


SCORE_TASKS = ("rating", "rating_cot", "dimension_rating", "improve")
"""Default stage.score_tasks: OVERALL_TASKS without "why", whose question states the overall level."""

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
TRAINABLE = ("projectors", "lora", "projectors+lora")


@dataclass
class StageConfig:
    """One stage of progressive tuning (Score2Instruct: projectors first, then LoRA)."""

    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    """Instruct record task types in this stage's mix (see llmvqa.train.config.TASKS)."""

    max_answer_words: int = 0
    """Keep only records whose assistant answers have at most this many words (0 = no limit); stage 1 uses short answers."""

    trainable: str = "projectors+lora"
    """What gets gradients: "projectors" (LLM and LoRA frozen), "lora", or "projectors+lora"."""

    epochs: int = 1
    """Passes over the stage's records (ignored when max_steps > 0)."""

    max_steps: int = 0
    """Optimizer steps for this stage; 0 = epochs × steps per epoch."""

    batch_size: int = 4
    """Samples per micro-batch per device; the score loss is computed per micro-batch, so ≥ 4 when it is on."""

    grad_accum: int = 1
    """Micro-batches accumulated per optimizer step (effective batch = batch_size × grad_accum × devices)."""

    lr: float = 1e-4
    """Peak learning rate of AdamW."""

    weight_decay: float = 0.0
    """AdamW weight decay."""

    warmup_ratio: float = 0.05
    """Fraction of the stage's steps spent in linear warmup before the cosine decay."""

    max_grad_norm: float = 1.0
    """Gradient clipping norm (0 = off)."""

    ce_weight: float = 1.0
    """Weight of the cross-entropy on assistant tokens."""

    plcc_weight: float = 0.0
    """Weight of the PLCC loss (1 − pearson)/2 on the expected level score at level_pos."""

    rank_weight: float = 0.0
    """Weight of the pairwise rank loss on the expected level score (AIGVEval used 0.3 × rank)."""

    score_tasks: list[str] = field(default_factory=lambda: list(SCORE_TASKS))
    """Task types whose answer ends in the overall level: only these get the PLCC/rank score loss (the
    last level word of a dimension answer is that dimension's level, not the overall score's)."""

    scorer_from: int = 0
    """0 = none; N = stage N's final checkpoint becomes this stage's *scorer* (copied into final/scorer/):
    it reads the overall level, this stage's model everything else. Lets a text stage keep the ranking
    of a stage trained with the score losses (llmvqa.model.checkpoint, SCORER_DIR)."""

    max_samples: int = 0
    """Use at most this many records (0 = all); the subset is a function of the seed."""

    save_every: int = 0
    """Save a resumable checkpoint every N optimizer steps (0 = only at the end of the stage)."""

    keep_checkpoints: int = 2
    """How many step checkpoints to keep per stage (older ones are deleted; the final one always stays)."""

    def __post_init__(self) -> None:
        bad = [t for t in self.tasks if t not in TASKS]
        if bad or not self.tasks:
            raise ConfigError("stage.tasks", f"unknown or empty task list {self.tasks!r}", f"use some of {list(TASKS)}")
        bad = [t for t in self.score_tasks if t not in OVERALL_TASKS]
        if bad:
            raise ConfigError("stage.score_tasks", f"{bad!r}: answers of these tasks do not end in the overall level",
                              f"use some of {list(OVERALL_TASKS)} (or set plcc_weight and rank_weight to 0)")
        if self.trainable not in TRAINABLE:
            raise ConfigError("stage.trainable", f"{self.trainable!r} is not one of {list(TRAINABLE)}", "pick one of them")
        for name in ("epochs", "batch_size", "grad_accum"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"stage.{name}", f"must be ≥ 1, got {getattr(self, name)}", f"set {name} to 1 or more")
        for name in ("max_steps", "max_samples", "save_every", "max_answer_words", "keep_checkpoints", "scorer_from"):
            if int(getattr(self, name)) < 0:
                raise ConfigError(f"stage.{name}", f"must be ≥ 0, got {getattr(self, name)}", "use 0 to turn it off")
        if not self.lr > 0:
            raise ConfigError("stage.lr", f"must be > 0, got {self.lr}", "use e.g. 1e-4")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ConfigError("stage.warmup_ratio", f"must be in [0, 1), got {self.warmup_ratio}", "use e.g. 0.05")
        for name in ("ce_weight", "plcc_weight", "rank_weight", "weight_decay", "max_grad_norm"):
            if getattr(self, name) < 0:
                raise ConfigError(f"stage.{name}", f"must be ≥ 0, got {getattr(self, name)}", "use 0 to turn it off")
        if self.ce_weight == 0 and self.plcc_weight == 0 and self.rank_weight == 0:
            raise ConfigError("stage", "all loss weights are 0", "set ce_weight, plcc_weight or rank_weight > 0")
        if self.uses_score_loss and self.batch_size < 4:
            raise ConfigError(
                "stage.batch_size",
                f"is {self.batch_size}, but the PLCC/rank score loss needs ≥ 4 samples per micro-batch",
                "raise batch_size to 4+ (lower grad_accum to keep memory) or set plcc_weight and rank_weight to 0",
            )

    @property
    def uses_score_loss(self) -> bool:
        return self.plcc_weight > 0 or self.rank_weight > 0


@dataclass
class DataConfig:
    """Where the instruct records, their videos and the feature cache are."""

    train_files: list[str] = field(default_factory=lambda: ["instruct_data/train.jsonl"])
    """Instruct JSONL files or glob patterns (relative paths are relative to the working directory)."""

    video_root: str = ""
    """Directory the records' "video" paths are relative to; "" = the directory of each JSONL file."""

    split: str = "train"
    """Only records with this "split" value are used ("" = all records)."""

    feature_cache: str = "cache/features"
    """FeatureCache directory (safetensors per video content hash + encoder config)."""

    encoder: EncoderConfig = field(default_factory=_encoder_config)
    """The encoders (llmvqa.encoders.config.EncoderConfig; in a recipe its fields, {} = the offline defaults)."""

    compute_missing: bool = True
    """Extract and cache the features of videos missing from the cache (False: a missing video is an error)."""

    semantic_from_backbone: bool = False
    """Qwen2.5-VL backbones: the semantic stream is the VL model's own vision tower (frames through the loader, patches cut by llmvqa.model.qwen_vl)."""

    def __post_init__(self) -> None:
        if isinstance(self.train_files, str):
            self.train_files = [self.train_files]
        if not self.train_files:
            raise ConfigError("data.train_files", "is empty", "list at least one instruct JSONL file")
        if not isinstance(self.encoder, dict) and type(self.encoder).__name__ != "EncoderConfig":
            raise ConfigError("data.encoder", f"must be a mapping, got {type(self.encoder).__name__}",
                              "use EncoderConfig field: value pairs")
        self.encoder = _encoder_config(self.encoder)


def _default_stage1() -> StageConfig:
    return StageConfig(tasks=["dimension", "dimension_rating", "rating"], max_answer_words=40, trainable="projectors", lr=1e-3)


def _default_stage2() -> StageConfig:
    return StageConfig(tasks=["rating"], trainable="projectors+lora", lr=2e-4, plcc_weight=1.0, rank_weight=0.3)


def _default_stage3() -> StageConfig:
    return StageConfig(tasks=list(TASKS), trainable="projectors+lora", lr=1e-4)


@dataclass
class TrainConfig:
    """A full progressive-training run (three stages, each from the previous stage's checkpoint)."""

    model: ModelConfig = field(default_factory=_model_config)
    """The model (llmvqa.model.config.ModelConfig: backbone, projector, lora_r, load_in_4bit, dtype, ...; empty
    stream_dims are taken from the features)."""

    data: DataConfig = field(default_factory=DataConfig)
    """Instruct data and feature cache."""

    stage1: StageConfig = field(default_factory=_default_stage1)
    """Stage 1: projectors only on dimension → level pairs (LLM and LoRA frozen)."""

    stage2: StageConfig = field(default_factory=_default_stage2)
    """Stage 2: LoRA + projectors on rating instructions, CE + PLCC/rank score loss."""

    stage3: StageConfig = field(default_factory=_default_stage3)
    """Stage 3: the full instruction mix with justifications."""

    output_dir: str = "runs/mini"
    """Run directory: stage<N>/checkpoint-<step>/ (resumable) and stage<N>/final/ (QualityLLM.save_pretrained)."""

    seed: int = 0
    """Seed of initialisation, data subset and data order (order of epoch e = f(seed, e), so resume is exact)."""

    precision: str = "auto"
    """"auto" (bf16 on a GPU that supports it, fp32 on CPU), "fp32", "bf16" or "fp16"."""

    device: str = "auto"
    """"auto" (CUDA when visible), "cpu" or "cuda"."""

    gradient_checkpointing: bool = False
    """Recompute LLM activations in backward to save memory."""

    deepspeed: str = ""
    """DeepSpeed JSON (configs/ds_zero2.json, ds_zero3.json); "auto" fields are filled from the stage; "" = off."""

    tensorboard: bool = False
    """Write TensorBoard logs under <output_dir>/tb."""

    log_every: int = 10
    """Log loss and learning rate every N optimizer steps."""

    def __post_init__(self) -> None:
        if not isinstance(self.model, dict) and type(self.model).__name__ != "ModelConfig":
            raise ConfigError("model", f"must be a mapping of ModelConfig fields, got {type(self.model).__name__}",
                              "see configs/mini.yaml")
        self.model = _model_config(self.model)
        if self.precision not in PRECISIONS:
            raise ConfigError("precision", f"{self.precision!r} is not one of {list(PRECISIONS)}", "pick one of them")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError("device", f"{self.device!r} is not one of auto/cpu/cuda", "pick one of them")
        if self.log_every < 1:
            raise ConfigError("log_every", f"must be ≥ 1, got {self.log_every}", "use e.g. 10")
        for n in (1, 2, 3):
            stage = getattr(self, f"stage{n}")
            if isinstance(stage, StageConfig) and stage.scorer_from >= n:
                raise ConfigError(f"stage{n}.scorer_from", f"must name an earlier stage, got {stage.scorer_from}",
                                  f"use 0 (none) or a stage below {n}, e.g. 2 for stage 3")
        if self.deepspeed and not Path(self.deepspeed).is_file():
            raise ConfigError(self.deepspeed, "DeepSpeed config file not found", "fix the deepspeed path or set it to \"\"")

    def stage(self, n: int) -> StageConfig:
        if n not in (1, 2, 3):
            raise ConfigError("stage", f"{n} is not a stage", "use 1, 2 or 3")
        return getattr(self, f"stage{n}")

    def to_dict(self) -> dict[str, Any]:
        """Plain data (YAML- and JSON-able), every section with all its fields."""
        return json.loads(json.dumps(dataclasses.asdict(self), default=list))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False), encoding="utf-8")


# ---------------------------------------------------------------- loading


def field_docs(cls: type) -> dict[str, str]:
    """{field: the docstring under it} of a settings dataclass (read from its source)."""
    import ast
    import inspect
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs = {}
    for node, nxt in zip(body, body[1:], strict=False):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if isinstance(nxt, ast.Expr) and isinstance(getattr(nxt, "value", None), ast.Constant):
                docs[node.target.id] = " ".join(str(nxt.value.value).split())
    return docs


_STAGE_DEFAULTS = {"stage1": _default_stage1, "stage2": _default_stage2, "stage3": _default_stage3}
_SECTIONS = {"data": DataConfig, "stage1": StageConfig, "stage2": StageConfig, "stage3": StageConfig}


def _build(cls: type, raw: dict[str, Any], where: str, source: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(source, f"section {where or 'top level'} must be a mapping, got {type(raw).__name__}", "fix the YAML")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise ConfigError(source, f"unknown key {key!r}", f"valid keys{' in ' + where if where else ''}: {sorted(known)}")
    kwargs = {k: coerce_number(cls, k, v, f"{where}.{k}" if where else k, source) for k, v in raw.items()}
    if cls is DataConfig and "encoder" in kwargs:
        kwargs["encoder"] = _typed(_encoder_config, kwargs["encoder"] or {}, "data.encoder", source)
    if cls is TrainConfig:
        if "model" in kwargs:
            kwargs["model"] = _typed(_model_config, kwargs["model"] or {}, "model", source)
        for name, sub in _SECTIONS.items():
            if name in kwargs:
                section = kwargs[name] or {}
                if name.startswith("stage") and isinstance(section, dict):
                    # a stage section edits that stage's defaults (stage 2 keeps its score loss, ...)
                    section = {**dataclasses.asdict(_STAGE_DEFAULTS[name]()), **section}
                kwargs[name] = _build(sub, section, name, source)
    try:
        return cls(**kwargs)
    except ConfigError as err:
        raise ConfigError(source, f"in {where}: {err}" if where else str(err), None) from None
    except TypeError as err:
        raise ConfigError(source, f"bad value in {where or 'top level'}: {err}", "check the types against the recipe docs") from None


def _typed(build, raw: Any, where: str, source: str) -> Any:
    """A section that is a settings class of its own package (ModelConfig, EncoderConfig), built by its
    ``from_dict`` (``build``); its errors name the section and the recipe."""
    if not isinstance(raw, dict):
        raise ConfigError(source, f"section {where} must be a mapping, got {type(raw).__name__}", "fix the YAML")
    try:
        return build(raw)
    except ConfigError as err:
        raise ConfigError(source, f"in {where}: {err}", None) from None
    except (TypeError, ValueError) as err:
        raise ConfigError(source, f"bad value in {where}: {err}", "check the types against the recipe docs") from None


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"--override {item}", "is not key=value", "write e.g. --override stage2.lr=1e-4")
    key, value = item.split("=", 1)
    return key.strip().split("."), yaml.safe_load(value)


def apply_overrides(raw: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Set dotted keys (``stage1.max_steps=5``, ``model.lora_r=8``) in the raw YAML mapping."""
    for item in overrides or []:
        path, value = _parse_override(item)
        node = raw
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--override {item}", f"{part!r} is not a section", "override a field inside a section")
        node[path[-1]] = value
    return raw


def load_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML recipe (plus dotted overrides) into a checked TrainConfig."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(str(path), "recipe not found", "pass an existing YAML file, e.g. configs/mini.yaml")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(str(path), f"not valid YAML ({err})", "fix the syntax") from None
    raw = apply_overrides(raw, overrides)
    return _build(TrainConfig, raw, "", str(path))


def config_from_dict(raw: dict[str, Any], source: str = "<dict>") -> TrainConfig:
    """Build a checked TrainConfig from a mapping (e.g. a saved config.yaml)."""
    return _build(TrainConfig, json.loads(json.dumps(raw)), "", source)
