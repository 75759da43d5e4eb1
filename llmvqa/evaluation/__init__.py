"""Evaluation: MOS-correlation metrics, baselines, per-dimension / wrong-prompt checks, justification scores, reports.

    llmvqa evaluate data/synth/manifest.jsonl --split test --model runs/mini/stage3/final
"""

from llmvqa.evaluation.baselines import best_single_stat, cross_val_ridge, fit_predict_ridge, run_baselines
from llmvqa.evaluation.datasets import EvalItem, load_eval_items
from llmvqa.evaluation.justification import coverage, evaluate_bench, level_agreement, self_consistent
from llmvqa.evaluation.metrics import correlation_report, krcc, plcc, rmse, srcc
from llmvqa.evaluation.report import write_report
from llmvqa.evaluation.suite import EvalConfig, dimension_accuracy, evaluate_dataset, wrong_prompt_check

__all__ = [
    "EvalConfig", "EvalItem", "best_single_stat", "correlation_report", "coverage", "cross_val_ridge",
    "dimension_accuracy", "evaluate_bench", "evaluate_dataset", "fit_predict_ridge", "krcc", "level_agreement",
    "load_eval_items", "plcc", "rmse", "run_baselines", "self_consistent", "srcc", "wrong_prompt_check",
    "write_report",
]
