"""Checkpoint I/O of the quality model (mixed into ``QualityLLM``): config.json, projectors.safetensors, the PEFT
adapter, the human prior, the dimension probe and the interval; and the scorer a checkpoint may hold.

A checkpoint may hold a *scorer*: ``<dir>/scorer/`` is another checkpoint of the same backbone,
encoders and prompts (in the recipes: stage 2's, trained on ratings with the score losses), loaded
as a second PEFT adapter ("scorer") with its own projectors (``llmvqa.model.queries`` routes the
aspects it reads to it).
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from llmvqa.errors import ModelError
from llmvqa.model.config import ModelConfig
from llmvqa.model.dimension_probe import DimensionProbe
from llmvqa.model.prior import HumanPrior
from llmvqa.model.projectors import widen_stats_inputs
from llmvqa.prompts import aspect_forms, aspect_prefix

if TYPE_CHECKING:
    from llmvqa.model.modeling import QualityLLM

CHECKPOINT_FORMAT = "llmvqa-quality-llm"
FORMAT_VERSION = 1
SCORER_DIR = "scorer"
"""Sub-folder of a checkpoint that holds the checkpoint whose adapter and projectors read the overall level."""
INTERVAL_FILE = "interval.json"
"""The calibrated interval of the overall score (written by llmvqa calibrate)."""
SCORER_MATCH = ("backbone", "projector", "num_query_tokens", "stats_token", "stream_dims", "resampler_heads",
                "prompt_version")
"""Model settings a scorer must share with the checkpoint it belongs to (the LoRA settings may differ)."""


def copy_scorer(source: Path, model_dir: Path) -> None:
    """Copy the checkpoint at ``source`` (without a scorer of its own) into ``model_dir``/scorer/."""
    dst = model_dir / SCORER_DIR
    if source.resolve() != dst.resolve():
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(source, dst, ignore=shutil.ignore_patterns(SCORER_DIR))


def read_checkpoint_meta(directory: Path, fix: str) -> dict:
    """config.json of a checkpoint folder; ModelError (with ``fix`` as the advice) when it is not one."""
    cfg_path = directory / "config.json"
    if not cfg_path.is_file():
        raise ModelError(str(directory), "is not a llmvqa model directory (no config.json)", fix)
    meta = json.loads(cfg_path.read_text(encoding="utf-8"))
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ModelError(str(cfg_path), f"unknown checkpoint format {meta.get('format')!r}", fix)
    return meta


class CheckpointMixin:
    """Saving and loading a ``QualityLLM`` (``build`` makes the modules; this fills them from a folder)."""

    def save_pretrained(self, directory: str | Path) -> None:
        """Write config.json, projectors.safetensors and adapter/ (PEFT, safetensors)."""
        from safetensors.torch import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        meta = {"format": CHECKPOINT_FORMAT, "format_version": FORMAT_VERSION, "model": self.cfg.to_dict(),
                "encoder": self.encoder_config, "prompt_version": self.cfg.prompt_version,
                "placeholder_token": self.placeholder_token}
        (d / "config.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        state = {k: v.detach().float().cpu().contiguous() for k, v in self.projectors.state_dict().items()}
        save_file(state, str(d / "projectors.safetensors"))
        if hasattr(self.lm, "peft_config"):
            # an added placeholder row is zeroed deterministically at build time: no need to save embeddings
            self.lm.save_pretrained(str(d / "adapter"), safe_serialization=True, save_embedding_layers=False,
                                    selected_adapters=["default"])
        if self.prior is not None:
            self.prior.save(d)
        if self.dimension_probe is not None:
            self.dimension_probe.save(d)
        if self.interval is not None:
            (d / INTERVAL_FILE).write_text(json.dumps(self.interval, indent=2), encoding="utf-8")
        if self._scorer is not None:  # never trained here: its files are copied as they were loaded
            copy_scorer(self._scorer["source"], d)

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, is_trainable: bool = False, device: str | None = None,
                        scorer: bool = True, **overrides) -> QualityLLM:
        """Load a checkpoint dir. overrides replace ModelConfig fields (e.g. backbone=a local path, dtype,
        trust_remote_code=True); device: None = the GPU when CUDA is available, else the CPU.
        scorer: also load ``<dir>/scorer/`` when there is one (training passes False).
        Weights load from safetensors only."""
        from safetensors.torch import load_file

        d = Path(directory)
        meta = read_checkpoint_meta(d, "pass a folder written by QualityLLM.save_pretrained / llmvqa train")
        # remote model code runs only when the caller asks for it now, never because a checkpoint says so
        saved = {"chat_format": "gemma", **meta["model"]}  # saved before chat_format existed: gemma markers
        cfg = ModelConfig.from_dict({**saved, "trust_remote_code": False, **overrides})
        adapter = d / "adapter"
        model = cls.build(cfg, meta.get("encoder"), lora=False, device=device)
        if adapter.is_dir():
            from peft import PeftModel

            lm = PeftModel.from_pretrained(model.lm, str(adapter), is_trainable=is_trainable)
            model = cls(cfg, lm, model.tokenizer, model.placeholder_token, meta.get("encoder"))
        proj = d / "projectors.safetensors"
        if not proj.is_file():
            raise ModelError(str(proj), "is missing", "the checkpoint is incomplete; save it again")
        try:
            model.projectors.load_state_dict(widen_stats_inputs(load_file(str(proj), device=str(model.device)),
                                                                model.projectors.state_dict()))
        except RuntimeError as e:
            raise ModelError(str(proj), f"does not match the model settings ({str(e)[:200]})",
                             "check stream_dims / projector / num_query_tokens in config.json") from e
        model.prior = HumanPrior.load(d)
        model.dimension_probe = DimensionProbe.load(d)
        if (d / INTERVAL_FILE).is_file():
            model.interval = json.loads((d / INTERVAL_FILE).read_text(encoding="utf-8"))
        if scorer and (d / SCORER_DIR).is_dir():
            model.attach_scorer(d / SCORER_DIR, meta)
        model.eval()
        return model

    def attach_scorer(self, directory: str | Path, meta: dict | None = None) -> None:
        """Load the checkpoint at ``directory`` as the scorer: its adapter becomes PEFT adapter "scorer"
        and its projectors read the overall level. meta: this model's own config.json (checked against the
        scorer's); None = this model's settings."""
        from safetensors.torch import load_file

        d = Path(directory)
        theirs = read_checkpoint_meta(d, "a scorer is a checkpoint folder written by llmvqa train (e.g. stage2/final)")
        cfg_path = d / "config.json"
        mine = meta or {"model": self.cfg.to_dict(), "encoder": self.encoder_config}
        differ = [k for k in SCORER_MATCH if theirs.get("model", {}).get(k) != mine["model"].get(k)]
        if theirs.get("encoder") != mine.get("encoder"):
            differ.append("encoder")
        if differ:
            raise ModelError(str(cfg_path), f"the scorer's settings differ from its model's: {differ}",
                             "a scorer must come from the same recipe (same backbone, encoders and prompts)")
        if not (d / "adapter").is_dir() or not hasattr(self.lm, "load_adapter") or not hasattr(self.lm, "peft_config"):
            raise ModelError(str(d), "a scorer needs LoRA adapters in both checkpoints",
                             "use a stage trained with LoRA (trainable: projectors+lora) on both sides")
        flags = [(p, p.requires_grad) for p in self.lm.parameters()]
        self.lm.load_adapter(str(d / "adapter"), adapter_name="scorer", is_trainable=False)
        self._set_adapter("default", flags)
        projectors = copy.deepcopy(self.projectors)
        try:
            projectors.load_state_dict(widen_stats_inputs(load_file(str(d / "projectors.safetensors"),
                                                                    device=str(self.device)), projectors.state_dict()))
        except (RuntimeError, FileNotFoundError, OSError) as e:
            raise ModelError(str(d / "projectors.safetensors"), f"cannot be loaded as the scorer's projectors "
                             f"({str(e)[:200]})", "the scorer checkpoint is incomplete; copy it again") from e
        projectors.eval().requires_grad_(False)
        reads = theirs.get("scorer_reads") or ["overall"]
        version = self.cfg.prompt_version
        # an aspect however it is named (a dimension by key or by name) → the aspect as the scorer was trained on it
        by_prefix = {aspect_prefix(form, version): a for a in reads for form in aspect_forms(a, version)}
        self._scorer = {"source": d, "projectors": projectors, "active": False, "aspects": by_prefix}
