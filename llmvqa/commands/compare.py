"""`llmvqa compare A B` — which of two clips is better, overall and per dimension, how sure, and why.

    llmvqa compare gen_a.mp4 gen_b.mp4 --prompt "a corgi surfing"
    llmvqa compare clip.mp4 clip.mp4 --model-b runs/other/final     # one clip, two models
    llmvqa compare a.mp4 b.mp4 --json

P(A better) comes from the two level distributions (P(A's level above B's) + ½ P(equal)); the
reasons are the measured defects one clip has and the other does not.
"""

from __future__ import annotations

import argparse

from llmvqa.commands.rate import add_model_args, emit


def register(subparsers) -> None:
    p = subparsers.add_parser("compare", help="which of two clips is better, and why",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", help="first video (file, frame folder, or example:NAME)")
    p.add_argument("b", help="second video")
    p.add_argument("--prompt", default=None, help="text prompt both were generated from (adds prompt alignment)")
    p.add_argument("--model-b", default=None, help="rate B with this model instead (compare two models)")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    add_model_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from llmvqa.assessor import Assessor, resolve_video
    from llmvqa.compare import compare_results, render_comparison
    from llmvqa.video.probe import probe

    for video in (args.a, args.b):
        probe(resolve_video(video))  # a bad file fails here, before any model loads
    first = Assessor.from_pretrained(args.model, device=args.device)
    second = Assessor.from_pretrained(args.model_b, device=args.device) if args.model_b else first
    ra = first.rate(args.a, prompt=args.prompt, explain=False)
    rb = second.rate(args.b, prompt=args.prompt, explain=False)
    result = compare_results(ra, rb, first.statistics_of())
    emit(result.to_dict(), render_comparison(result), args.json)
    return 0
