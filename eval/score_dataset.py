"""Score a dataset with a trained model and the baselines; write report.json / report.md / scatter.png.

The same code as `llmvqa evaluate` (llmvqa/commands/evaluate.py); see `--help`.

    python eval/score_dataset.py data/synth/manifest.jsonl --split test --model runs/mini/stage3/final --out eval/results/mini
    python eval/score_dataset.py --model runs/mini/stage3/final --out runs/mini/eval   # default: synth test split
"""

from __future__ import annotations

import argparse
import sys

from llmvqa.commands.evaluate import add_arguments, run
from llmvqa.errors import LlmvqaError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="score_dataset.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except LlmvqaError as err:
        print(f"score_dataset.py: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
