"""Text generation through transformers' ``generate``, held to a plan of true sentences.

``PlanConstraint`` is a ``LogitsProcessor``: from the tokens generated so far it works out which
slots of the plan (``llmvqa.justify``) are written and how far into a sentence the text is,
and leaves only the tokens that continue an allowed sentence (or end the text, once every required
slot is written). Decoding is whatever ``generate`` does — greedy by default, sampling with
``temperature`` > 0 — with ``max_new_tokens`` as the cap and any transformers streamer.
"""

from __future__ import annotations

import contextlib
import threading

import torch
from torch import nn
from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

from llmvqa.cancel import Cancelled, current
from llmvqa.features import VideoFeatures
from llmvqa.justify import Plan
from llmvqa.levels import LevelRating
from llmvqa.model.collate import encode_conversation
from llmvqa.prompts import VIDEO_TAG, video_turn


class _Cancelled(StoppingCriteria):
    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)



class PlanConstraint(LogitsProcessor):
    """Allow only continuations of the plan's sentences (batch size 1).

    Each phrasing is tokenized with a leading space (and, for the first sentence of the text, also
    without); a sentence is complete when its last token is written. Slots are used at most once,
    so the text cannot repeat itself; the text may end (``end_ids``) once every required slot is
    written and at least ``min_sentences`` are; after a ``final`` slot or ``max_sentences`` it must.
    """

    def __init__(self, plan: Plan, tokenizer, end_ids: list[int]):
        self.plan = plan
        self.end_ids = list(end_ids)
        self._seqs: list[tuple[int, list[int], bool]] = []  # (slot index, token ids, is the no-space form)
        for i, slot in enumerate(plan.slots):
            for text in slot.texts:
                self._seqs.append((i, tokenizer(" " + text, add_special_tokens=False)["input_ids"], False))
                self._seqs.append((i, tokenizer(text, add_special_tokens=False)["input_ids"], True))
        self._start: int | None = None
        self._cache: tuple | None = None  # (tokens parsed, those tokens, used, live, partial)

    def _available(self, used: list[int]) -> list[int]:
        done = {self.plan.slots[i].key for i in used}
        return [i for i, s in enumerate(self.plan.slots) if i not in used and all(a in done for a in s.after)]

    def _may_end(self, used: list[int]) -> bool:
        done = {self.plan.slots[i].key for i in used}
        req = all(s.key in done for s in self.plan.slots if s.required)
        return req and len(used) >= self.plan.min_sentences

    def _must_end(self, used: list[int]) -> bool:
        return bool(used) and (self.plan.slots[used[-1]].final or len(used) >= self.plan.max_sentences)

    def parse(self, gen: list[int]) -> tuple[list[int], list[tuple[int, list[int], bool]], int]:
        """(slots written, candidate sequences still matching the current sentence, its length so far).
        Incremental: generate() appends one token per step, so parsing resumes where the last call stopped."""
        cache = self._cache
        if cache is not None and len(gen) >= cache[0] and gen[: cache[0]] == cache[1]:
            pos, used, live, partial = cache[0], list(cache[2]), list(cache[3]), cache[4]
        else:
            used, pos, live, partial = [], 0, [], 0
        while pos < len(gen):
            if partial == 0:
                avail = set(self._available(used))
                first = not used
                live = [c for c in self._seqs if c[0] in avail and c[2] == first]
            live = [c for c in live if partial < len(c[1]) and c[1][partial] == gen[pos]]
            partial += 1
            pos += 1
            done = [c for c in live if len(c[1]) == partial]
            if done:
                used.append(done[0][0])
                partial, live = 0, []
            elif not live:  # off the plan (cannot happen under this processor): stop parsing
                break
        self._cache = (pos, list(gen[:pos]), list(used), list(live), partial)
        return used, live, partial

    def allowed(self, gen: list[int]) -> set[int]:
        """The tokens that may follow the generated tokens ``gen`` under the plan."""
        used, live, partial = self.parse(gen)
        if partial:
            return {c[1][partial] for c in live}
        if self._must_end(used):
            return set(self.end_ids)
        avail = set(self._available(used))
        allowed = {c[1][0] for c in self._seqs if c[0] in avail and c[2] == (not used) and c[1]}
        if self._may_end(used) or not allowed:
            allowed |= set(self.end_ids)
        return allowed

    def forced(self, gen: list[int], limit: int) -> list[int]:
        """Up to ``limit`` tokens the plan forces after ``gen`` (each the only allowed token): the rest of a
        sentence once its phrasing is settled, a closing sentence that is the only one left, the end."""
        out: list[int] = []
        while len(out) < limit:
            allowed = self.allowed(gen + out)
            if len(allowed) != 1:
                break
            token = next(iter(allowed))
            out.append(token)
            if token in self.end_ids:
                break
        return out

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._start is None:
            self._start = input_ids.shape[1]
        allowed = self.allowed(input_ids[0, self._start :].tolist())
        mask = torch.full_like(scores, float("-inf"))
        idx = torch.tensor(sorted(allowed), device=scores.device)
        mask[:, idx] = 0
        return scores + mask


