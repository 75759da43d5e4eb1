"""What the server does with a request before and around the model: the body-size middleware, the JSON body,
the chat messages (one video, text turns), text limits, echoed video references, errors as OpenAI-shaped JSON,
and the pieces of a streamed answer."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from llmvqa.errors import LlmvqaError, ModelError, VideoError
from llmvqa.prompts import question
from llmvqa.serving.config import ServerConfig
from llmvqa.serving.security import ApiError

LARGE_BODY = 2**20


def return_memory() -> None:
    """Give freed heap pages back to the OS after a large request or a burst of requests (glibc keeps them
    otherwise; a 200 MiB data: URL left ~600 MiB resident). No-op where there is no glibc."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class BodyLimit:
    """ASGI middleware: 413 for a body over the limit, by Content-Length or while streaming; 503 when
    ``max_large`` requests over 1 MiB are already being handled (each holds a few copies of its body)."""

    def __init__(self, app, max_bytes: int, max_large: int = 2):
        self.app = app
        self.max_bytes = max_bytes
        self.max_large = max_large
        self.large = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            response = JSONResponse(ApiError(413, f"request body over {self.max_bytes} bytes", "payload_too_large")
                                    .body(), status_code=413)
            return await response(scope, receive, send)
        if length is not None and length.isdigit() and int(length) > LARGE_BODY:
            if self.large >= self.max_large:
                busy = ApiError(503, f"{self.max_large} large requests are already being handled; retry shortly",
                                "server_busy")
                return await JSONResponse(busy.body(), status_code=503, headers={"retry-after": "5"})(
                    scope, receive, send)
            self.large += 1
            try:
                return await self._run(scope, receive, send)
            finally:
                self.large -= 1
                return_memory()
        return await self._run(scope, receive, send)

    async def _run(self, scope, receive, send):
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise ApiError(413, f"request body over {self.max_bytes} bytes", "payload_too_large")
            return message

        return await self.app(scope, limited_receive, send)


async def next_piece(streamer, task: asyncio.Future) -> str | None:
    """The next text piece of a TextIteratorStreamer, or None once generation (``task``) is over."""
    import queue

    if streamer is None:
        return None
    while True:
        try:
            piece = streamer.text_queue.get_nowait()
        except queue.Empty:
            if task.done():
                return None
            await asyncio.sleep(0.02)
            continue
        if piece is streamer.stop_signal:
            return None
        if piece:
            return piece


def error_response(err: ApiError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status)


def api_error_of(err: LlmvqaError) -> ApiError:
    if isinstance(err, VideoError):
        return ApiError(422, str(err), "invalid_video")
    if isinstance(err, ModelError):
        return ApiError(500, str(err), "model_error")
    return ApiError(400, str(err), type(err).__name__)


def split_messages(messages: Any) -> tuple[str, list[dict]]:
    """The one video reference in OpenAI-style messages, and the messages reduced to text."""
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list", param="messages")
    videos: list[str] = []
    text_messages = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
            raise ApiError(400, f"messages[{i}] needs a role of system, user or assistant", param=f"messages[{i}]")
        content = m.get("content")
        if isinstance(content, str):
            texts = [content]
        elif isinstance(content, list):
            texts = []
            for j, part in enumerate(content):
                kind = part.get("type") if isinstance(part, dict) else None
                if kind == "text":
                    texts.append(str(part.get("text", "")))
                elif kind == "video_url":
                    ref = part.get("video_url")
                    ref = ref.get("url") if isinstance(ref, dict) else ref
                    if not isinstance(ref, str):
                        raise ApiError(400, "video_url needs a 'url'", param=f"messages[{i}].content[{j}]")
                    videos.append(ref)
                else:
                    raise ApiError(400, f"unsupported content part type {kind!r} (use 'text' or 'video_url')",
                                   param=f"messages[{i}].content[{j}]")
        elif content is None:
            texts = []
        else:
            raise ApiError(400, f"messages[{i}].content must be a string or a list of parts", param=f"messages[{i}]")
        text_messages.append({"role": m["role"], "content": "\n".join(t for t in texts if t).strip()})
    if len(set(videos)) != 1:
        raise ApiError(400, f"the conversation must contain exactly one video (found {len(set(videos))})",
                       param="messages")
    if text_messages[-1]["role"] != "user":
        raise ApiError(400, "the last message must come from the user", param="messages")
    if not text_messages[-1]["content"]:
        text_messages[-1]["content"] = question("rating_cot")  # a video alone: rate and explain it
    return videos[0], text_messages


async def read_json(request: Request) -> Any:
    """The JSON body; 415 unless sent as application/json (a web page cannot send that cross-site without
    a CORS preflight, which this server never grants), 400 for malformed or absurdly nested JSON."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise ApiError(415, "send the body as JSON with 'Content-Type: application/json'", "unsupported_media_type")
    raw = await request.body()
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as err:
        raise ApiError(400, f"the body is not valid JSON ({type(err).__name__})", "invalid_json") from err


def shown_ref(ref: str | None) -> str | None:
    """A video reference as it may be echoed: a data: URL is summarized, never sent back whole."""
    if ref is not None and ref.startswith("data:"):
        return f"{ref[:ref.find(',') + 1][:60]}… ({len(ref)} characters)"
    return ref


def check_text_limits(config: ServerConfig, prompt: Any, messages: list[dict] | None = None) -> None:
    if prompt is not None and len(str(prompt)) > config.max_prompt_chars:
        raise ApiError(413, f"the prompt is longer than {config.max_prompt_chars} characters", "prompt_too_long",
                       param="prompt")
    if messages is not None:
        if len(messages) > config.max_messages:
            raise ApiError(413, f"more than {config.max_messages} messages", "too_many_messages", param="messages")
        for i, m in enumerate(messages):
            if len(m["content"]) > config.max_message_chars:
                raise ApiError(413, f"messages[{i}] is longer than {config.max_message_chars} characters",
                               "message_too_long", param=f"messages[{i}]")


def as_bool(value: Any, default: bool = True) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")

