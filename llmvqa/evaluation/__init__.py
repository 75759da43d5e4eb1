"""Evaluation: MOS-correlation metrics, baselines, per-dimension / wrong-prompt checks, justification scores, reports.

    llmvqa evaluate data/synth/manifest.jsonl --split test --model runs/mini/stage3/final

Names are imported on first use (PEP 562): a command's ``--help`` loads none of scipy, sklearn or torch.
"""

import importlib

_WHERE = {
    "best_single_stat": "baselines", "cross_val_ridge": "baselines", "fit_predict_ridge": "baselines",
    "run_baselines": "baselines", "EvalItem": "datasets", "load_eval_items": "datasets", "coverage": "justification",
    "evaluate_bench": "justification", "level_agreement": "justification", "self_consistent": "justification",
    "violations": "justification", "correlation_report": "metrics", "krcc": "metrics", "plcc": "metrics",
    "rmse": "metrics", "srcc": "metrics", "save_report": "report", "write_report": "report", "EvalConfig": "suite",
    "dimension_accuracy": "suite", "evaluate_dataset": "suite", "wrong_prompt_check": "suite",
}  # fmt: skip
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"llmvqa.evaluation.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'llmvqa.evaluation' has no attribute {name!r}")
