"""Does the prompt-alignment statistic itself tell a wrong prompt from the right one? (eval/alignment_pairs.py)

For each wrong-prompt pair of a synth corpus (``<corpus>/pairs.jsonl``: the same video with its own prompt
and with another source's), the share of pairs where the wrong prompt scores strictly lower, per split,
before any model is involved:

- ``pair_separation``: three versions of the cosine — ``raw`` cos(prompt, video basis); ``classes``: raw −
  the prompt's mean cosine to the class names (a per-prompt offset: "hub" prompts sit close to every basis);
  ``train-videos``: raw − the prompt's mean cosine to the train videos' bases;
- ``configured_separation``: any statistic given as a callable (video id, prompt) → value, e.g. the recipe's
  own ``prompt_alignment``;
- ``one_cut_separation``: the same statistic read with one cut fitted on the train pairs (the ceiling of
  "the wrong prompt gets a strictly lower level" for a two-level rule);
- ``separation_report``: all of them on a corpus, with a recipe's cached features and encoders.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from llmvqa.errors import DataError
from llmvqa.evaluation.metrics import best_cut

VARIANTS = ("raw", "classes", "train-videos")
COLUMNS = (*VARIANTS, "configured", "one_cut")
SPLITS = ("train", "val", "test")

Pair = tuple[str, str, str, str]
"""(split, video id, right prompt, wrong prompt) of one wrong-prompt pair."""


def pair_separation(pairs: Sequence[Pair], text: Mapping[str, Any], basis: Mapping[str, Any], classes: Any,
                    train_bases: Any) -> dict[str, dict[str, float]]:
    """text: prompt → (E,) embedding; basis: video id → (E,); classes: (C, E) class-name embeddings; train_bases:
    (N, E) (torch tensors). → {split: {"pairs": n, variant: share of pairs where the wrong prompt is lower}}."""
    import torch.nn.functional as F

    cls = F.normalize(classes.float(), dim=-1)
    trb = F.normalize(train_bases.float(), dim=-1)
    t = {p: F.normalize(e.float(), dim=-1) for p, e in text.items()}
    offset = {"raw": lambda p: 0.0,
              "classes": lambda p: float((cls @ t[p]).mean()),
              "train-videos": lambda p: float((trb @ t[p]).mean())}
    counts: dict[str, dict[str, float]] = {}
    for split, vid, right, wrong in pairs:
        b = F.normalize(basis[vid].float(), dim=-1)
        c = counts.setdefault(split, {"pairs": 0, **{v: 0 for v in VARIANTS}})
        c["pairs"] += 1
        for v in VARIANTS:
            c[v] += float(b @ t[wrong]) - offset[v](wrong) < float(b @ t[right]) - offset[v](right)
    return {s: {"pairs": c["pairs"], **{v: round(c[v] / c["pairs"], 3) for v in VARIANTS}} for s, c in counts.items()}


def configured_separation(pairs: Sequence[Pair], value: Callable[[str, str], float]) -> dict[str, float]:
    """value(video id, prompt) → the statistic; → {split: share of pairs where the wrong prompt is strictly lower}."""
    hits: dict[str, list[bool]] = {}
    for split, vid, right, wrong in pairs:
        hits.setdefault(split, []).append(value(vid, wrong) < value(vid, right))
    return {s: round(sum(h) / len(h), 3) for s, h in hits.items()}


def one_cut_separation(pairs: Sequence[Pair], value: Callable[[str, str], float], fit_split: str = "train") -> dict:
    """The ceiling of "the wrong prompt gets a lower *level*" for a rule that reads the level from the
    statistic with one cut: the cut is fitted on ``fit_split``'s pairs (the midpoint that puts the most
    right prompts at or above it and wrong prompts below it), then each split's share of pairs with
    right ≥ cut > wrong. → {"cut": float, split: share}. A level needs an absolute value, so a
    statistic that orders the two prompts of a pair well can still separate few pairs this way."""
    vals = [(split, value(vid, right), value(vid, wrong)) for split, vid, right, wrong in pairs]
    fit = [(r, w) for s, r, w in vals if s == fit_split]
    if not fit:
        raise ValueError(f"no {fit_split} pairs to fit the cut on")
    cut = best_cut([x for rw in fit for x in rw], lambda c: sum(r >= c > w for r, w in fit))
    hits: dict[str, list[bool]] = {}
    for s, r, w in vals:
        hits.setdefault(s, []).append(r >= cut > w)
    return {"cut": cut, **{s: round(sum(h) / len(h), 3) for s, h in hits.items()}}


def read_corpus(corpus: str | Path) -> tuple[dict[str, dict], list[Pair]]:
    """(manifest records by id, wrong-prompt pairs) of a synth corpus folder (manifest.jsonl, pairs.jsonl).
    A pair's split and right prompt are its clip's, the wrong prompt its twin's."""
    corpus = Path(corpus)
    for name in ("manifest.jsonl", "pairs.jsonl"):
        if not (corpus / name).is_file():
            raise DataError(str(corpus / name), "not found", f"make the corpus with `llmvqa sig synth --out {corpus}`")
    recs = {}
    for line in (corpus / "manifest.jsonl").read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            recs[r["id"]] = {**r, "_root": str(corpus)}
    pairs = []
    for line in (corpus / "pairs.jsonl").read_text().splitlines():
        if line.strip():
            p = json.loads(line)
            pairs.append((recs[p["id"]]["split"], p["id"], recs[p["id"]]["prompt"], recs[p["twin"]]["prompt"]))
    return recs, pairs


