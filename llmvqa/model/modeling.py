"""QualityLLM: projected video feature tokens in a LoRA-tuned causal LM; score + explanation.

Flow: batch (llmvqa.model.collate) → per-stream projectors → feature tokens scattered into the
LLM input embeddings at the placeholder positions → decoder hidden states → the LM head is applied
only where logits are needed (answer tokens for the loss; the five level rows at level_pos).

The model's other concerns are mixed in: checkpoint I/O (``llmvqa.model.checkpoint``), score mode and which
reader answers a question (``llmvqa.model.queries``), rate-and-explain and chat (``llmvqa.model.generation``).

A checkpoint may hold a *scorer*: ``<dir>/scorer/`` is another checkpoint of the same backbone,
encoders and prompts (in the recipes: stage 2's, trained on ratings with the score losses), loaded
as a second PEFT adapter ("scorer") with its own projectors. It reads every overall level (score
mode, the overall query of score_queries, the last sentence of explain); the main adapter answers
everything else (dimensions, justifications, chat).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from llmvqa import cancel
from llmvqa.errors import ConfigError
from llmvqa.model.backbone import language_model_parts, load_backbone
from llmvqa.model.checkpoint import CheckpointMixin
from llmvqa.model.collate import Collator
from llmvqa.model.config import ModelConfig
from llmvqa.model.generation import ExplainChatMixin
from llmvqa.model.prior import HumanPrior
from llmvqa.model.projectors import StreamProjector
from llmvqa.model.queries import QueryMixin
from llmvqa.model.scoring import expected_scores, level_probs, level_token_ids
from llmvqa.model.template import IGNORE, PromptTemplate, choose_placeholder


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


class QualityLLM(CheckpointMixin, QueryMixin, ExplainChatMixin, nn.Module):
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
        probs = level_probs(level_logits)
        score = torch.where(has, expected_scores(probs), torch.full_like(probs[:, 0], math.nan))
        out = {"loss": loss, "level_logits": level_logits, "level_probs": probs, "expected_score": score,
               "level_mask": has}
        if "target_score" in batch:
            out["target_score"] = batch["target_score"].to(dev)
        return out
