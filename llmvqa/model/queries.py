"""Score mode of the quality model (mixed into ``QualityLLM``): which reader answers a question and with which
statistics, and the level probabilities of one or many questions about a clip (prefilled up to the level word,
no generation).

Routing: an aspect the scorer reads (overall, groups, prompt alignment: ``scorer_reads`` of its config) runs on
the scorer's adapter and projectors, asked in the wording it was trained on; a dimension the dimension probe
estimates runs on the main adapter with the probe's estimate in the prior slot of its stream; the rest run on
the main adapter with the human prior's statistics.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect

import torch

from llmvqa.features import VideoFeatures
from llmvqa.levels import LevelRating
from llmvqa.model.collate import encode_conversation
from llmvqa.model.prior import PRIOR_OF_STREAM
from llmvqa.model.scoring import level_probs
from llmvqa.prompts import aspect_forms, aspect_prefix, aspect_query, level_prefix, video_turn


def _cache_argument(decoder) -> str:
    """The name of the KV-cache argument (and output field) of ``decoder.forward``: ``cache`` from
    transformers 5.2x on (where the old name is deprecated), ``past_key_values`` before."""
    return _cache_argument_of(type(decoder))


@functools.cache
def _cache_argument_of(cls: type) -> str:  # once per decoder class, not on every scoring call
    return "cache" if "cache" in inspect.signature(cls.forward).parameters else "past_key_values"


class QueryMixin:
    """Which reader answers a question, and score mode."""

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
        """The prompt-time statistics of one question: ``input_stats``, and for a dimension the probe's slot value
        (``DimensionProbe.slot_values``; not read by the scorer) in the prior slot of its stream. ``stats`` / ``estimates``: the
        clip's ``input_stats`` and probe slot values when already computed."""
        stats = dict(stats if stats is not None else self.input_stats(features, prompt_stats))
        slot = None if self.reads_by_scorer(answer_prefix) else self.probe_slot(answer_prefix)
        if slot is not None:
            estimates = estimates if estimates is not None else self.dimension_probe.slot_values(features, prompt_stats)
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

    def _user_turn(self, question: str | None, kind: str, prompt: str | None = None) -> list[dict]:
        return [{"role": "user", "content": video_turn(question or self.template.question(kind, prompt))}]

    @torch.no_grad()
    def score_batch(self, features: list[VideoFeatures], prompts: list[str | None] | None = None,
                    prompt_stats: list[dict | None] | None = None, question: str | None = None,
                    answer_prefix: str | None = None) -> list[LevelRating]:
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
            return self._score_examples(exs)  # the clips' common start (system text ...) runs once

    def score(self, features: VideoFeatures, prompt: str | None = None, question: str | None = None, *,
              prompt_stats: dict | None = None, answer_prefix: str | None = None) -> LevelRating:
        """Overall score (or, with a dimension question and answer_prefix, a per-dimension score)."""
        return self.score_batch([features], [prompt], [prompt_stats], question, answer_prefix)[0]

    @torch.no_grad()
    def score_queries(self, features: VideoFeatures, queries: list[tuple[str | None, str | None]],
                      prompt: str | None = None, prompt_stats: dict | None = None) -> list[LevelRating]:
        """Several score-only questions about one video, e.g. every dimension: [(question, answer_prefix)].

        The conversations share their start (system text, feature tokens, ...): it runs once with a KV
        cache, then each question's own tokens run on a copy of that cache. Same numbers as score()
        per query, at a fraction of the cost.
        """
        if not queries:
            return []
        out: list[LevelRating | None] = [None] * len(queries)
        # the scorer's aspects from the scorer; dimensions with a probe estimate in one batch (each its own stats
        # token); the rest on one shared start
        probed = [i for i, (_, a) in enumerate(queries) if not self.reads_by_scorer(a) and self.probe_slot(a)]
        if probed:
            stats = self.input_stats(features, prompt_stats)
            estimates = self.dimension_probe.slot_values(features, prompt_stats)  # once per clip
            exs = [encode_conversation(self._user_turn(queries[i][0], "rating", prompt), features, self.template,
                                       prompt=prompt, prompt_stats=self.query_stats(features, prompt_stats,
                                                                                    queries[i][1], stats, estimates),
                                       open_answer=queries[i][1]) for i in probed]
            for i, sc in zip(probed, self._score_examples(exs), strict=True):  # shared up to the first stats token
                out[i] = sc
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
                      prompt: str | None, prompt_stats: dict | None) -> list[LevelRating]:
        overall = level_prefix("overall", self.cfg.prompt_version)
        stats = self.input_stats(features, prompt_stats)
        return self._score_examples([encode_conversation(self._user_turn(q, "rating", prompt), features, self.template,
                                                         prompt=prompt, prompt_stats=stats, open_answer=a or overall)
                                     for q, a in queries])

    def _score_examples(self, exs: list) -> list[LevelRating]:
        """Score-mode answers of conversations (about one video, or one question about several). Their common start — the same tokens with the same
        embeddings, feature and statistics tokens included — runs once with a KV cache, then every conversation's
        own rest runs in one batch on copies of that cache: the numbers of one forward per conversation, at a
        fraction of the cost (a dimension's own statistics token ends the common start there)."""
        if any(e.level_pos < 0 for e in exs):
            raise ValueError("an answer prefix does not end where a level word follows (answers.yaml)")
        batch = self.collator(exs)
        dev = self.device
        ids = batch["input_ids"].to(dev)  # (Q, L), right-padded
        emb = self.embed_inputs(ids, batch)  # (Q, L, H) features spliced in
        q = len(exs)
        limit = min(len(e.input_ids) for e in exs) - 1  # every conversation keeps ≥ 1 token of its own
        same = (ids[:, :limit] == ids[:1, :limit]).all(0)
        same &= torch.isclose(emb[:, :limit], emb[:1, :limit], rtol=1e-5, atol=1e-6).all(-1).all(0)
        differ = (~same).nonzero()
        k = int(differ[0]) if len(differ) else limit
        if k < 1:
            out = self.forward(batch)["level_probs"].cpu()
            return [LevelRating.from_probs("", p.tolist()) for p in out]
        name = _cache_argument(self.decoder)
        first = self.decoder(inputs_embeds=emb[:1, :k], attention_mask=torch.ones(1, k, dtype=torch.long, device=dev),
                             use_cache=True)
        past = copy.deepcopy(getattr(first, name))
        past.batch_repeat_interleave(q)
        # right padding: causal attention keeps a conversation's real tokens blind to its padding
        out = self.decoder(inputs_embeds=emb[:, k:], attention_mask=batch["attention_mask"].to(dev),
                           use_cache=True, **{name: past})
        at = batch["level_pos"].to(dev) - k
        h = out.last_hidden_state[torch.arange(q, device=dev), at]  # (Q, H)
        probs = level_probs(self._level_logits(h))  # (Q, 5)
        return [LevelRating.from_probs("", p.tolist()) for p in probs]

    def reported_levels(self, features: VideoFeatures, prompt: str | None = None,
                        prompt_stats: dict | None = None) -> tuple[dict[str, str], LevelRating]:
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
