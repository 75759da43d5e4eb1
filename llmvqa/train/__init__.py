"""Progressive training (Score2Instruct): stage 1 projectors → stage 2 LoRA + score loss → stage 3 full mix.

Names are imported on first use (PEP 562), so reading a recipe does not load torch.
"""

import importlib

_WHERE = {"DataConfig": "config", "StageConfig": "config", "TrainConfig": "config", "load_config": "config",
          "Trainer": "trainer"}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"llmvqa.train.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'llmvqa.train' has no attribute {name!r}")
