"""Technical, motion and semantic encoders, the feature pipeline and its cache.

    from llmvqa.encoders import EncoderConfig, FeatureExtractor, FeatureCache, get_or_extract

Names load lazily (importing one encoder does not import the others or their models).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EncoderConfig": "config",
    "FEATURE_VERSION": "config",
    "FeatureExtractor": "pipeline",
    "FeatureCache": "cache",
    "content_hash": "cache",
    "get_or_extract": "cache",
    "load_features": "cache",
    "save_features": "cache",
    "MotionConfig": "motion",
    "MotionEncoder": "motion",
    "TechnicalConfig": "technical",
    "TechnicalEncoder": "technical",
    "SemanticConfig": "semantic",
    "SemanticEncoder": "semantic",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'llmvqa.encoders' has no attribute {name!r}")
    return getattr(importlib.import_module(f"llmvqa.encoders.{_EXPORTS[name]}"), name)
