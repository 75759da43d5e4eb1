"""llmvqa: rate and explain the visual quality of videos, AI-generated first."""

from llmvqa.errors import ConfigError, DataError, LlmvqaError, ModelError, VideoError
from llmvqa.levels import LEVELS, WEIGHTS

__version__ = "0.1.0"
__all__ = ["Assessor", "LEVELS", "WEIGHTS", "LlmvqaError", "VideoError", "ConfigError", "DataError", "ModelError"]


def __getattr__(name: str):
    # Assessor pulls in torch/transformers; import it only when asked for.
    if name == "Assessor":
        from llmvqa.assessor import Assessor

        return Assessor
    raise AttributeError(f"module 'llmvqa' has no attribute {name!r}")
