"""`llmvqa serve` — an OpenAI-compatible HTTP server (chat completions with video parts, /v1/rate).

    llmvqa serve --allowed-root /data/videos --api-key secret
    curl localhost:8000/v1/rate -H 'Authorization: Bearer secret' -F file=@clip.mp4
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llmvqa.commands.rate import add_model_args


def register(subparsers) -> None:
    p = subparsers.add_parser("serve", help="serve the model over HTTP (OpenAI-compatible)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--allowed-root", type=Path, default=None,
                   help="folder whose videos requests may name by path; default: none (uploads/data URLs only)")
    p.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' on /v1 requests")
    p.add_argument("--allow-urls", action="store_true", help="fetch http(s) video URLs (public addresses only)")
    p.add_argument("--max-upload-mb", type=float, default=200.0, help="largest video per request, MiB (default 200)")
    p.add_argument("--timeout-s", type=float, default=120.0, help="seconds per request before 504 (default 120)")
    p.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="a web origin whose pages may call the server (repeatable); other pages are refused")
    add_model_args(p)
    p.set_defaults(func=run)


ARENAS = "2"
"""glibc malloc arenas of the server process: with one arena per worker thread (the default, 8 × cores), the heap
that concurrent decodes grow stays fragmented across arenas and is not returned after a burst."""


def _with_few_arenas() -> None:
    """Re-run this command with MALLOC_ARENA_MAX set (glibc reads it only at start-up); no-op when it is set."""
    import os

    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return
    os.environ["MALLOC_ARENA_MAX"] = ARENAS
    os.execv(sys.executable, [sys.executable, "-m", "llmvqa.cli", *sys.argv[1:]])


def run(args: argparse.Namespace) -> int:
    if sys.argv[1:2] == ["serve"]:  # started from the command line (not called in-process by a test or a script)
        _with_few_arenas()
    import uvicorn

    from llmvqa.assessor import Assessor
    from llmvqa.serving.app import create_app
    from llmvqa.serving.config import ServerConfig

    config = ServerConfig(allowed_root=args.allowed_root, api_key=args.api_key, allow_urls=args.allow_urls,
                          max_upload_mb=args.max_upload_mb, timeout_s=args.timeout_s,
                          allowed_origins=tuple(args.allow_origin))
    if args.host not in ("127.0.0.1", "localhost", "::1") and config.api_key is None:
        print(f"llmvqa serve: warning: listening on {args.host} without --api-key", file=sys.stderr)
    assessor = Assessor.from_pretrained(args.model, device=args.device)
    getattr(assessor.extractor, "optimize_for_inference", bool)()  # a server reads many videos: 0.15 s now, 0.18 s less each
    uvicorn.run(create_app(assessor, config), host=args.host, port=args.port, workers=1)
    return 0
