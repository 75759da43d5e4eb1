"""`llmvqa chat VIDEO` — ask follow-up questions about a video's quality.

    llmvqa chat example:bikes                         # interactive; "exit" or Ctrl-D ends
    llmvqa chat clip.mp4 --message "why is the motion poor?" --message "which part looks worst?"
    llmvqa chat example:bikes --stream               # answers printed as they are generated

The conversation starts from the clip's rating (its measured evidence, levels and justification);
answers cite the evidence with its times and never contradict the reported levels.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable

from llmvqa.commands.rate import add_model_args

EXIT_WORDS = ("exit", "quit")


def register(subparsers) -> None:
    p = subparsers.add_parser("chat", help="multi-turn questions about one video's quality",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("video", help="video file, frame folder, or example:NAME")
    p.add_argument("--prompt", default=None, help="text prompt the video was generated from")
    p.add_argument("--message", "-m", action="append", default=None,
                   help="a user turn (repeatable); with it the command answers these and exits")
    p.add_argument("--stream", action="store_true", help="print each answer as it is generated")
    p.add_argument("--temperature", type=float, default=0.0,
                   help="sample the choice of sentences at this temperature (0 = greedy; every answer stays "
                        "within the clip's measured evidence and reported levels)")
    add_model_args(p)
    p.set_defaults(func=run)


def converse(answer: Callable[[list[dict]], str], questions: Iterable[str], write: Callable[[str], None]) -> list[dict]:
    """Run the turns: each question is appended to the history, the answer to it; returns the history."""
    history: list[dict] = []
    for question in questions:
        question = question.strip()
        if not question:
            continue
        if question.lower() in EXIT_WORDS:
            break
        history.append({"role": "user", "content": question})
        reply = answer(list(history))
        history.append({"role": "assistant", "content": reply})
        write(reply)
    return history


def _stdin_questions(interactive: bool) -> Iterable[str]:
    while True:
        if interactive:
            print("you> ", end="", flush=True)
        line = sys.stdin.readline()
        if not line:  # EOF
            return
        yield line


def run(args: argparse.Namespace) -> int:
    from llmvqa.assessor import Assessor, resolve_video
    from llmvqa.video.probe import probe

    probe(resolve_video(args.video))
    assessor = Assessor.from_pretrained(args.model, device=args.device)
    assessor.features(args.video)  # extract once, before the first question
    interactive = args.message is None and sys.stdin.isatty()
    questions = args.message if args.message is not None else _stdin_questions(interactive)
    prefix = "llmvqa> " if interactive else ""
    streamer = None
    if args.stream:  # transformers' TextStreamer prints the tokens as generate() writes them
        from transformers import TextStreamer

        streamer = TextStreamer(assessor.model.tokenizer, skip_prompt=True, skip_special_tokens=True)

    def write(text: str) -> None:
        if streamer is None:
            print(prefix + text, flush=True)

    def answer(msgs: list[dict]) -> str:
        if streamer is not None and prefix:
            print(prefix, end="", flush=True)
        return assessor.chat(args.video, msgs, prompt=args.prompt, temperature=args.temperature, streamer=streamer)

    converse(answer, questions, write)
    return 0