def separation_report(corpus: str | Path, data_cfg: Any) -> dict:
    """Every column of ``COLUMNS`` on a synth corpus, with the cached features and encoders of a recipe's
    ``data`` settings (``load_config(...).data``). → {"splits": {split: {"pairs": n, column: share}}, "cut":
    the one-cut threshold, "semantic": the semantic encoder's settings}. Raises LlmvqaError (missing corpus
    files or features) and ValueError (no train pairs)."""
    import torch

    from llmvqa.train.data import CachedFeatures

    recs, pairs = read_corpus(corpus)
    cached = CachedFeatures(data_cfg)
    sem = cached.extractor.semantic
    basis, feats = {}, {}
    for r in recs.values():
        if not r.get("twin_of"):
            feats[r["id"]] = cached(r)
            basis[r["id"]] = torch.as_tensor(feats[r["id"]].alignment_basis, dtype=torch.float32)
    prompts = sorted({r["prompt"] for r in recs.values() if r.get("prompt")})
    text = dict(zip(prompts, sem.text_encoder.embed(prompts), strict=True))
    train_bases = torch.stack([basis[i] for i, r in recs.items() if r["split"] == "train" and i in basis])
    result = pair_separation(pairs, text, basis, sem.class_name_matrix(), train_bases)
    memo: dict[tuple[str, str], float] = {}

    def value(vid: str, prompt: str) -> float:
        if (vid, prompt) not in memo:
            memo[vid, prompt] = cached.extractor.prompt_stats(feats[vid], prompt)["prompt_alignment"]
        return memo[vid, prompt]

    configured = configured_separation(pairs, value)
    one_cut = one_cut_separation(pairs, value)
    for split, share in configured.items():
        result[split]["configured"] = share
        result[split]["one_cut"] = one_cut[split]
    sc = sem.cfg
    settings = {"alignment_scoring": sc.alignment_scoring, "scoring_top_k": sc.scoring_top_k,
                "alignment_offset": sc.alignment_offset, "top_k": sc.top_k}
    return {"splits": result, "cut": one_cut["cut"], "semantic": settings}


def separation_markdown(splits: Mapping[str, Mapping[str, float]]) -> str:
    """A Markdown table of ``separation_report``'s splits (train, val, test order): pairs and each column's share."""
    lines = ["| split | pairs | " + " | ".join(COLUMNS) + " |", "|---|---|" + "---|" * len(COLUMNS)]
    lines += [f"| {s} | {splits[s]['pairs']} | " + " | ".join(f"{splits[s][c]:.3f}" for c in COLUMNS) + " |"
              for s in SPLITS if s in splits]
    return "\n".join(lines)


__all__ = ["COLUMNS", "VARIANTS", "configured_separation", "one_cut_separation", "pair_separation", "read_corpus",
           "separation_markdown", "separation_report"]
