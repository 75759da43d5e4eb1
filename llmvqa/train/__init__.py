"""Progressive training (Score2Instruct): stage 1 projectors → stage 2 LoRA + score loss → stage 3 full mix."""

from llmvqa.train.config import DataConfig, StageConfig, TrainConfig, load_config
from llmvqa.train.trainer import Trainer

__all__ = ["DataConfig", "StageConfig", "TrainConfig", "Trainer", "load_config"]
