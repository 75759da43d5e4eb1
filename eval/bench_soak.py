"""Soak `llmvqa serve` on loopback: 16 clients sending good, broken, oversized and slow requests.

    python eval/bench_soak.py --seconds 90 --clients 16 --out eval/reports/soak

Starts the server (the shipped model unless --model) in a subprocess on a free loopback port, with a root
folder holding copies of the bundled clips and a text file named ``broken.mp4``, then:

1. **reference**: each clip rated once, alone (its score; the service time of a small request);
2. **soak**: ``--clients`` threads for ``--seconds``, each drawing from a seeded mix:
   good (rate a clip by path, no explanation: must answer 200 with the reference score),
   broken (the text file → 422, malformed JSON → 400, a path outside the root → 403),
   oversized (an upload over ``--max-upload-mb`` → 413), slow (rate with an explanation: 200);
   the server's RSS is sampled every 0.2 s;
3. **after**: ``/health``, each clip's score again (unchanged), and the RSS after 5 s idle against the RSS
   before the soak;
4. **timeouts** (a second server with ``--timeout-s`` short): ``--slow`` explained ratings at once, all past
   their deadline; as soon as their 504s are back, one small request — it must not wait for the work of the
   timed-out ones (target: its service time + 2 s).

Prints a table and the three targets of issue 19 (no good request fails; the small request after timeouts
waits ≤ service + 2 s; RSS returns within 10% of where it started); writes report.json to --out.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=90.0, help="length of the soak (bounded)")
    ap.add_argument("--max-upload-mb", type=float, default=4.0)
    ap.add_argument("--timeout-s", type=float, default=4.0, help="deadline of the timeout phase's server")
    ap.add_argument("--slow", type=int, default=5, help="requests past their deadline in the timeout phase")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    import httpx

    from llmvqa.evaluation.benchkit import rss_mib
    from llmvqa.evaluation.report import save_report
    from llmvqa.evaluation.soak import CLIPS, Server, soak, soak_markdown, soak_root, timeouts

    root = soak_root(tempfile.mkdtemp(prefix="soak-"))
    try:
        big = os.urandom(int((args.max_upload_mb + 1) * 2**20))
        server = Server(root, args.model, 600.0, args.max_upload_mb)
        try:
            with httpx.Client(timeout=600) as client:
                start_s = server.wait_ready(client)
                reference = {}
                for name in CLIPS:
                    r = client.post(server.url + "/v1/rate", json={"video": f"{name}.mp4", "explain": False})
                    r.raise_for_status()
                    reference[name] = r.json()["score"]
                client.post(server.url + "/v1/rate", json={"video": "bikes.mp4", "explain": True})  # warm the generator
                time.sleep(2)
                rss_before = rss_mib(server.proc.pid)
            result = soak(server.url, server.proc.pid, args.clients, args.seconds, reference, big, args.seed)
            time.sleep(5)
            with httpx.Client(timeout=600) as client:
                healthy = client.get(server.url + "/health").status_code == 200
                again = {name: client.post(server.url + "/v1/rate", json={"video": f"{name}.mp4", "explain": False}
                                           ).json()["score"] for name in CLIPS}
            time.sleep(2)
            rss_after = rss_mib(server.proc.pid)
        finally:
            server.stop()
        tout = timeouts(root, args.model, args.timeout_s, args.slow, args.max_upload_mb)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    report = {"server_start_s": start_s, "reference": reference, "soak": result, "healthy_after": healthy,
              "scores_unchanged": all(abs(again[n] - reference[n]) < 1e-4 for n in CLIPS),
              "rss_before_mib": rss_before, "rss_after_mib": rss_after,
              "rss_change": (rss_after - rss_before) / rss_before, "timeouts": tout, "cpus": os.cpu_count()}
    text = soak_markdown(report)
    print(text)
    if args.out:
        save_report(args.out, report, markdown=text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
