"""`llmvqa rate VIDEO` — score a video (1–5 and 0–100), rate its dimensions, explain why.

    llmvqa rate example:bikes
    llmvqa rate clip.mp4 --prompt "a red fox running through snow" --json
"""

from __future__ import annotations

import argparse
import json
import sys


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """--model and --device, shared by rate/chat/batch/serve."""
    parser.add_argument("--model", default=None,
                        help="model directory or hub id (default: the shipped models/llmvqa-mini)")
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda (default: the model's choice)")


def add_dimensions_arg(parser: argparse.ArgumentParser, default: bool | None) -> None:
    """``--dimensions/--no-dimensions``, one meaning in rate, batch and evaluate: also rate each quality group and
    dimension. ``default`` None (evaluate): on where the dataset has reference levels to compare with."""
    when = {True: "on", False: "off", None: "on for datasets with reference levels"}[default]
    parser.add_argument("--dimensions", action=argparse.BooleanOptionalAction, default=default,
                        help=f"also rate each quality group and dimension (default: {when}; --no-dimensions is faster)")


def emit(data: dict, text: str, as_json: bool) -> None:
    """A command's result on stdout: ``data`` as JSON (and nothing else) or the readable ``text``."""
    if as_json:
        json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        print(text)


def register(subparsers) -> None:
    p = subparsers.add_parser("rate", help="rate and explain the quality of one video",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("video", help="video file, frame folder, or example:bikes / example:bigbuckbunny / example:carphone")
    p.add_argument("--prompt", default=None, help="text prompt the video was generated from (adds prompt alignment)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--no-explain", dest="explain", action="store_false", help="score only; skip the justification")
    add_dimensions_arg(p, True)
    add_model_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from llmvqa.assessor import Assessor, resolve_video
    from llmvqa.result import render_text
    from llmvqa.video.probe import probe

    probe(resolve_video(args.video))  # a bad file fails here, before the model loads
    assessor = Assessor.from_pretrained(args.model, device=args.device)
    result = assessor.rate(args.video, prompt=args.prompt, explain=args.explain, dimensions=args.dimensions)
    emit(result.to_dict(), render_text(result), args.json)
    return 0
