"""Does the prompt-alignment statistic itself tell a wrong prompt from the right one?

For each wrong-prompt pair of a synth corpus (``<corpus>/pairs.jsonl``: the same video with its own
prompt and with another source's), counts how often the wrong prompt scores strictly lower, per
split, before any model is involved. Three versions of the statistic:

    raw           cos(prompt, video basis), the default ``prompt_alignment``
    classes       raw − the prompt's mean cosine to the encoder's 1000 class names (a per-prompt
                  offset: some prompts sit close to every basis, "hub" prompts)
    train-videos  raw − the prompt's mean cosine to the bases of the train split's videos
    configured    the recipe's own ``prompt_alignment`` (its semantic encoder settings: offset,
                  alignment_scoring, scoring_top_k), exactly as training and rating compute it
    one_cut       the configured statistic with one cut fitted on the train pairs: the fraction of
                  pairs with right ≥ cut > wrong, i.e. the wrong prompt's *level* strictly lower for
                  a two-level rule on this statistic alone (the model card's wrong-prompt target; a
                  rule with more levels that rises with the statistic reaches at most `configured`)

The model's wrong-prompt check (eval/score_dataset.py) cannot do better than the signal it is
given, so this is its ceiling with the offline encoders. Prompt statistics are never cached, so
other settings are measured on the same cached features with --override, e.g.

    python eval/alignment_pairs.py data/synth --config configs/mini.yaml
    python eval/alignment_pairs.py data/synth --config configs/mini.yaml \
        --override data.encoder.semantic.alignment_scoring=class_expectation
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from llmvqa.evaluation.metrics import best_cut

VARIANTS = ("raw", "classes", "train-videos")
COLUMNS = (*VARIANTS, "configured", "one_cut")


def pair_separation(pairs: list[tuple[str, str, str, str]], text: dict[str, torch.Tensor],
                    basis: dict[str, torch.Tensor], classes: torch.Tensor,
                    train_bases: torch.Tensor) -> dict[str, dict[str, float]]:
    """pairs: (split, video id, right prompt, wrong prompt); text: prompt → (E,); basis: video id → (E,);
    classes: (C, E) class-name embeddings; train_bases: (N, E). → {split: {variant: fraction lower, "pairs": n}}."""
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


def configured_separation(pairs: list[tuple[str, str, str, str]], value) -> dict[str, float]:
    """value(video id, prompt) → the configured statistic; → {split: fraction of pairs where the wrong prompt is lower}."""
    hits: dict[str, list[bool]] = {}
    for split, vid, right, wrong in pairs:
        hits.setdefault(split, []).append(value(vid, wrong) < value(vid, right))
    return {s: round(sum(h) / len(h), 3) for s, h in hits.items()}


def one_cut_separation(pairs: list[tuple[str, str, str, str]], value, fit_split: str = "train") -> dict:
    """The ceiling of "the wrong prompt gets a lower *level*" for a rule that reads the level from the
    statistic with one cut: the cut is fitted on ``fit_split``'s pairs (the midpoint that puts the most
    right prompts at or above it and wrong prompts below it), then each split's fraction of pairs with
    right ≥ cut > wrong. → {"cut": float, split: fraction}. A level needs an absolute value, so a
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", help="a synth corpus folder (manifest.jsonl, pairs.jsonl, videos/)")
    ap.add_argument("--config", default="configs/mini.yaml", help="recipe whose feature cache / encoder to use")
    ap.add_argument("--override", nargs="*", default=[], metavar="KEY=VALUE",
                    help="recipe settings, e.g. data.encoder.semantic.alignment_scoring=class_expectation")
    ap.add_argument("--json", default="", help="also write the result here")
    args = ap.parse_args(argv)

    from llmvqa.errors import LlmvqaError
    from llmvqa.train.config import load_config
    from llmvqa.train.data import CachedFeatures

    corpus = Path(args.corpus)
    try:
        cfg = load_config(args.config, args.override)
        for f in ("manifest.jsonl", "pairs.jsonl"):
            if not (corpus / f).is_file():
                raise SystemExit(f"error: {corpus / f} not found; make the corpus with `llmvqa sig synth --out {corpus}`")
        recs = {}
        for line in (corpus / "manifest.jsonl").read_text().splitlines():
            r = json.loads(line)
            recs[r["id"]] = {**r, "_root": str(corpus)}
        pairs_raw = [json.loads(line) for line in (corpus / "pairs.jsonl").read_text().splitlines()]
        cached = CachedFeatures(cfg.data)
        sem = cached.extractor.semantic
        basis, feats = {}, {}
        for r in recs.values():
            if not r.get("twin_of"):
                feats[r["id"]] = cached(r)
                basis[r["id"]] = torch.as_tensor(feats[r["id"]].alignment_basis, dtype=torch.float32)
    except LlmvqaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    prompts = sorted({r["prompt"] for r in recs.values() if r.get("prompt")})
    text = dict(zip(prompts, sem.text_encoder.embed(prompts), strict=True))
    classes = sem.class_name_matrix()
    train_bases = torch.stack([basis[i] for i, r in recs.items() if r["split"] == "train" and i in basis])
    pairs = [(recs[p["id"]]["split"], p["id"], recs[p["id"]]["prompt"], recs[p["twin"]]["prompt"]) for p in pairs_raw]
    result = pair_separation(pairs, text, basis, classes, train_bases)
    try:
        memo: dict[tuple[str, str], float] = {}

        def value(vid: str, p: str) -> float:
            if (vid, p) not in memo:
                memo[vid, p] = cached.extractor.prompt_stats(feats[vid], p)["prompt_alignment"]
            return memo[vid, p]

        configured = configured_separation(pairs, value)
        one_cut = one_cut_separation(pairs, value)
    except (LlmvqaError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for split, frac in configured.items():
        result[split]["configured"] = frac
        result[split]["one_cut"] = one_cut[split]
    sc = sem.cfg
    print(f"configured: alignment_scoring={sc.alignment_scoring} scoring_top_k={sc.scoring_top_k} "
          f"alignment_offset={sc.alignment_offset} top_k={sc.top_k}")
    print(f"one_cut: right prompt ≥ {one_cut['cut']:.4f} > wrong prompt (the configured statistic; cut fitted on "
          "the train pairs) — the most a two-level rule on this statistic can separate; with any number of "
          "levels, at most the `configured` fraction")
    print("| split | pairs | " + " | ".join(COLUMNS) + " |\n|---|---|" + "---|" * len(COLUMNS))
    for split in ("train", "val", "test"):
        if split in result:
            r = result[split]
            print(f"| {split} | {r['pairs']} | " + " | ".join(f"{r[v]:.3f}" for v in COLUMNS) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
