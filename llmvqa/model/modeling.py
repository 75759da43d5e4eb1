"""QualityLLM: projected video feature tokens in a LoRA-tuned causal LM; score + explanation.

Flow: batch (llmvqa.model.collate) → per-stream projectors → feature tokens scattered into the
LLM input embeddings at the placeholder positions → decoder hidden states → the LM head is applied
only where logits are needed (answer tokens for the loss; the five level rows at level_pos).

A checkpoint may hold a *scorer*: ``<dir>/scorer/`` is another checkpoint of the same backbone,
encoders and prompts (in the recipes: stage 2's, trained on ratings with the score losses), loaded
as a second PEFT adapter ("scorer") with its own projectors. It reads every overall level (score
mode, the overall query of score_queries, the last sentence of explain); the main adapter answers
everything else (dimensions, justifications, chat).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import shutil
from pathlib import Path

import torch
from torch import nn

from llmvqa import cancel
from llmvqa.errors import ConfigError, ModelError
from llmvqa.features import VideoFeatures
from llmvqa.model.backbone import language_model_parts, load_backbone
from llmvqa.model.collate import Collator, encode_conversation
from llmvqa.model.config import ModelConfig
from llmvqa.model.dimension_probe import DimensionProbe
from llmvqa.model.prior import PRIOR_OF_STREAM, HumanPrior
from llmvqa.model.projectors import StreamProjector, widen_stats_inputs
from llmvqa.model.scoring import (
    LevelScore,
    aspect_forms,
    aspect_prefix,
    aspect_query,
    expected_scores,
    level_prefix,
    level_token_ids,
)
from llmvqa.model.template import IGNORE, VIDEO_TAG, PromptTemplate, choose_placeholder

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


def _text_config(lm):
    cfg = lm.config
    return cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg


def _check_cancel(_module, _args) -> None:
    cancel.check()


def interruptible(lm: nn.Module) -> None:
    """A request past its deadline stops at the next decoder layer of any forward pass (``llmvqa.cancel``): a
    scoring pass over a long prompt frees the model within a layer, not at its end. Outside the server's
    ``cancellable`` block the hook is one thread-local lookup per layer."""
    for module in lm.modules():
        if type(module).__name__.endswith("DecoderLayer") and not getattr(module, "_llmvqa_interruptible", False):
            module.register_forward_pre_hook(_check_cancel)
            module._llmvqa_interruptible = True


class QualityLLM(nn.Module):
    """The quality model. Build with ``QualityLLM.build(cfg)`` or ``QualityLLM.from_pretrained(dir)``."""

    def __init__(self, cfg: ModelConfig, lm: nn.Module, tokenizer, placeholder_token: str,
                 encoder_config: dict | None = None):
        super().__init__()
        self.cfg = cfg
        self.lm = lm
        interruptible(lm)
        self.tokenizer = tokenizer
        self.placeholder_token = placeholder_token
        self.encoder_config = encoder_config
        self.placeholder_id = tokenizer.convert_tokens_to_ids(placeholder_token)
        self.level_ids = level_token_ids(tokenizer, cfg.prompt_version)
        self.template = PromptTemplate(tokenizer, cfg.tokens_per_stream, self.placeholder_id, self.level_ids,
                                       cfg.prompt_version, cfg.chat_format)
        cfg.chat_format = self.template.chat_format  # "auto" resolved: the checkpoint records what it was trained with
        self.collator = Collator(self.template)
        # plain tuple: views into self.lm, not registered again (parameter names stay "lm.*")
        self._parts = language_model_parts(lm)
        hidden = _text_config(lm).hidden_size
        missing = [s for s in self.template.stream_order if s not in cfg.stream_dims]
        if missing:
            raise ConfigError("ModelConfig.stream_dims", f"no input width for streams {missing}",
                              "set stream_dims from the encoders, e.g. {s: features.tokens[s].shape[1]}")
        self.projectors = nn.ModuleDict({
            s: StreamProjector(s, cfg.stream_dims[s], hidden, cfg.projector, cfg.num_query_tokens,
                               cfg.stats_token, cfg.resampler_heads)
            for s in self.template.stream_order
        }).to(self.device)
        self.softcap = getattr(_text_config(lm), "final_logit_softcapping", None)
        end = tokenizer(self.template.fmt["turn_end"].strip(), add_special_tokens=False)["input_ids"]
        self._stop_ids = {i for i in [tokenizer.eos_token_id, end[0] if len(end) == 1 else None] if i is not None}
        # the scorer (attach_scorer): projectors kept out of the module tree, so training and
        # state_dict never see them; "active" while an overall level is being read
        self._scorer: dict | None = None
        self.prior: HumanPrior | None = None  # human prior (llmvqa.model.prior): its estimates enter the stats tokens
        # dimension probe (llmvqa.model.dimension_probe): a dimension question reads its estimate in the prior slot
        self.dimension_probe = None
        self._probe_slots: dict[str, tuple[str, str]] | None = None
        self.interval: dict | None = None  # calibrated score interval {"coverage": 0.8, "half_width": …} (calibrate)
        self.last_generation: dict | None = None  # {prompt_tokens, completion_tokens, finish_reason} of the last text

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(cls, cfg: ModelConfig, encoder_config: dict | None = None, *, lora: bool | None = None,
              device: str | None = None) -> QualityLLM:
        """Load the backbone, add LoRA adapters (fresh) and fresh projectors.
        device: None = the GPU when CUDA is available, else the CPU."""
        lm, tok = load_backbone(cfg.backbone, dtype=cfg.dtype, load_in_4bit=cfg.load_in_4bit,
                                trust_remote_code=cfg.trust_remote_code, device=device)
        placeholder, added = choose_placeholder(tok)
        if added:  # only tokenizers without a spare token: one new row, zeroed (features overwrite it)
            tok.add_special_tokens({"additional_special_tokens": [placeholder]})
            old = lm.get_input_embeddings().weight.shape[0]
            if len(tok) > old:
                lm.resize_token_embeddings(len(tok), mean_resizing=False)
                with torch.no_grad():
                    lm.get_input_embeddings().weight[old:].zero_()
                    out = lm.get_output_embeddings()
                    if out is not None and out.weight.shape[0] > old:
                        out.weight[old:].zero_()
        if lora if lora is not None else cfg.use_lora:
            from peft import LoraConfig, get_peft_model

            lcfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                              target_modules=list(cfg.lora_targets), task_type="CAUSAL_LM")
            try:
                lm = get_peft_model(lm, lcfg)
            except ValueError as e:
                raise ConfigError("ModelConfig.lora_targets", f"{list(cfg.lora_targets)} do not match the backbone "
                                  f"({e})", "name modules of this model, e.g. q_proj, v_proj") from e
        else:
            for p in lm.parameters():
                p.requires_grad_(False)
        return cls(cfg, lm, tok, placeholder, encoder_config)

    @property
    def embed(self) -> nn.Module:
        return self._parts[0]

    @property
    def decoder(self) -> nn.Module:
        return self._parts[1]

    @property
    def lm_head(self) -> nn.Module:
        return self._parts[2]

    @property
    def device(self) -> torch.device:
        return self.lm.get_input_embeddings().weight.device

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

    def reads_by_scorer(self, answer_prefix: str | None) -> bool:
        """Whether the scorer reads the level after ``answer_prefix`` (None = the overall sentence)."""
        return self.scorer_aspect(answer_prefix) is not None

    def scorer_aspect(self, answer_prefix: str | None) -> str | None:
        """The scorer's own name of the aspect ``answer_prefix`` asks (None: the scorer does not read it)."""
        if self._scorer is None:
            return None
        return self._scorer["aspects"].get(answer_prefix or level_prefix("overall", self.cfg.prompt_version))

    def scorer_query(self, question: str | None, answer_prefix: str | None,
                     prompt: str | None) -> tuple[str | None, str | None]:
        """(question, answer prefix) as the model's reader of that aspect was trained on it: the scorer's own wording
        for an aspect it reads (e.g. a dimension it was calibrated on by key), else as given."""
        aspect = self.scorer_aspect(answer_prefix)
        if aspect is None or aspect == "overall":
            return question, answer_prefix
        return aspect_query(aspect, prompt, self.cfg.prompt_version)

    def input_stats(self, features: VideoFeatures, prompt_stats: dict | None) -> dict:
        """The prompt-time statistics the stats tokens read: prompt_stats plus the human prior's estimates."""
        stats = dict(prompt_stats or {})
        if self.prior is not None:
            stats.update(self.prior.stats(features, stats))
        return stats

    def probe_slot(self, answer_prefix: str | None) -> tuple[str, str] | None:
        """(dimension key, prior-slot name) when ``answer_prefix`` asks a dimension the probe estimates."""
        if self.dimension_probe is None or not answer_prefix:
            return None
        if self._probe_slots is None:
            from llmvqa.dimensions import load_dimensions

            version = self.cfg.prompt_version
            self._probe_slots = {aspect_prefix(form, version): (d.key, PRIOR_OF_STREAM[d.group])
                                 for d in load_dimensions(version).dimensions.values()
                                 if d.key in self.dimension_probe.dimensions and d.group in PRIOR_OF_STREAM
                                 for form in aspect_forms(f"dimension:{d.key}", version)}  # by key or by name
        return self._probe_slots.get(answer_prefix)

    def query_stats(self, features: VideoFeatures, prompt_stats: dict | None, answer_prefix: str | None,
                    stats: dict | None = None, estimates: dict | None = None) -> dict:
        """The prompt-time statistics of one question: ``input_stats``, and for a dimension the probe estimates
        (not read by the scorer) that estimate in the prior slot of its stream. ``stats`` / ``estimates``: the
        clip's ``input_stats`` and probe estimates when already computed."""
        stats = dict(stats if stats is not None else self.input_stats(features, prompt_stats))
        slot = None if self.reads_by_scorer(answer_prefix) else self.probe_slot(answer_prefix)
        if slot is not None:
            estimates = estimates if estimates is not None else self.dimension_probe.estimates(features, prompt_stats)
            stats[slot[1]] = estimates[slot[0]]
        return stats

    @property
    def has_scorer(self) -> bool:
        return self._scorer is not None

    @contextlib.contextmanager
    def scoring(self):
        """Within this block the scorer's adapter and projectors run (no-op for a model without a scorer)."""
        if self._scorer is None or self._scorer["active"]:
            yield
            return
        self._set_adapter("scorer")
        self._scorer["active"] = True
        try:
            yield
        finally:
            self._scorer["active"] = False
            self._set_adapter("default")

    def _set_adapter(self, name: str, flags: list | None = None) -> None:
        """Switch the active PEFT adapter without the side effect of PEFT's set_adapter, which gives the
        active adapter gradients: every parameter keeps its requires_grad (or gets the one in flags)."""
        flags = flags if flags is not None else [(p, p.requires_grad) for p in self.lm.parameters()]
        self.lm.set_adapter(name)
        known = {id(p): on for p, on in flags}
        for p in self.lm.parameters():  # parameters new since flags were taken (a just-loaded adapter): off
            p.requires_grad_(known.get(id(p), False))

    # ------------------------------------------------------------------ core
    def project(self, batch: dict) -> torch.Tensor:
        """Feature tokens of every stream in template order: (B, tokens_per_video, H)."""
        dev = self.device
        # the projectors' own dtype: DeepSpeed's bf16 mode casts the whole module (no autocast)
        projectors = self.projectors
        if self._scorer is not None and self._scorer["active"]:
            projectors = self._scorer["projectors"]
            if next(projectors.parameters()).device != dev:  # not a submodule: .to() on the model skips it
                projectors.to(dev)
        dtype = next(projectors.parameters()).dtype
        outs = [projectors[s](batch["stream_tokens"][s].to(dev, dtype), batch["stream_lengths"][s].to(dev),
                                   batch["stream_stats"][s].to(dev, dtype))
                for s in self.template.stream_order]
        return torch.cat(outs, dim=1)  # (B, 3 * tokens_per_stream, H)

    def embed_inputs(self, input_ids: torch.Tensor, batch: dict) -> torch.Tensor:
        """Token embeddings with the projected features scattered into the placeholder positions."""
        emb = self.embed(input_ids)  # (B, L, H)
        feats = self.project(batch)  # (B, N, H)
        ph = input_ids == self.placeholder_id  # (B, L)
        n_ph, n_feat = int(ph.sum()), feats.shape[0] * feats.shape[1]
        if n_ph != n_feat:
            raise ValueError(f"Video features and video placeholder tokens do not match: "
                             f"placeholder tokens: {n_ph}, feature tokens: {n_feat}")
        per = ph.sum(dim=1)
        if bool((per != feats.shape[1]).any()):
            raise ValueError(f"Each sample needs {feats.shape[1]} placeholder tokens, got {per.tolist()}")
        return emb.masked_scatter(ph[..., None].expand_as(emb), feats.to(emb.dtype))

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.lm_head(hidden)
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits

    def _head_rows(self, hidden: torch.Tensor, ids) -> torch.Tensor:
        """(B, H) hidden states → (B, len(ids)) logits of the given vocabulary rows only."""
        if hasattr(self.lm_head.weight, "ds_id"):
            # DeepSpeed ZeRO-3 partitions the head (and may share it with the embedding): go through
            # the module so its hooks gather the weight, then keep the wanted columns
            return self._logits(hidden)[:, ids].float()
        w = self.lm_head.weight[ids]  # (K, H)
        logits = hidden.to(w.dtype) @ w.T
        bias = getattr(self.lm_head, "bias", None)
        if bias is not None:
            logits = logits + bias[ids]
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits.float()

    def _level_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, H) hidden states → (B, 5) logits of the level words only (5 rows of the LM head)."""
        return self._head_rows(hidden, self.level_ids)

    def forward(self, batch: dict) -> dict:
        """Returns loss (CE on answer tokens, None without labels), level_logits (B, 5), level_probs,
        expected_score (B,) on 1–5 (nan where level_pos < 0), level_mask (B,), target_score."""
        dev = self.device
        input_ids = batch["input_ids"].to(dev)
        mask = batch["attention_mask"].to(dev)
        emb = self.embed_inputs(input_ids, batch)
        hidden = self.decoder(inputs_embeds=emb, attention_mask=mask, use_cache=False).last_hidden_state  # (B, L, H)
        loss = None
        if "labels" in batch:
            target = batch["labels"].to(dev)[:, 1:]  # (B, L-1)
            sel = target != IGNORE
            if bool(sel.any()):
                logits = self._logits(hidden[:, :-1][sel])  # (N, V) only at answer positions
                loss = nn.functional.cross_entropy(logits.float(), target[sel])
            else:  # no answer tokens: a zero that keeps the graph
                loss = hidden.sum() * 0.0
        pos = batch["level_pos"].to(dev)
        has = pos >= 0
        rows = hidden[torch.arange(hidden.shape[0], device=dev), pos.clamp(min=0)]  # (B, H)
        level_logits = self._level_logits(rows)
        probs = torch.softmax(level_logits, dim=-1)
        score = torch.where(has, expected_scores(probs), torch.full_like(probs[:, 0], math.nan))
        out = {"loss": loss, "level_logits": level_logits, "level_probs": probs, "expected_score": score,
               "level_mask": has}
        if "target_score" in batch:
            out["target_score"] = batch["target_score"].to(dev)
        return out

    # ------------------------------------------------------------------ inference
    def _user_turn(self, question: str | None, kind: str, prompt: str | None = None) -> list[dict]:
        return [{"role": "user", "content": VIDEO_TAG + "\n" + (question or self.template.question(kind, prompt))}]

    @torch.no_grad()
    def score_batch(self, features: list[VideoFeatures], prompts: list[str | None] | None = None,
                    prompt_stats: list[dict | None] | None = None, question: str | None = None,
                    answer_prefix: str | None = None) -> list[LevelScore]:
        """Score-only mode: the answer is prefilled up to the level word; no generation."""
        prefix = answer_prefix or level_prefix("overall", self.cfg.prompt_version)
        n = len(features)
        prompts = prompts or [None] * n
        prompt_stats = prompt_stats or [None] * n
        asked = [self.scorer_query(question, prefix, p) for p in prompts]  # the scorer's own wording of its aspects
        exs = [encode_conversation(self._user_turn(q, "rating", p), f, self.template, prompt=p,
                                   prompt_stats=self.query_stats(f, ps, prefix), open_answer=a or prefix)
               for f, p, ps, (q, a) in zip(features, prompts, prompt_stats, asked, strict=True)]
        if any(e.level_pos < 0 for e in exs):
            raise ValueError(f"answer_prefix {prefix!r} does not end where a level word follows (answers.yaml)")
        with self.scoring() if self.reads_by_scorer(prefix) else contextlib.nullcontext():
            out = self.forward(self.collator(exs))
        return [LevelScore.from_probs(p.tolist()) for p in out["level_probs"].cpu()]

    def score(self, features: VideoFeatures, prompt: str | None = None, question: str | None = None, *,
              prompt_stats: dict | None = None, answer_prefix: str | None = None) -> LevelScore:
        """Overall score (or, with a dimension question and answer_prefix, a per-dimension score)."""
        return self.score_batch([features], [prompt], [prompt_stats], question, answer_prefix)[0]

    @torch.no_grad()
    def score_queries(self, features: VideoFeatures, queries: list[tuple[str | None, str | None]],
                      prompt: str | None = None, prompt_stats: dict | None = None) -> list[LevelScore]:
        """Several score-only questions about one video, e.g. every dimension: [(question, answer_prefix)].

        The conversations share their start (system text, feature tokens, ...): it runs once with a KV
        cache, then each question's own tokens run on a copy of that cache. Same numbers as score()
        per query, at a fraction of the cost.
        """
        if not queries:
            return []
        out: list[LevelScore | None] = [None] * len(queries)
        # the scorer's aspects from the scorer; dimensions with a probe estimate in one batch (each its own stats
        # token); the rest on one shared start
        probed = [i for i, (_, a) in enumerate(queries) if not self.reads_by_scorer(a) and self.probe_slot(a)]
        if probed:
            stats = self.input_stats(features, prompt_stats)
            estimates = self.dimension_probe.estimates(features, prompt_stats)  # once per clip
            exs = [encode_conversation(self._user_turn(queries[i][0], "rating", prompt), features, self.template,
                                       prompt=prompt, prompt_stats=self.query_stats(features, prompt_stats,
                                                                                    queries[i][1], stats, estimates),
                                       open_answer=queries[i][1]) for i in probed]
            for i, p in zip(probed, self.forward(self.collator(exs))["level_probs"].cpu(), strict=True):
                out[i] = LevelScore.from_probs(p.tolist())
        for by_scorer in (False, True):
            idx = [i for i, (_, a) in enumerate(queries) if self.reads_by_scorer(a) == by_scorer and out[i] is None]
            if idx:
                asked = [self.scorer_query(*queries[i], prompt) if by_scorer else queries[i] for i in idx]
                with self.scoring() if by_scorer else contextlib.nullcontext():
                    scores = self._score_shared(features, asked, prompt, prompt_stats)
                for i, sc in zip(idx, scores, strict=True):
                    out[i] = sc
        return out  # type: ignore[return-value]

    def _score_shared(self, features: VideoFeatures, queries: list[tuple[str | None, str | None]],
                      prompt: str | None, prompt_stats: dict | None) -> list[LevelScore]:
        overall = level_prefix("overall", self.cfg.prompt_version)
        stats = self.input_stats(features, prompt_stats)
        exs = [encode_conversation(self._user_turn(q, "rating", prompt), features, self.template, prompt=prompt,
                                   prompt_stats=stats, open_answer=a or overall) for q, a in queries]
        if any(e.level_pos < 0 for e in exs):
            raise ValueError("an answer prefix does not end where a level word follows (answers.yaml)")
        ids = [e.input_ids for e in exs]
        k, limit = 0, min(len(i) for i in ids) - 1  # every query keeps ≥ 1 token of its own
        while k < limit and all(i[k] == ids[0][k] for i in ids):
            k += 1
        batch = self.collator([exs[0]])
        dev = self.device
        emb = self.embed_inputs(batch["input_ids"].to(dev), batch)[:, :k]  # (1, k, H) features spliced in
        past = self.decoder(inputs_embeds=emb, attention_mask=torch.ones(1, k, dtype=torch.long, device=dev),
                            use_cache=True).past_key_values
        rests = [e.input_ids[k:] for e in exs]
        if any(self.placeholder_id in r for r in rests):
            raise ValueError("feature placeholders must lie in the shared start of the queries")
        # every query's own tokens in one batch on copies of the shared cache, right-padded: causal
        # attention keeps a query's real tokens blind to its padding
        q, r = len(rests), max(len(x) for x in rests)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.tensor([x + [pad] * (r - len(x)) for x in rests], device=dev)  # (Q, r)
        mask = torch.zeros(q, k + r, dtype=torch.long, device=dev)  # (Q, k + r)
        mask[:, :k] = 1
        for i, x in enumerate(rests):
            mask[i, k:k + len(x)] = 1
        past = copy.deepcopy(past)
        past.batch_repeat_interleave(q)
        out = self.decoder(inputs_embeds=self.embed(ids), attention_mask=mask, past_key_values=past, use_cache=True)
        at = torch.tensor([e.level_pos - k for e in exs], device=dev)
        h = out.last_hidden_state[torch.arange(q, device=dev), at]  # (Q, H)
        probs = torch.softmax(self._level_logits(h), dim=-1)  # (Q, 5)
        return [LevelScore.from_probs(p.tolist()) for p in probs]

    def reported_levels(self, features: VideoFeatures, prompt: str | None = None,
                        prompt_stats: dict | None = None) -> tuple[dict[str, str], LevelScore]:
        """The level of every aspect (overall, groups, dimensions) in score mode, and the overall score."""
        from llmvqa.dimensions import load_dimensions

        spec = load_dimensions(self.cfg.prompt_version)
        keys = ["overall", *spec.groups, *(k for k, d in spec.dimensions.items() if prompt or not d.needs_prompt)]
        aspects = ["overall", *(f"group:{g}" for g in spec.groups),
                   *(f"dimension:{d.name}" for d in spec.dimensions.values() if prompt or not d.needs_prompt)]
        queries = [aspect_query(a, prompt, self.cfg.prompt_version) for a in aspects]
        scores = self.score_queries(features, queries, prompt=prompt, prompt_stats=prompt_stats)
        levels = {k: sc.level for k, sc in zip(keys, scores, strict=True)}
        return levels, scores[0]

    def _evidence_turn(self, question: str | None, kind: str, prompt: str | None, evidence) -> list[dict]:
        from llmvqa.evidence import evidence_text

        text = evidence_text(evidence, self.cfg.prompt_version)
        return [{"role": "user", "content": f"{VIDEO_TAG}\n{text}\n{question or self.template.question(kind, prompt)}"}]

    @torch.no_grad()
    def explain(self, features: VideoFeatures, prompt: str | None = None, *, prompt_stats: dict | None = None,
                question: str | None = None, max_new_tokens: int | None = None, levels: dict | None = None,
                evidence: list | None = None, score: LevelScore | None = None, temperature: float = 0.0,
                streamer=None) -> tuple[str, LevelScore]:
        """Rate-and-explain: the hierarchical chain of thought, written by ``generate`` under the plan of
        the clip's true sentences (``llmvqa.justify``): its measured ``evidence`` (read by the
        model as text in its prompt) and the reported ``levels`` (computed in score mode when not
        given, with ``score`` the overall LevelScore they came with). Returns (text, overall score in
        score mode: the number ``score()`` gives)."""
        from llmvqa.evidence import find_evidence
        from llmvqa.justify import justification_plan
        from llmvqa.model.generation import generate_planned

        if levels is None or score is None:
            computed, score = self.reported_levels(features, prompt, prompt_stats)
            levels = {**computed, **(levels or {})}
        if evidence is None:
            evidence = find_evidence(features, prompt, prompt_stats)
        ex = encode_conversation(self._evidence_turn(question, "explain", prompt, evidence), features, self.template,
                                 prompt=prompt, prompt_stats=self.input_stats(features, prompt_stats), open_answer="")
        plan = justification_plan(levels, evidence, self.cfg.prompt_version)
        text = generate_planned(self, ex, plan, max_new_tokens=max_new_tokens or self.cfg.max_new_tokens,
                                temperature=temperature, streamer=streamer)
        return text, score

    @torch.no_grad()
    def chat(self, features: VideoFeatures, messages: list[dict], prompt: str | None = None, *,
             prompt_stats: dict | None = None, max_new_tokens: int | None = None, levels: dict | None = None,
             evidence: list | None = None, justification: str | None = None, temperature: float = 0.0,
             streamer=None) -> str:
        """Answer the last user turn of ``messages`` [{"role": "user"|"assistant", "content"}...] about a clip.

        The conversation starts from the rating: a first exchange (the evidence and the rate-and-explain
        question; the justification) comes before ``messages``. The answer is written under the plan
        of sentences that answer the question's intent (``justify.chat_plan``): time ranges for "which
        part looks worst?", the evidence for "why is X …?", fixes for "how could it improve?"."""
        from llmvqa.evidence import find_evidence, frame_times
        from llmvqa.justify import chat_plan
        from llmvqa.model.generation import generate_planned

        if not messages or messages[-1].get("role", messages[-1].get("from")) not in ("user", "human"):
            raise ValueError("chat messages must end with a user turn")
        if evidence is None:
            evidence = find_evidence(features, prompt, prompt_stats)
        if levels is None:
            levels = self.reported_levels(features, prompt, prompt_stats)[0]
        if justification is None:
            justification, _ = self.explain(features, prompt, prompt_stats=prompt_stats, levels=levels,
                                            evidence=evidence)
        tag = VIDEO_TAG
        history = [{"role": m.get("role", m.get("from")), "content": str(m.get("content", m.get("value", ""))).replace(tag, "")}
                   for m in messages]
        conv = [*self._evidence_turn(None, "explain", prompt, evidence),
                {"role": "assistant", "content": justification}, *history]
        ex = encode_conversation(conv, features, self.template, prompt=prompt,
                                 prompt_stats=self.input_stats(features, prompt_stats), open_answer="")
        plan = chat_plan(history[-1]["content"], levels, evidence, float(frame_times(features)[-1]),
                         self.cfg.prompt_version)
        return generate_planned(self, ex, plan, max_new_tokens=max_new_tokens or 96, temperature=temperature,
                                streamer=streamer)
