"""What the encoders hand to everything downstream, and its on-disk form."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from llmvqa.statistics import STREAMS


@dataclass
class VideoFeatures:
    """Features of one video, independent of any text prompt (so they cache by content).

    tokens: stream name -> float32 tensor (T, D); T may differ per stream and per video.
    stats: statistic name (llmvqa.statistics) -> float; never contains prompt statistics.
    alignment_basis: float32 (E,) vector in the semantic text space; the prompt-alignment
        statistic is cosine(text_embedding(prompt), alignment_basis), computed at use time.
    meta: strings: "path", "content_hash", "encoder_key", "alignment_space", "timestamps" (JSON list of
        the sampled frames' seconds), "labels" (JSON list of the semantic classifier's top class names), ...
    series: per-frame measurements (llmvqa.encoders.technical.SERIES) -> float32 (T,), one value per
        sampled frame; the raw material of time-located evidence (llmvqa.evidence). Empty for features
        from an older cache entry.
    """

    tokens: dict[str, torch.Tensor]
    stats: dict[str, float]
    alignment_basis: torch.Tensor | None = None
    meta: dict[str, str] = field(default_factory=dict)
    series: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [s for s in STREAMS if s not in self.tokens]
        if missing:
            raise ValueError(f"VideoFeatures is missing streams {missing}")
        for name, t in self.tokens.items():
            if t.ndim != 2:
                raise ValueError(f"stream {name!r} tokens must be (T, D), got shape {tuple(t.shape)}")
