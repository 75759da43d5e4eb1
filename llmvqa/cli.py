"""`llmvqa` command line: one subcommand per module in llmvqa.commands.

Each command module defines ``register(subparsers)``, which adds its parser and
sets ``func`` (called with the parsed args; returns an exit code or None).
Errors a user can cause (LlmvqaError) print as one line and exit 2 — no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from llmvqa.errors import LlmvqaError

COMMANDS = ("rate", "chat", "batch", "serve", "features", "sig", "train", "calibrate", "evaluate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmvqa", description="Rate and explain the visual quality of videos.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"llmvqa.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        code = args.func(args)
    except LlmvqaError as err:
        print(f"llmvqa {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"llmvqa {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
