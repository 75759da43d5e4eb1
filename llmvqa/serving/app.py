"""The HTTP server: OpenAI-compatible chat completions with video parts, plus /v1/rate.

    POST /v1/chat/completions   {"messages": [{"role": "user", "content": [
                                    {"type": "video_url", "video_url": {"url": "file:///data/clip.mp4"}},
                                    {"type": "text", "text": "Rate this video and explain why."}]}]}
    POST /v1/rate               JSON {"video": "clip.mp4", "prompt": "...", "explain": true}
                                or multipart (file=@clip.mp4, prompt=..., explain=true)
    GET  /v1/models, GET /health

One lock serializes model calls (requests never share state); every request has a
deadline (504), a body-size cap (413), probing limits (422) and, optionally, an API key (401).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmvqa.errors import LlmvqaError
from llmvqa.serving.config import ServerConfig
from llmvqa.serving.requests import (
    BodyLimit,
    api_error_of,
    as_bool,
    check_text_limits,
    error_response,
    next_piece,
    read_json,
    return_memory,
    shown_ref,
    split_messages,
)
from llmvqa.serving.security import ApiError, fetch_video, too_large

UPLOAD_SUFFIXES = (".mp4", ".mkv", ".mov", ".webm", ".avi", ".gif", ".m4v", ".mpg", ".mpeg", ".ts")



def create_app(assessor: Any, config: ServerConfig | None = None) -> FastAPI:
    """The FastAPI app around one Assessor (or any object with rate/chat/probe)."""
    config = config or ServerConfig()
    docs = {} if config.api_key is None else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    app = FastAPI(title="llmvqa", version="0.1.0", **docs)  # with a key, nothing is served without it
    model_lock = threading.Lock()
    started = int(time.time())
    model_name = getattr(assessor, "name", None) or config.model_name

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, err: ApiError):
        return error_response(err)

    @app.exception_handler(LlmvqaError)
    async def _llmvqa_error(request: Request, err: LlmvqaError):
        return error_response(api_error_of(err))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, err: RequestValidationError):
        return error_response(ApiError(400, f"invalid request: {err.errors()[:3]}"))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, err: StarletteHTTPException):
        return error_response(ApiError(err.status_code, str(err.detail)))

    @app.exception_handler(Exception)
    async def _internal(request: Request, err: Exception):
        return error_response(ApiError(500, f"internal error ({type(err).__name__})", "internal_error"))

    def check_key(request: Request) -> None:
        origin = request.headers.get("origin")
        if origin is not None and origin.rstrip("/") not in config.allowed_origins:
            raise ApiError(403, f"requests from the web page {origin[:80]!r} are refused (start the server with "
                                "--allow-origin ORIGIN to allow one)", "origin_not_allowed")
        if config.api_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), config.api_key.encode()):
            raise ApiError(401, "missing or wrong API key (send 'Authorization: Bearer <key>')", "invalid_api_key")

    in_flight, in_flight_lock = [0], threading.Lock()  # video jobs running or waiting for the model

    async def with_video(ref: str | None, upload: tuple[str, bytes] | None, work: Callable[[Path], Any]) -> Any:
        """Materialize the video, probe it against the limits, run ``work(path)`` under the lock, with a deadline.

        A request past its deadline is answered 504 and never takes the model afterwards: it waits for the
        lock only until its deadline, and gives up if the deadline passed while it was still preparing."""
        deadline = time.monotonic() + config.timeout_s
        cancelled = threading.Event()

        def job() -> Any:
            with in_flight_lock:
                in_flight[0] += 1
            try:
                return video_job()
            finally:
                with in_flight_lock:
                    in_flight[0] -= 1
                    idle = in_flight[0] == 0
                if idle:  # the last request of a burst: give its decoded frames' heap pages back to the OS
                    return_memory()

        def video_job() -> Any:
            with tempfile.TemporaryDirectory(prefix="llmvqa-serve-") as tmp:
                if upload is not None:
                    name, data = upload
                    suffix = Path(name or "").suffix.lower()
                    path = Path(tmp) / f"upload{suffix if suffix in UPLOAD_SUFFIXES else '.mp4'}"
                    path.write_bytes(data)
                else:
                    path = fetch_video(ref, config, Path(tmp))
                try:
                    assessor.probe(path, config.limits)
                    if cancelled.is_set() or not model_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                        return None  # answered 504 already (or about to be): leave the model to live requests
                    try:
                        if cancelled.is_set():
                            return None
                        from llmvqa.cancel import Cancelled, cancellable

                        # past the deadline the work stops at its next check point (a stage, a token)
                        with cancellable(cancelled):
                            try:
                                return work(path)
                            except Cancelled:
                                return None
                    finally:
                        model_lock.release()
                except LlmvqaError as err:
                    # never show the server's temporary paths; name the video as the client sent it
                    shown = upload[0] if upload is not None else shown_ref(ref)[:100]
                    api = api_error_of(err)
                    api.message = api.message.replace(str(path), shown).replace(tmp, "<upload>")
                    raise api from err

        try:
            result = await asyncio.wait_for(run_in_threadpool(job), timeout=config.timeout_s)
        except asyncio.TimeoutError as err:
            cancelled.set()
            raise ApiError(504, f"the request took longer than the server's {config.timeout_s:g} s limit",
                           "timeout") from err
        if result is None and time.monotonic() >= deadline - 1e-3:
            raise ApiError(504, f"the request took longer than the server's {config.timeout_s:g} s limit", "timeout")
        return result

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": model_name}

    @app.get("/v1/models")
    async def models(request: Request):
        check_key(request)
        return {"object": "list", "data": [{"id": model_name, "object": "model", "created": started,
                                            "owned_by": "llmvqa"}]}

    @app.post("/v1/rate")
    async def rate(request: Request):
        check_key(request)
        ctype = request.headers.get("content-type", "")
        upload = None
        if ctype.startswith("multipart/form-data"):
            form = await request.form()
            file = form.get("file") or form.get("video")
            prompt, explain = form.get("prompt"), form.get("explain")
            dimensions = form.get("dimensions")
            if file is None or isinstance(file, str):
                if not isinstance(file, str):
                    raise ApiError(400, "multipart requests need a 'file' part", param="file")
                ref = file
            else:
                data = await file.read(config.max_upload_bytes + 1)
                if len(data) > config.max_upload_bytes:
                    raise too_large(config)
                upload, ref = (file.filename or "upload.mp4", data), None
        else:
            body = await read_json(request)
            if not isinstance(body, dict) or not isinstance(body.get("video"), str):
                raise ApiError(400, "JSON body needs a 'video' string", param="video")
            ref, prompt = body["video"], body.get("prompt")
            explain, dimensions = body.get("explain"), body.get("dimensions")
        check_text_limits(config, prompt)
        prompt = str(prompt) if prompt else None
        result = await with_video(ref, upload, lambda path: assessor.rate(
            path, prompt=prompt, explain=as_bool(explain), dimensions=as_bool(dimensions)))
        out = result.to_dict()
        out["video"] = shown_ref(ref) if ref is not None else upload[0]
        out["meta"].pop("model", None)  # the server's model path is not the client's business
        out["meta"]["model_name"] = model_name
        return out

    @app.post("/v1/compare")
    async def compare(request: Request):
        """JSON {"a": video, "b": video, "prompt": ...} → which is better, P(A better), per aspect, why."""
        from llmvqa.compare import compare_results

        check_key(request)
        body = await read_json(request)
        if not isinstance(body, dict) or not all(isinstance(body.get(k), str) for k in ("a", "b")):
            raise ApiError(400, "JSON body needs 'a' and 'b' video strings", param="a")
        prompt = body.get("prompt")
        check_text_limits(config, prompt)
        prompt = str(prompt) if prompt else None
        ra = await with_video(body["a"], None, lambda path: assessor.rate(path, prompt=prompt, explain=False))
        rb = await with_video(body["b"], None, lambda path: assessor.rate(path, prompt=prompt, explain=False))
        out = compare_results(ra, rb, assessor.statistics_of()).to_dict()
        out["a"], out["b"] = shown_ref(body["a"]), shown_ref(body["b"])
        return out

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        check_key(request)
        body = await read_json(request)
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a JSON object")
        asked = body.get("model")
        if asked not in (None, "", model_name):
            raise ApiError(404, f"the model {str(asked)[:80]!r} does not exist; this server serves {model_name!r}",
                           "model_not_found", param="model")
        ref, messages = split_messages(body.get("messages"))
        prompt = body.get("prompt") if isinstance(body.get("prompt"), str) else None
        check_text_limits(config, prompt, messages)
        temperature = body.get("temperature", 0.0)
        if temperature is None:
            temperature = 0.0
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2:
            raise ApiError(400, "temperature must be a number in [0, 2]", param="temperature")
        max_tokens = body.get("max_tokens")
        if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int)
                                       or not 1 <= max_tokens <= 1024):
            raise ApiError(400, "max_tokens must be an integer in [1, 1024]", param="max_tokens")
        cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        streamer = None
        if body.get("stream"):
            from transformers import TextIteratorStreamer

            tokenizer = getattr(getattr(assessor, "model", None), "tokenizer", None)
            streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True) if tokenizer else None

        def work(path: Path):
            answer = assessor.chat(path, messages, prompt=prompt, temperature=float(temperature),
                                   max_new_tokens=max_tokens, streamer=streamer)
            return answer, dict(getattr(assessor, "last_chat", {}) or {})

        def message_body(answer: str, info: dict) -> dict:
            usage = info.get("usage") or {}
            usage = {"prompt_tokens": int(usage.get("prompt_tokens", 0)),
                     "completion_tokens": int(usage.get("completion_tokens", 0))}
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            return {"id": cid, "object": "chat.completion", "created": created, "model": model_name,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
                                 "finish_reason": info.get("finish_reason", "stop")}],
                    "usage": usage, "llmvqa": info.get("rating")}

        if not body.get("stream"):
            answer, info = await with_video(ref, None, work)
            return message_body(answer, info)
        return await stream_completion(with_video(ref, None, work), streamer, cid, created)

    async def stream_completion(job, streamer, cid: str, created: int):
        """Server-sent events in OpenAI's chunk shape, tokens as generate() writes them. Errors before the
        first token (a bad video, a timeout) are ordinary JSON errors."""
        task = asyncio.ensure_future(job)
        if streamer is None:  # a model without a tokenizer to stream: the answer comes whole
            await asyncio.wait([task])
        first = await next_piece(streamer, task)
        if first is None and task.done() and task.exception() is not None:
            raise task.exception()

        def chunk(delta: dict, finish: str | None = None, extra: dict | None = None) -> str:
            data = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model_name,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **(extra or {})}
            return f"data: {json.dumps(data)}\n\n"

        async def events():
            yield chunk({"role": "assistant", "content": ""})
            sent = ""
            piece = first
            while piece is not None:
                sent += piece
                yield chunk({"content": piece})
                piece = await next_piece(streamer, task)
            try:
                answer, info = await task
            except ApiError as err:  # failed after streaming began: say so in the stream
                yield f"data: {json.dumps(err.body())}\n\n"
                yield "data: [DONE]\n\n"
                return
            if answer.startswith(sent.strip()) and len(answer) > len(sent.strip()):
                rest = answer[len(sent.strip()):]
                yield chunk({"content": rest if sent else answer})  # text not streamed (e.g. completed plan sentences)
            usage = info.get("usage") or {}
            extra = {"usage": {"prompt_tokens": int(usage.get("prompt_tokens", 0)),
                               "completion_tokens": int(usage.get("completion_tokens", 0)),
                               "total_tokens": int(usage.get("prompt_tokens", 0)) + int(usage.get("completion_tokens", 0))},
                     "llmvqa": info.get("rating")}
            yield chunk({}, info.get("finish_reason", "stop"), extra)
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes, max_large=config.max_large_bodies)
    return app
