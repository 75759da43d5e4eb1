"""The quality LLM: projectors, backbone loading, prompt rendering, level-softmax scoring."""

from llmvqa.model.config import ModelConfig
from llmvqa.model.modeling import QualityLLM
from llmvqa.model.scoring import level_probs, level_token_ids

__all__ = ["ModelConfig", "QualityLLM", "level_probs", "level_token_ids"]
