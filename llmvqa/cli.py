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

COMMANDS = ("rate", "compare", "chat", "batch", "report", "serve", "features", "sig", "train", "calibrate", "tune-dimensions", "evaluate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmvqa", description="Rate and explain the visual quality of videos.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"llmvqa.commands.{name.replace('-', '_')}").register(sub)
    for p in sub.choices.values():  # every command: -v shows the libraries' logs, warnings and loading bars
        if "--verbose" not in p._option_string_actions:
            p.add_argument("-v", "--verbose", action="store_true",
                           help="show the logs, warnings and loading progress of the libraries underneath")
    return parser


LIBRARIES = ("bitsandbytes", "transformers", "peft", "accelerate", "deepspeed", "timm", "torch", "huggingface_hub",
             "kernels")  # kernels: "Skipping publisher trust check ..." on every load under HF_HUB_OFFLINE=1


def silence_libraries() -> None:
    """The terminal is the user's: without --verbose, third-party loggers show errors only, their
    warnings and weight-loading bars are off (set before they are imported, as they read it then)."""
    import logging
    import warnings

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers' loading bars read it too
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    for name in LIBRARIES:
        warnings.filterwarnings("ignore", module=rf"{name}(\.|$)")


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    if not getattr(args, "verbose", False):
        silence_libraries()
    try:
        code = args.func(args)
    except LlmvqaError as err:
        print(f"llmvqa {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"llmvqa {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader of stdout went away (`llmvqa batch … | head`): stop quietly, as Unix tools do;
        # stdout is pointed at /dev/null so the interpreter's final flush cannot raise again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
