"""Soak test of ``llmvqa serve`` on loopback (``eval/bench_soak.py``): the server in a subprocess, clients
sending a seeded mix of good, broken, oversized and slow requests, the server's memory, and deadlines.

- ``Server``: ``llmvqa serve`` on a free loopback port with an allowed root (``soak_root``: copies of the
  bundled clips and a text file named ``broken.mp4``);
- ``request``: one request of a kind (``MIX``), whose HTTP status must be one of ``EXPECTED[kind]``;
- ``soak``: client threads drawing from ``MIX`` until a deadline, the server's RSS sampled; ``summarize_requests``
  counts them (a good request must also give the clip's reference score);
- ``timeouts``: explained ratings past a short deadline at once, then one small request that must not wait
  for the timed-out work;
- ``soak_markdown``: the table and the three targets of issue 19.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from llmvqa.evaluation.benchkit import rss_mib

CLIPS: tuple[str, ...] = ("bikes", "carphone_pristine", "carphone_distorted")
"""Bundled example clips copied into the server's root as NAME.mp4."""
EXPECTED: dict[str, set[int]] = {
    "good": {200}, "slow": {200}, "broken_file": {422}, "broken_json": {400}, "outside": {403},
    "oversized": {413, 503}}  # fmt: skip  # 503: max_large_bodies large requests already in hand (Retry-After)
MIX: dict[str, float] = {"good": 0.45, "slow": 0.1, "broken_file": 0.12, "broken_json": 0.1, "outside": 0.1,
                         "oversized": 0.13}
"""Share of each request kind in the soak."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def soak_root(root: str | Path) -> Path:
    """Fill ``root`` with copies of the ``CLIPS`` and a text file named ``broken.mp4``."""
    from llmvqa.assessor import resolve_video

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for name in CLIPS:
        shutil.copy(resolve_video(f"example:{name}"), root / f"{name}.mp4")
    (root / "broken.mp4").write_text("not a video\n" * 100)
    return root


class Server:
    """`llmvqa serve` in a subprocess on a free loopback port."""

    def __init__(self, root: Path, model: str | None, timeout_s: float, max_upload_mb: float):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "llmvqa.cli", "serve", "--port", str(self.port), "--allowed-root", str(root),
               "--timeout-s", str(timeout_s), "--max-upload-mb", str(max_upload_mb)]
        if model:
            cmd += ["--model", model]
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, client, limit_s: float = 600) -> float:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < limit_s:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"the server exited ({self.proc.returncode}): {self.log.read().decode()[-2000:]}")
            try:
                if client.get(self.url + "/health", timeout=2).status_code == 200:
                    return time.perf_counter() - t0
            except Exception:  # noqa: BLE001 - not listening yet
                pass
            time.sleep(0.5)
        raise RuntimeError("the server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class RssSampler(threading.Thread):
    """The peak RSS (MiB) of a process, sampled every 0.2 s until ``stop_flag`` is set or it ends."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop_flag = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self.stop_flag.is_set():
            try:
                self.peak = max(self.peak, rss_mib(self.pid))
            except OSError:
                return
            time.sleep(0.2)


def request(client, url: str, kind: str, clip: str, big: bytes) -> tuple[int, float, dict | None]:
    """One request of ``kind``: (HTTP status, seconds, the JSON answer of a good request)."""
    t0 = time.perf_counter()
    if kind == "good":
        r = client.post(url + "/v1/rate", json={"video": f"{clip}.mp4", "explain": False})
    elif kind == "slow":
        r = client.post(url + "/v1/rate", json={"video": f"{clip}.mp4", "explain": True, "prompt": "a video"})
    elif kind == "broken_file":
        r = client.post(url + "/v1/rate", json={"video": "broken.mp4"})
    elif kind == "broken_json":
        r = client.post(url + "/v1/rate", content=b'{"video": ', headers={"content-type": "application/json"})
    elif kind == "outside":
        r = client.post(url + "/v1/rate", json={"video": "../../etc/passwd"})
    elif kind == "oversized":
        r = client.post(url + "/v1/rate", files={"file": ("big.mp4", big, "video/mp4")})
    else:
        raise ValueError(kind)
    return r.status_code, time.perf_counter() - t0, (r.json() if r.status_code == 200 and kind == "good" else None)


def summarize_requests(records: Sequence[tuple[str, int, float, bool]], wall: float) -> dict:
    """Counts and latencies of (kind, status, seconds, ok) records over ``wall`` seconds, in all and per ``MIX`` kind."""
    by_kind = {}
    for kind in MIX:
        rows = [r for r in records if r[0] == kind]
        lat = np.array([r[2] for r in rows if np.isfinite(r[2])])
        by_kind[kind] = {"requests": len(rows), "failed": sum(not r[3] for r in rows),
                         "statuses": sorted({r[1] for r in rows}),
                         "p50_s": float(np.percentile(lat, 50)) if len(lat) else None,
                         "p99_s": float(np.percentile(lat, 99)) if len(lat) else None}
    lat = np.array([r[2] for r in records if np.isfinite(r[2])])
    return {"seconds": wall, "requests": len(records), "requests_per_s": len(records) / wall,
            "p50_s": float(np.percentile(lat, 50)) if len(lat) else None,
            "p99_s": float(np.percentile(lat, 99)) if len(lat) else None, "by_kind": by_kind,
            "good_failed": by_kind["good"]["failed"], "failed": sum(not r[3] for r in records)}