class PlanCandidates:
    """Jump-forward decoding inside ``generate``: a candidate generator for its assisted decoding that
    proposes the tokens the plan forces (``PlanConstraint.forced``). The model checks them all in one
    forward pass and keeps them — under the constraint a forced token is the only one it can choose —
    so the text is exactly what step-by-step decoding writes, in a fraction of the forward passes
    (most tokens of a planned sentence are forced once its first tokens are chosen)."""

    requires_model_outputs = False

    def __init__(self, constraint: PlanConstraint, start: int, lookahead: int = 24):
        self.constraint = constraint
        self.start = start
        self.lookahead = lookahead

    def get_candidates(self, input_ids: torch.LongTensor, **_kwargs):
        gen = input_ids[0, self.start :].tolist()
        if not gen:  # the prefill step runs on the prompt's embeddings: no candidates there
            return input_ids, None
        extra = self.constraint.forced(gen, self.lookahead)
        if not extra:
            return input_ids, None
        tail = torch.tensor([extra], dtype=input_ids.dtype, device=input_ids.device)
        return torch.cat([input_ids, tail], dim=1), None

    @property
    def num_drafting_tokens(self) -> int:
        """The most tokens one step proposes (transformers >= 5.2x sizes the cache's rollback by it)."""
        return self.lookahead

    def update_candidate_strategy(self, input_ids, scores, num_matches) -> None:
        pass


def _generating_model(lm: nn.Module) -> nn.Module:
    """The transformers model whose ``generate`` runs (PEFT wrappers delegate to it)."""
    inner = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
    return inner if hasattr(inner, "_get_candidate_generator") else lm


@contextlib.contextmanager
def jump_forward(lm: nn.Module, constraint: PlanConstraint, start: int):
    """While the block runs, ``generate(..., prompt_lookup_num_tokens=N)`` on ``lm`` uses
    :class:`PlanCandidates` as its candidate generator. Yields the generate kwargs to pass ({} when
    this transformers has no assisted decoding to hook, and decoding is step by step)."""
    target = _generating_model(lm)
    if not hasattr(target, "_get_candidate_generator"):
        yield {}
        return
    target._get_candidate_generator = lambda *a, **k: PlanCandidates(constraint, start)
    try:
        yield {"prompt_lookup_num_tokens": 1}
    finally:
        del target._get_candidate_generator


class SubsetHead(nn.Module):
    """The LM head restricted to ``ids``: full-width logits, -1e9 outside ``ids``. Under a plan only
    its tokens can be chosen, so the other rows of a 262k-row head need not be computed (on a CPU
    that head is most of a decoding step)."""

    def __init__(self, head: nn.Module, ids: list[int]):
        super().__init__()
        self.head = head
        self.register_buffer("ids", torch.tensor(sorted(set(ids)), device=head.weight.device), persistent=False)
        self.register_buffer("rows", head.weight.detach()[self.ids].T.contiguous(), persistent=False)  # (H, K), once

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:  # (B, L, H) -> (B, L, V)
        part = hidden.to(self.rows.dtype) @ self.rows  # (B, L, K)
        bias = getattr(self.head, "bias", None)
        if bias is not None:
            part = part + bias[self.ids]
        out = part.new_full((*hidden.shape[:-1], self.head.weight.shape[0]), -1e9)
        out[..., self.ids] = part
        return out


@contextlib.contextmanager
def restricted_head(lm: nn.Module, head: nn.Module, ids: list[int]):
    """Swap ``head`` (a submodule of ``lm``) for a SubsetHead over ``ids`` while the block runs.
    DeepSpeed-partitioned heads (``ds_id``) are left alone."""
    parent = name = None
    if not hasattr(head.weight, "ds_id"):
        for mod in lm.modules():
            for child_name, child in mod.named_children():
                if child is head:
                    parent, name = mod, child_name
    if parent is None:
        yield
        return
    setattr(parent, name, SubsetHead(head, ids))
    try:
        yield
    finally:
        setattr(parent, name, head)


