"""All encoder settings in one dataclass; its ``key()`` names a feature-cache entry.

``EncoderConfig`` composes the settings of the three encoders (each defined beside its
encoder), the number of frames decoded per video and the loader's safety limits.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field
from typing import Any

from llmvqa.encoders.motion import MotionConfig
from llmvqa.encoders.semantic import SemanticConfig
from llmvqa.encoders.technical import TechnicalConfig
from llmvqa.errors import ConfigError
from llmvqa.settings import coerce_number
from llmvqa.video.config import VideoLimits

FEATURE_VERSION = "4"
"""Bump when an encoder's output changes for the same settings: every cached feature file misses.
3: per-frame series, frame timestamps and class labels stored with the features (evidence).
4: the technical encoder also measures highlight_cast and channel_balance (``PROBE_STATISTICS``); the rest is
unchanged (``scripts/upgrade_feature_cache.py`` adds them to a version-3 cache without running the models)."""

_SECTIONS: dict[str, type] = {
    "technical": TechnicalConfig,
    "motion": MotionConfig,
    "semantic": SemanticConfig,
    "limits": VideoLimits,
}


@dataclass
class EncoderConfig:
    """Settings of the feature extractor (technical + motion + semantic encoders and frame sampling)."""

    technical: TechnicalConfig = field(default_factory=TechnicalConfig)
    """Technical-quality encoder (fragments, backbone, artefact statistics)."""
    motion: MotionConfig = field(default_factory=MotionConfig)
    """Motion encoder (optical flow on low-resolution gray frames, optional video backbone)."""
    semantic: SemanticConfig = field(default_factory=SemanticConfig)
    """Semantic encoder (per-frame embeddings, text space for prompt alignment)."""
    nframes: int = 16
    """Frames sampled evenly over each video and decoded once; all three encoders see the same frames."""
    limits: VideoLimits = field(default_factory=VideoLimits)
    """Safety caps of the video loader. Not part of ``key()``: they decide whether a video
    loads, never what its features are, so raising a limit keeps the cache valid."""
    semantic_tokens: str | None = None
    """Where the semantic stream's tokens come from: None = the semantic encoder above; a Qwen2-VL /
    Qwen2.5-VL checkpoint (hub id or path) = its vision tower (recipes with ``data.semantic_from_backbone``;
    ``llmvqa.model.qwen_vl``), computed after the cached features load and put in their place. Recorded in
    every checkpoint so loading rebuilds the streams it was trained on. Not part of ``key()``."""

    def __post_init__(self) -> None:
        if self.semantic_tokens is not None and not (isinstance(self.semantic_tokens, str) and self.semantic_tokens):
            raise ConfigError("EncoderConfig", f"semantic_tokens must be a checkpoint id or path, got {self.semantic_tokens!r}")
        if not isinstance(self.nframes, int) or isinstance(self.nframes, bool) or self.nframes < 2:
            raise ConfigError(
                "EncoderConfig", f"nframes must be an integer >= 2 (motion needs two), got {self.nframes!r}"
            )
        for name, cls in _SECTIONS.items():
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(
                    "EncoderConfig", f"{name} must be a {cls.__name__}, got {type(getattr(self, name)).__name__}"
                )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (nested sections as dicts)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderConfig:
        """Inverse of ``to_dict``; missing keys take their defaults, unknown keys raise ConfigError."""
        if not isinstance(data, dict):
            raise ConfigError("EncoderConfig", f"expected a mapping, got {type(data).__name__}")
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key in _SECTIONS:
                kwargs[key] = value if isinstance(value, _SECTIONS[key]) else _build(_SECTIONS[key], value, key)
            elif key in ("nframes", "semantic_tokens"):
                kwargs[key] = value
            else:
                raise ConfigError(
                    "EncoderConfig", f"unknown setting {key!r}", f"known settings: {sorted([*_SECTIONS, 'nframes', 'semantic_tokens'])}"
                )
        return cls(**kwargs)

    def key(self) -> str:
        """Short stable hash of every setting that changes the features (+ FEATURE_VERSION)."""
        data = self.to_dict()
        del data["limits"], data["semantic_tokens"]
        for name in ("alignment_offset", "alignment_scoring", "scoring_top_k"):
            data["semantic"].pop(name)  # apply to prompt statistics, which are never cached
        blob = json.dumps({"feature_version": FEATURE_VERSION, **data}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _build(cls: type, data: Any, section: str) -> Any:
    """A settings dataclass from a dict, turning JSON lists back into tuples where the field is a tuple."""
    if not isinstance(data, dict):
        raise ConfigError("EncoderConfig", f"{section} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError("EncoderConfig", f"unknown {section} settings {unknown}", f"known: {sorted(names)}")
    kwargs = {}
    for k, v in data.items():
        if isinstance(v, list) and "tuple" in str(hints.get(k, "")):
            v = tuple(v)
        kwargs[k] = coerce_number(cls, k, v, f"{section}.{k}", "EncoderConfig")
    return cls(**kwargs)
