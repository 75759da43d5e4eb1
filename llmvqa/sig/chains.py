"""Degradation chains: one clean clip degraded by one kind at growing strengths.

Where a source's own quality is unknown (an AI-generated clip, a shipped shot), the only safe
targets are relative: the same clip with a stronger degradation is worse. A chain is the
features of one undegraded synth clip (``manifest.jsonl``, no degradations, not a wrong-prompt
twin) at ``CHAIN_STRENGTHS`` of one degradation, decoded once with the project's loader and
degraded in memory. The calibration stage trains ranks on chains of the train split; the chain
check (eval/synth_chains.py) counts, on the test split, how often the stronger degradation scores lower.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llmvqa.errors import DataError
from llmvqa.features import VideoFeatures
from llmvqa.sig.degradations import apply

CHAIN_KINDS: dict[str, str] = {
    "blur": "technical", "noise": "technical", "exposure": "technical", "contrast": "technical",
    "color_shift": "technical", "desaturate": "technical",
    "flicker": "motion", "jitter": "motion", "frozen": "motion", "ghosting": "motion", "morphing": "motion",
}
"""Frame degradations chained, and the group each one hurts."""
CHAIN_STRENGTHS: tuple[float, ...] = (0.0, 0.35, 0.7, 1.0)


@dataclass
class Chain:
    """One clip at growing strengths of one degradation (features in CHAIN_STRENGTHS order)."""

    clip: str
    degradation: str
    group: str
    prompt: str
    strengths: tuple[float, ...]
    features: list[VideoFeatures]


def clean_records(manifest: str | Path, split: str) -> list[dict]:
    """Undegraded, non-twin records of one split of a synth manifest."""
    path = Path(manifest)
    if not path.is_file():
        raise DataError(str(path), "not found", "build the corpus first: llmvqa sig synth --out data/synth")
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if rec.get("split") == split and not rec.get("degradations") and not rec.get("twin_of"):
            out.append(rec)
    return out


def pick(records: list[dict], n: int, seed: int = 0) -> list[tuple[dict, str]]:
    """``n`` (record, degradation) pairs: records cycled in a seeded order, kinds dealt round-robin."""
    if not records:
        raise DataError("synth manifest", "has no undegraded clips in this split", "rebuild the corpus")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(records))
    kinds = list(CHAIN_KINDS)
    offset = int(rng.integers(len(kinds)))
    return [(records[order[i % len(records)]], kinds[(i + offset) % len(kinds)]) for i in range(n)]


def build_chain(extractor, record: dict, root: str | Path, degradation: str,
                strengths: tuple[float, ...] = CHAIN_STRENGTHS, seed: int = 0) -> Chain:
    """Decode the record's clip (the extractor's sampling), degrade it at each strength (same random
    draws for every strength) and extract features of each."""
    from llmvqa.video.loader import load_clip

    clip = load_clip(Path(root) / record["video"], nframes=extractor.config.nframes, limits=extractor.config.limits)
    feats = []
    for s in strengths:
        frames = clip.frames if s == 0 else apply(clip.frames, degradation, s, np.random.default_rng(seed))
        feats.append(extractor.extract_clip(dataclasses.replace(clip, frames=np.ascontiguousarray(frames))))
    return Chain(record["id"], degradation, CHAIN_KINDS[degradation], record.get("prompt") or "", tuple(strengths),
                 feats)


def build_chains(extractor, manifest: str | Path, split: str, n: int, seed: int = 0) -> list[Chain]:
    root = Path(manifest).parent
    return [build_chain(extractor, rec, root, kind, seed=seed + i)
            for i, (rec, kind) in enumerate(pick(clean_records(manifest, split), n, seed))]


def ordered_pairs(scores: list[float]) -> tuple[int, int]:
    """(pairs where the stronger degradation scores strictly lower, all pairs) of one chain."""
    good = total = 0
    for i in range(len(scores)):
        for j in range(i + 1, len(scores)):
            total += 1
            good += scores[j] < scores[i]
    return good, total


__all__ = ["CHAIN_KINDS", "CHAIN_STRENGTHS", "Chain", "build_chain", "build_chains", "clean_records",
           "ordered_pairs", "pick"]