@contextlib.contextmanager
def merged_lora(model):
    """The active LoRA adapter merged into the base weights while the block runs (a decoding step then
    skips the adapters' extra matmuls: about 10% faster on a CPU; the same text), unmerged after.
    Not for 4-bit weights (a merge there is lossy) or DeepSpeed-partitioned ones."""
    lm = model.lm
    ok = (hasattr(lm, "merge_adapter") and not model.cfg.load_in_4bit
          and not hasattr(model.lm_head.weight, "ds_id") and not getattr(lm, "training", False))
    if not ok:
        yield
        return
    lm.merge_adapter()
    try:
        yield
    finally:
        lm.unmerge_adapter()


@torch.no_grad()
def generate_planned(model, ex, plan: Plan, *, max_new_tokens: int = 256, temperature: float = 0.0,
                     streamer=None, jump: bool = True) -> str:
    """Generate the answer of encoded conversation ``ex`` (open assistant turn) under ``plan`` with
    ``model.lm.generate``; returns the text (special tokens and the turn end removed). ``jump``: the
    tokens the plan forces are checked in one forward pass (:func:`jump_forward`; the same text). When
    ``max_new_tokens`` cuts it short, the unfinished sentence is dropped and the required sentences
    not yet written follow in plan order, so the text still states every level it must."""
    batch = model.collator([ex])
    dev = model.device
    mask = batch["attention_mask"].to(dev)
    emb = model.embed_inputs(batch["input_ids"].to(dev), batch)  # (1, L, H) features spliced in
    end_ids = sorted(model._stop_ids)
    constraint = PlanConstraint(plan, model.tokenizer, end_ids)
    kwargs = {"do_sample": True, "temperature": float(temperature)} if temperature > 0 else {"do_sample": False}
    pad = model.tokenizer.pad_token_id if model.tokenizer.pad_token_id is not None else end_ids[0]
    ids = {t for _, seq, _ in constraint._seqs for t in seq} | set(end_ids)
    cancel = current()
    if cancel is not None:
        kwargs["stopping_criteria"] = StoppingCriteriaList([_Cancelled(cancel)])
    jumping = jump_forward(model.lm, constraint, start=0) if jump else contextlib.nullcontext({})
    with merged_lora(model), restricted_head(model.lm, model.lm_head, sorted(ids)), jumping as assisted:
        out = model.lm.generate(inputs_embeds=emb, attention_mask=mask, max_new_tokens=max_new_tokens,
                                logits_processor=LogitsProcessorList([constraint]), eos_token_id=end_ids,
                                pad_token_id=pad, streamer=streamer, top_k=None, top_p=None, **kwargs, **assisted)
    if cancel is not None and cancel.is_set():  # stopped by _Cancelled between passes: the work is cancelled
        raise Cancelled()
    generated = out[0].tolist()
    ids = [i for i in generated if i not in model._stop_ids]
    ended = any(i in model._stop_ids for i in generated)
    model.last_generation = {"prompt_tokens": int(emb.shape[1]), "completion_tokens": len(generated),
                             "finish_reason": "stop" if ended or len(generated) < max_new_tokens else "length"}
    used, _, partial = constraint.parse(ids)
    if partial:  # stopped by max_new_tokens inside a sentence: drop the unfinished sentence
        ids = ids[: len(ids) - partial]
    text = model.tokenizer.decode(ids, skip_special_tokens=True).strip()
    done = {plan.slots[i].key for i in used}
    missing = [s.texts[0] for s in plan.slots if s.required and s.key not in done]
    return " ".join([text, *missing]).strip()  # the cap cut required sentences: they close the text as planned


class ExplainChatMixin:
    """Rate-and-explain and chat of the quality model (mixed into ``QualityLLM``): ``generate_planned`` under the
    plans of ``llmvqa.justify``."""

    def _evidence_turn(self, question: str | None, kind: str, prompt: str | None, evidence) -> list[dict]:
        from llmvqa.evidence import evidence_text

        text = evidence_text(evidence, self.cfg.prompt_version)
        return [{"role": "user", "content": video_turn(text, question or self.template.question(kind, prompt))}]

    @torch.no_grad()
    def explain(self, features: VideoFeatures, prompt: str | None = None, *, prompt_stats: dict | None = None,
                question: str | None = None, max_new_tokens: int | None = None, levels: dict | None = None,
                evidence: list | None = None, score: LevelRating | None = None, temperature: float = 0.0,
                streamer=None) -> tuple[str, LevelRating]:
        """Rate-and-explain: the hierarchical chain of thought, written by ``generate`` under the plan of
        the clip's true sentences (``llmvqa.justify``): its measured ``evidence`` (read by the
        model as text in its prompt) and the reported ``levels`` (computed in score mode when not
        given, with ``score`` the overall LevelRating they came with). Returns (text, overall score in
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
