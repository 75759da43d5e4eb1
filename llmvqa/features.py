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
    meta: strings: "path", "content_hash", "encoder_key", "alignment_space", ...
    """

    tokens: dict[str, torch.Tensor]
    stats: dict[str, float]
    alignment_basis: torch.Tensor | None = None
    meta: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [s for s in STREAMS if s not in self.tokens]
        if missing:
            raise ValueError(f"VideoFeatures is missing streams {missing}")
        for name, t in self.tokens.items():
            if t.ndim != 2:
                raise ValueError(f"stream {name!r} tokens must be (T, D), got shape {tuple(t.shape)}")
