"""The HTTP server through fastapi's TestClient: limits, path safety, errors, API key, concurrency."""

from __future__ import annotations

import base64
import os
import threading

import numpy as np
import pytest
from fastapi.testclient import TestClient
from test_assessor import expected_overall, make_assessor

from llmvqa.serving.app import create_app
from llmvqa.serving.config import ServerConfig
from llmvqa.serving.requests import split_messages
from llmvqa.serving.security import ApiError, check_public_host
from llmvqa.video.config import VideoLimits
from llmvqa.video.writer import write_video


def tiny_video(path, seed=0, size=32, frames=6):
    rng = np.random.default_rng(seed)
    write_video(path, rng.integers(0, 255, (frames, size, size, 3), dtype=np.uint8), fps=8)
    return path


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = tmp_path_factory.mktemp("root")
    for i in range(4):
        tiny_video(r / f"v{i}.mp4", seed=i)
    (r / "fake.mp4").write_text("this is a text file, not a video\n" * 20)
    outside = tmp_path_factory.mktemp("outside")
    tiny_video(outside / "secret.mp4", seed=9)
    os.symlink(outside / "secret.mp4", r / "link.mp4")
    return r


def client(root, delay=0.0, **kw) -> TestClient:
    cfg = ServerConfig(allowed_root=root, **kw)
    return TestClient(create_app(make_assessor(delay), cfg))


def video_msg(url, text="Rate this video."):
    return {"messages": [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": url}},
                                                      {"type": "text", "text": text}]}]}


def assert_error(resp, status, words=""):
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert words.lower() in err["message"].lower()
    return err


def test_health_and_models(root):
    c = client(root)
    assert c.get("/health").json()["status"] == "ok"
    data = c.get("/v1/models").json()
    assert data["object"] == "list" and data["data"][0]["id"] == "fake"


def test_rate_by_path_and_by_upload_agree(root):
    c = client(root)
    r1 = c.post("/v1/rate", json={"video": "v1.mp4", "explain": False})
    assert r1.status_code == 200, r1.text
    body = r1.json()
    assert body["score"] == pytest.approx(expected_overall(root / "v1.mp4"))
    assert body["justification"] is None and "sharpness" in body["dimensions"]
    with open(root / "v1.mp4", "rb") as f:
        r2 = c.post("/v1/rate", files={"file": ("mine.mp4", f, "video/mp4")},
                    data={"prompt": "noise", "explain": "true"})
    assert r2.status_code == 200, r2.text
    assert r2.json()["score"] == pytest.approx(body["score"])
    assert r2.json()["video"] == "mine.mp4" and r2.json()["prompt"] == "noise"
    assert r2.json()["justification"]


