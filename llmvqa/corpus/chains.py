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
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llmvqa.corpus.degradations import apply, bitrate_for
from llmvqa.corpus.manifest import read_manifest
from llmvqa.errors import DataError
from llmvqa.features import VideoFeatures

CHAIN_KINDS: dict[str, str] = {
    "blur": "technical", "noise": "technical", "exposure": "technical", "contrast": "technical",
    "color_shift": "technical", "desaturate": "technical", "compression": "technical",
    "flicker": "motion", "jitter": "motion", "frozen": "motion", "ghosting": "motion", "morphing": "motion",
}
"""Frame degradations chained, and the group each one hurts."""
CHAIN_STRENGTHS: tuple[float, ...] = (0.0, 0.35, 0.7, 1.0)
DEFAULT_CHAINS = 240
"""Train-split chains the human stage ranks by default (20 per kind; about 9 minutes to build on 2 cores, then cached)."""


@dataclass
class Chain:
    """One clip at growing strengths of one degradation (features in CHAIN_STRENGTHS order)."""

    clip: str
    degradation: str
    group: str
    prompt: str
    strengths: tuple[float, ...]
    features: list[VideoFeatures]
    prompt_stats: list[dict[str, float]] = dataclasses.field(default_factory=list)
    """Prompt statistics of each step against the clip's prompt (empty without a prompt)."""


def clean_records(manifest: str | Path, split: str) -> list[dict]:
    """Undegraded, non-twin records of one split of a synth manifest."""
    return [r for r in read_manifest(manifest, split) if not r.get("degradations") and not r.get("twin_of")]


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
                strengths: tuple[float, ...] = CHAIN_STRENGTHS, seed: int = 0, cache=None) -> Chain:
    """Decode the record's clip (the extractor's sampling), degrade it at each strength (same random
    draws for every strength) and extract features of each. ``cache``: a ``FeatureCache`` that keeps
    each step's features under a key of (video bytes, degradation, strength, seed)."""
    from llmvqa.encoders.cache import content_hash
    from llmvqa.video.loader import load_clip

    path = Path(root) / record["video"]
    keys = []
    if cache is not None:
        video = content_hash(path)
        keys = [hashlib.sha256(f"chain|{video}|{degradation}|{s:.4f}|{seed}".encode()).hexdigest() for s in strengths]
        hits = [cache.get(path, extractor.key, content_hash_=k) for k in keys]
        if all(h is not None for h in hits):
            return _chain(extractor, record, degradation, strengths, hits)
    clip = load_clip(path, nframes=extractor.config.nframes, limits=extractor.config.limits)
    feats = []
    for i, s in enumerate(strengths):
        frames = clip.frames if s == 0 else degrade(clip.frames, degradation, s, np.random.default_rng(seed))
        f = extractor.extract_clip(dataclasses.replace(clip, frames=np.ascontiguousarray(frames)))
        if cache is not None:
            f.meta.update(content_hash=keys[i], encoder_key=extractor.key)
            cache.put(f)
        feats.append(f)
    return _chain(extractor, record, degradation, strengths, feats)


def _chain(extractor, record: dict, degradation: str, strengths, feats: list[VideoFeatures]) -> Chain:
    prompt = record.get("prompt") or ""
    stats = [{k: float(v) for k, v in extractor.prompt_stats(f, prompt).items()} if prompt else {} for f in feats]
    return Chain(record["id"], degradation, CHAIN_KINDS[degradation], prompt, tuple(strengths), feats, stats)


def degrade(frames: np.ndarray, kind: str, strength: float, rng: np.random.Generator) -> np.ndarray:
    """One chain step: a frame degradation, or a real H.264 encode at the corpus' bitrate for the strength
    (``compression``; 8 fps, so the bits per frame match the corpus' clips)."""
    if kind != "compression":
        return apply(frames, kind, strength, rng)
    import tempfile

    import av

    from llmvqa.video.writer import write_video

    fps = 8.0
    with tempfile.TemporaryDirectory() as tmp:
        path = write_video(Path(tmp) / "chain.mp4", frames, fps=fps,
                           bitrate=bitrate_for(strength, (frames.shape[2], frames.shape[1]), fps))
        with av.open(str(path)) as container:
            out = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    if out.shape != frames.shape:  # the writer crops odd sizes to even ones
        out = np.pad(out, [(0, 0), (0, frames.shape[1] - out.shape[1]), (0, frames.shape[2] - out.shape[2]), (0, 0)],
                     mode="edge")
    return out


def build_chains(extractor, manifest: str | Path, split: str, n: int, seed: int = 0, cache=None) -> list[Chain]:
    """``n`` chains of one split (``pick``), features kept in ``cache`` when given."""
    root = Path(manifest).parent
    return [build_chain(extractor, rec, root, kind, seed=seed + i, cache=cache)
            for i, (rec, kind) in enumerate(pick(clean_records(manifest, split), n, seed))]


def changes(chain: Chain) -> bool:
    """Whether the degradation changed the clip at all (its strongest step's features differ from the clean
    clip's). It does not when it cannot: desaturating a grayscale clip. Such a chain has no stronger
    degradation to rank, so the chain checks and the ranking pairs leave it out (``ranked_chains``)."""
    a, b = chain.features[0], chain.features[-1]
    return a.stats != b.stats or any(not np.array_equal(np.asarray(a.tokens[s]), np.asarray(b.tokens[s])) for s in a.tokens)


def ranked_chains(chains: list[Chain]) -> list[Chain]:
    """The chains whose degradation changed the clip (``changes``)."""
    return [ch for ch in chains if changes(ch)]


def ordered_pairs(scores: list[float]) -> tuple[int, int]:
    """(pairs where the stronger degradation scores strictly lower, all pairs) of one chain."""
    good = total = 0
    for i in range(len(scores)):
        for j in range(i + 1, len(scores)):
            total += 1
            good += scores[j] < scores[i]
    return good, total


__all__ = ["CHAIN_KINDS", "CHAIN_STRENGTHS", "DEFAULT_CHAINS", "Chain", "build_chain", "build_chains", "changes", "clean_records",
           "degrade", "ordered_pairs", "pick", "ranked_chains"]