def soak(url: str, pid: int, clients: int, seconds: float, reference: Mapping[str, float], big: bytes, seed: int) -> dict:
    """``clients`` threads sending ``MIX`` requests for ``seconds``; ``summarize_requests`` with the clients and
    the server's peak RSS."""
    import httpx

    records: list[tuple[str, int, float, bool]] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds
    sampler = RssSampler(pid)
    sampler.start()

    def worker(k: int) -> None:
        rng = np.random.default_rng(seed + k)
        kinds, p = list(MIX), np.array(list(MIX.values()))
        with httpx.Client(timeout=600) as client:
            while time.perf_counter() < deadline:
                kind = str(rng.choice(kinds, p=p / p.sum()))
                clip = CLIPS[int(rng.integers(len(CLIPS)))]
                try:
                    status, dt, body = request(client, url, kind, clip, big)
                except Exception:  # noqa: BLE001 - a dropped connection is a failure
                    status, dt, body = -1, float("nan"), None
                ok = status in EXPECTED[kind] and (body is None or abs(body["score"] - reference[clip]) < 1e-4)
                with lock:
                    records.append((kind, status, dt, ok))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    sampler.stop_flag.set()
    return {"clients": clients, **summarize_requests(records, wall), "peak_rss_mib": sampler.peak}


def timeouts(root: Path, model: str | None, timeout_s: float, n_slow: int, max_upload_mb: float) -> dict:
    """n_slow explained ratings past their deadline at once, then one small request."""
    import httpx

    server = Server(root, model, timeout_s, max_upload_mb)
    try:
        with httpx.Client(timeout=600) as client:
            server.wait_ready(client)
            client.post(server.url + "/v1/rate", json={"video": "carphone_pristine.mp4", "explain": False})  # warm
            t = time.perf_counter()
            assert client.post(server.url + "/v1/rate", json={"video": "carphone_pristine.mp4",
                                                              "explain": False}).status_code == 200
            service = time.perf_counter() - t
        statuses: list[int] = []

        def slow() -> None:
            with httpx.Client(timeout=600) as c:
                statuses.append(c.post(server.url + "/v1/rate", json={"video": "bikes.mp4", "explain": True,
                                                                      "prompt": "x" * 2000}).status_code)

        threads = [threading.Thread(target=slow) for _ in range(n_slow)]
        t_slow = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        slow_wall = time.perf_counter() - t_slow
        with httpx.Client(timeout=600) as client:
            t = time.perf_counter()
            r = client.post(server.url + "/v1/rate", json={"video": "carphone_pristine.mp4", "explain": False})
            waited = time.perf_counter() - t
        return {"timeout_s": timeout_s, "slow_requests": n_slow, "slow_statuses": sorted(statuses),
                "slow_wall_s": slow_wall, "small_service_s": service, "small_after_timeouts_s": waited,
                "small_status": r.status_code, "target_s": service + 2.0, "met": r.status_code == 200 and waited <= service + 2.0}
    finally:
        server.stop()


def _s(v) -> str:
    return "—" if v is None else f"{v:.2f}"


def soak_markdown(report: Mapping) -> str:
    """The soak's summary line and table per request kind, the after-soak and timeout lines, the three targets."""
    s, tout = report["soak"], report["timeouts"]
    lines = [f"soak: {s['clients']} clients, {s['seconds']:.0f} s, {s['requests']} requests, "
             f"{s['requests_per_s']:.2f} requests/s, p50 {_s(s['p50_s'])} s, p99 {_s(s['p99_s'])} s, "
             f"peak RSS {s['peak_rss_mib']:.0f} MiB (server start {report['server_start_s']:.1f} s, {report['cpus']} CPUs)", "",
             "| kind | requests | failed | statuses | p50 s | p99 s |", "|---|---|---|---|---|---|"]
    for kind, k in s["by_kind"].items():
        lines.append(f"| {kind} | {k['requests']} | {k['failed']} | {k['statuses']} | {_s(k['p50_s'])} | {_s(k['p99_s'])} |")
    lines += ["", f"after: healthy {report['healthy_after']}, scores unchanged {report['scores_unchanged']}; RSS "
              f"{report['rss_before_mib']:.0f} MiB before the soak → {report['rss_after_mib']:.0f} MiB after 5 s idle "
              f"({report['rss_change']:+.1%})",
              f"timeouts: {tout['slow_requests']} explained ratings with --timeout-s {tout['timeout_s']:g} → "
              f"{tout['slow_statuses']} in {tout['slow_wall_s']:.1f} s; then a small request took "
              f"{tout['small_after_timeouts_s']:.2f} s, HTTP {tout['small_status']} (alone {tout['small_service_s']:.2f} s)", "",
              f"target no good request fails: {s['good_failed']} failed -> {'PASS' if s['good_failed'] == 0 else 'FAIL'}",
              f"target small request after timeouts <= service + 2 s ({tout['target_s']:.2f} s): "
              f"{tout['small_after_timeouts_s']:.2f} s -> {'PASS' if tout['met'] else 'FAIL'}",
              f"target RSS within 10% of the start: {report['rss_change']:+.1%} -> "
              f"{'PASS' if abs(report['rss_change']) <= 0.10 else 'FAIL'}"]
    return "\n".join(lines)


__all__ = ["CLIPS", "EXPECTED", "MIX", "RssSampler", "Server", "free_port", "request", "soak", "soak_markdown",
           "soak_root", "summarize_requests", "timeouts"]