def test_chat_completion_openai_shape(root):
    c = client(root)
    r = c.post("/v1/chat/completions", json=video_msg(f"file://{root}/v2.mp4", "why is the motion poor?"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion"
    msg = body["choices"][0]["message"]
    assert msg["role"] == "assistant" and msg["content"].endswith("why is the motion poor?")
    data = base64.b64encode((root / "v2.mp4").read_bytes()).decode()
    r2 = c.post("/v1/chat/completions", json=video_msg(f"data:video/mp4;base64,{data}", "why is the motion poor?"))
    assert r2.status_code == 200, r2.text
    assert r2.json()["choices"][0]["message"]["content"] == msg["content"]


def test_chat_completion_checks_and_passes_temperature_and_max_tokens(root):
    c = client(root)
    body = video_msg(f"file://{root}/v2.mp4", "why is the motion poor?")
    assert_error(c.post("/v1/chat/completions", json=body | {"temperature": "hot"}), 400, "temperature")
    assert_error(c.post("/v1/chat/completions", json=body | {"max_tokens": 0}), 400, "max_tokens")
    r = c.post("/v1/chat/completions", json=body | {"temperature": 0.7, "max_tokens": 32})
    assert r.status_code == 200, r.text


def test_multi_turn_messages_reduce_to_text():
    ref, msgs = split_messages([
        {"role": "user", "content": [{"type": "video_url", "video_url": {"url": "/x.mp4"}}, {"type": "text", "text": "rate"}]},
        {"role": "assistant", "content": "fair"},
        {"role": "user", "content": "which part looks worst?"},
    ])
    assert ref == "/x.mp4"
    assert msgs == [{"role": "user", "content": "rate"}, {"role": "assistant", "content": "fair"},
                    {"role": "user", "content": "which part looks worst?"}]
    with pytest.raises(ApiError):
        split_messages([{"role": "user", "content": "no video"}])
    with pytest.raises(ApiError):
        split_messages([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}])


def test_upload_size_limit_413(root):
    c = client(root, max_upload_mb=0.01)  # 10 KiB
    big = b"\0" * 20000
    assert_error(c.post("/v1/rate", files={"file": ("a.mp4", big, "video/mp4")}), 413)
    data = base64.b64encode(b"\0" * 11000).decode()
    assert_error(c.post("/v1/chat/completions", json=video_msg(f"data:video/mp4;base64,{data}")), 413)


@pytest.mark.parametrize("ref", ["../outside/secret.mp4", "link.mp4", "/etc/passwd", "file:///etc/passwd",
                                 "v1.mp4/../../x.mp4"])
def test_paths_outside_root_are_refused(root, ref):
    c = client(root)
    err = assert_error(c.post("/v1/rate", json={"video": ref}), 403, "outside")
    assert "secret" not in err["message"]


def test_no_root_means_no_local_files(root):
    c = TestClient(create_app(make_assessor(), ServerConfig()))
    assert_error(c.post("/v1/rate", json={"video": str(root / "v1.mp4")}), 403, "--allowed-root")


def test_bad_video_is_422_with_the_video_error(root):
    c = client(root)
    err = assert_error(c.post("/v1/rate", json={"video": "fake.mp4"}), 422)
    assert "fake.mp4" in err["message"] and err["code"] == "invalid_video"
    with open(root / "fake.mp4", "rb") as f:
        err = assert_error(c.post("/v1/rate", files={"file": ("clip.mp4", f, "video/mp4")}), 422)
    assert "clip.mp4" in err["message"] and "llmvqa-serve" not in err["message"]
    assert_error(c.post("/v1/rate", json={"video": "missing.mp4"}), 404)


def test_video_limits_are_enforced(root):
    c = client(root, limits=VideoLimits(max_pixels=16 * 16))
    assert_error(c.post("/v1/rate", json={"video": "v1.mp4"}), 422, "max_pixels")


def test_api_key(root):
    c = client(root, api_key="s3cret")
    assert_error(c.get("/v1/models"), 401)
    assert_error(c.post("/v1/rate", json={"video": "v1.mp4"}, headers={"Authorization": "Bearer nope"}), 401)
    ok = c.post("/v1/rate", json={"video": "v1.mp4", "explain": False}, headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200
    assert c.get("/health").status_code == 200


@pytest.mark.parametrize("url", ["http://127.0.0.1/v.mp4", "http://localhost:8000/v.mp4",
                                 "http://169.254.169.254/latest", "https://10.1.2.3/v.mp4", "http://[::1]/v.mp4",
                                 "http://[::ffff:192.168.0.1]/v.mp4", "http://0.0.0.0/v.mp4"])
def test_private_urls_are_refused(root, url):
    c = client(root, allow_urls=True)
    assert_error(c.post("/v1/chat/completions", json=video_msg(url)), 403)


def test_urls_need_opt_in(root):
    assert_error(client(root).post("/v1/rate", json={"video": "https://example.com/v.mp4"}), 403, "--allow-urls")


def test_public_host_check_accepts_public_ip():
    assert check_public_host("8.8.8.8") == ["8.8.8.8"]


def test_timeout_is_504(root):
    c = client(root, delay=0.5, timeout_s=0.2)
    assert_error(c.post("/v1/rate", json={"video": "v3.mp4", "explain": False, "dimensions": False}), 504)


def test_concurrent_requests_never_mix(root):
    c = client(root, delay=0.02)
    results, errors = {}, []

    def work(i, k):
        r = c.post("/v1/rate", json={"video": f"v{i}.mp4", "explain": False, "dimensions": False})
        if r.status_code != 200:
            errors.append(r.text)
        results[(i, k)] = r.json().get("score")

    threads = [threading.Thread(target=work, args=(i, k)) for i in range(4) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for (i, _), score in results.items():
        assert score == pytest.approx(expected_overall(root / f"v{i}.mp4"))


def test_malformed_requests(root):
    c = client(root)
    assert_error(c.post("/v1/rate", content=b"not json", headers={"content-type": "application/json"}), 400)
    assert_error(c.post("/v1/chat/completions", json={"messages": []}), 400)
    assert_error(c.post("/v1/chat/completions", json={**video_msg("v1.mp4"), "model": "gpt-4o"}), 404, "does not exist")


def test_chat_completion_streams_reports_usage_and_the_rating(root):
    import json as _json

    c = client(root)
    plain = c.post("/v1/chat/completions", json={**video_msg("v1.mp4", "why?"), "model": "fake"}).json()
    assert plain["llmvqa"] is not None and "score" in plain["llmvqa"]
    assert plain["choices"][0]["finish_reason"] in ("stop", "length")
    r = c.post("/v1/chat/completions", json={**video_msg("v1.mp4", "why?"), "stream": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = [line.removeprefix("data: ") for line in r.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [_json.loads(e) for e in events[:-1]]
    assert all(ch["object"] == "chat.completion.chunk" for ch in chunks)
    text = "".join(ch["choices"][0]["delta"].get("content", "") for ch in chunks)
    assert text == plain["choices"][0]["message"]["content"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and "usage" in chunks[-1]
    bad = c.post("/v1/chat/completions", json={**video_msg("fake.mp4", "why?"), "stream": True})
    assert_error(bad, 422)  # a bad video is a plain JSON error, not a broken stream


# ---------------------------------------------------------------- hostile input (issue 19)
def test_json_must_be_sent_as_json_and_cross_site_pages_are_refused(root):
    c = client(root)
    body = '{"video": "v1.mp4"}'
    assert_error(c.post("/v1/rate", content=body, headers={"content-type": "text/plain"}), 415, "application/json")
    assert_error(c.post("/v1/rate", content=body), 415)
    assert_error(c.post("/v1/rate", json={"video": "v1.mp4"}, headers={"origin": "https://evil.example"}), 403,
                 "refused")
    ok = client(root, allowed_origins=("https://app.example",))
    assert ok.post("/v1/rate", json={"video": "v1.mp4"}, headers={"origin": "https://app.example"}).status_code == 200


def test_malformed_requests_get_400_not_500(root):
    c = client(root)
    assert_error(c.post("/v1/rate", content="[" * 100_000, headers={"content-type": "application/json"}), 400, "json")
    assert c.post("/v1/rate", json={"video": "a" * 300 + ".mp4"}).status_code in (400, 404)
    assert_error(c.post("/v1/rate", content='{"video": "\\ud800.mp4"}', headers={"content-type": "application/json"}),
                 400, "cannot be used")
    url = client(root, allow_urls=True)
    assert_error(url.post("/v1/rate", json={"video": "http://example.com:99999/v.mp4"}), 400, "malformed")
    assert url.post("/v1/rate", json={"video": "http://[127.0.0.1]/v.mp4"}).status_code in (400, 403)


def test_texts_are_bounded(root):
    c = client(root, max_prompt_chars=50, max_messages=3)
    assert_error(c.post("/v1/rate", json={"video": "v1.mp4", "prompt": "x" * 51}), 413, "prompt")
    msgs = video_msg("v1.mp4")["messages"] + [{"role": "assistant", "content": "ok"}, {"role": "user", "content": "?"}] * 2
    assert_error(c.post("/v1/chat/completions", json={"messages": msgs}), 413, "messages")


def test_answers_leak_neither_the_model_path_nor_the_data_url(root):
    c = client(root)
    r = c.post("/v1/rate", json={"video": "v1.mp4"}).json()
    assert "model" not in r["meta"] and r["meta"]["model_name"]
    data = "data:video/mp4;base64," + base64.b64encode((root / "v2.mp4").read_bytes()).decode()
    r = c.post("/v1/rate", json={"video": data}).json()
    assert len(r["video"]) < 100 and r["video"].startswith("data:video/mp4;base64,")
    keyed = TestClient(create_app(make_assessor(), ServerConfig(allowed_root=root, api_key="k")))
    assert keyed.get("/docs").status_code == 404 and keyed.get("/openapi.json").status_code == 404


def test_a_frame_folder_linking_outside_the_root_is_refused(root, tmp_path):
    inside = root / "frames_link"
    inside.mkdir(exist_ok=True)
    target = tmp_path / "f0.png"
    target.write_bytes(b"\x89PNG")
    if not (inside / "000.png").exists():
        os.symlink(target, inside / "000.png")
    assert_error(client(root).post("/v1/rate", json={"video": "frames_link"}), 403, "outside")


@pytest.mark.parametrize("addr,public", [("8.8.8.8", True), ("2001:4860:4860::8888", True), ("2002:7f00:1::1", False),
                                         ("fec0::1", False), ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),
                                         ("64:ff9b::7f00:1", False), ("::ffff:127.0.0.1", False)])
def test_tunnelled_and_site_local_addresses_are_not_public(addr, public):
    import ipaddress

    from llmvqa.serving.security import is_public

    assert is_public(ipaddress.ip_address(addr)) is public


def test_the_checked_address_is_the_one_connected_to(monkeypatch, tmp_path):
    """DNS rebinding: the name answers a public address when checked and 127.0.0.1 afterwards; the download
    must not reach the local server."""
    import http.server
    import socket

    from llmvqa.serving import security

    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"local secret")

        def log_message(self, *a):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    real = socket.getaddrinfo

    def rebound(host, *args, **kw):  # every lookup after the check answers 127.0.0.1
        if host == "rebind.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real(host, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", rebound)
    # the check saw a public address (TEST-NET-3: public in form, unroutable here)
    monkeypatch.setattr(security, "check_public_host", lambda host, port=None: ["203.0.113.9"])
    cfg = ServerConfig(allow_urls=True, timeout_s=2.0)
    with pytest.raises(ApiError):
        security.download(f"http://rebind.example:{port}/v.mp4", cfg, tmp_path)
    server.shutdown()
    assert hits == []


def post_at_once(c: TestClient, body: dict, n: int) -> list[int]:
    """Status codes of ``n`` identical /v1/rate requests sent together."""
    codes: list[int] = []
    threads = [threading.Thread(target=lambda: codes.append(c.post("/v1/rate", json=body).status_code))
               for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return codes


def test_requests_past_their_deadline_never_take_the_model(root):
    """Three requests that cannot finish in time: all get 504, only the first ever runs the model (the others
    gave up waiting for it at their deadline), and the next request is not stuck behind them."""
    a = make_assessor(delay=1.0)
    calls = []
    real_rate = a.rate
    a.rate = lambda *args, **kw: (calls.append(1), real_rate(*args, **kw))[1]
    c = TestClient(create_app(a, ServerConfig(allowed_root=root, timeout_s=0.3)))
    body = {"video": "v3.mp4", "explain": False, "dimensions": False}
    assert post_at_once(c, body, 3) == [504, 504, 504]
    import time

    time.sleep(1.2)  # the one running call finishes; nothing queued behind it
    assert len(calls) == 1


def test_large_bodies_beyond_the_limit_get_503(root):
    c = TestClient(create_app(make_assessor(delay=0.6), ServerConfig(allowed_root=root, max_large_bodies=1)))
    body = {"video": "v1.mp4", "explain": False, "dimensions": False, "pad": "x" * (2**20 + 10)}
    assert sorted(post_at_once(c, body, 2)) == [200, 503]
    assert c.post("/v1/rate", json=body).status_code == 200  # the slot is free again


def test_compare_endpoint(root):
    c = client(root)
    r = c.post("/v1/compare", json={"a": "v1.mp4", "b": "v2.mp4"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["better"] in ("a", "b", "tie") and 0 <= body["overall"]["p_a_better"] <= 1
    assert_error(c.post("/v1/compare", json={"a": "v1.mp4"}), 400)


# ---------------------------------------------------------------- the official OpenAI client (issue 20)
def test_the_official_openai_client_rates_streams_and_gets_its_errors(root):
    openai = pytest.importorskip("openai")  # a dev dependency (pip install -e '.[dev]')

    import socket
    import time

    import uvicorn

    app = create_app(make_assessor(), ServerConfig(allowed_root=root, api_key="sk-local"))
    with socket.socket() as sock:  # a free loopback port
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    try:
        _drive_with_openai(openai, f"http://127.0.0.1:{port}/v1", root)
    finally:
        server.should_exit = True
        thread.join(10)


def _drive_with_openai(openai, base_url: str, root) -> None:
    oa = openai.OpenAI(base_url=base_url, api_key="sk-local", max_retries=0)
    assert [m.id for m in oa.models.list()] == ["fake"]
    messages = video_msg("v1.mp4", "which part looks worst?")["messages"]
    resp = oa.chat.completions.create(model="fake", messages=messages, max_tokens=48, temperature=0.0)
    answer = resp.choices[0].message.content
    assert answer and resp.choices[0].finish_reason in ("stop", "length") and resp.model == "fake"
    assert resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens > 0
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    rating = resp.model_extra["llmvqa"]  # the score travels with the answer
    assert rating["score"] == pytest.approx(expected_overall(root / "v1.mp4"))
    chunks = list(oa.chat.completions.create(model="fake", messages=messages, max_tokens=48, stream=True))
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == answer
    assert chunks[-1].choices[0].finish_reason == resp.choices[0].finish_reason
    short = oa.chat.completions.create(model="fake", messages=messages, max_tokens=3)
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 3
    with pytest.raises(openai.NotFoundError):
        oa.chat.completions.create(model="gpt-4o", messages=messages)
    with pytest.raises(openai.BadRequestError):
        oa.chat.completions.create(model="fake", messages=messages, max_tokens=0)
    wrong = openai.OpenAI(base_url=base_url, api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.create(model="fake", messages=messages)
