"""Speed and memory of `llmvqa compare` and `llmvqa report`, as users run them (whole processes).

    python eval/bench_commands.py --out eval/reports/commands

- compare: ``llmvqa compare A B --json`` on two 4 s 512² clips (real footage, 8 fps), without and with
  ``--prompt``: wall time and peak RSS of the process (start-up and model loading included); and
  ``Assessor.compare`` with the model loaded (what the Python API and ``POST /v1/compare`` cost per pair).
- report: ``llmvqa batch`` rates ``--clips`` clips (score, groups and dimensions, one row each); their rows are
  repeated to ``--rows`` rows with a ``generator`` column of five names, and ``llmvqa report RESULTS --by generator
  --out DIR`` is timed on that file (leaderboard with bootstrap intervals, plots, HTML page): wall time and peak
  RSS. The repeated rows make the timing a function of the row count only; the leaderboard's numbers mean nothing.

Prints a table; writes report.json (and report.md) with ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

GENERATORS = ("gen_a", "gen_b", "gen_c", "gen_d", "gen_e")


def timed(cmd: list[str]) -> dict:
    """Run ``python -m llmvqa.cli CMD...`` (``benchkit.time_process``): wall s, peak RSS MiB, exit code."""
    from llmvqa.evaluation.benchkit import time_process

    t = time_process([sys.executable, "-m", "llmvqa.cli", *cmd], None)
    if t["returncode"]:
        raise SystemExit(f"error: llmvqa {' '.join(cmd)} exited {t['returncode']}: {t['stderr_tail']}")
    return {"command": "llmvqa " + " ".join(cmd), "wall_s": t["wall_s"], "peak_rss_mib": t["peak_rss_mib"]}


def repeat_rows(results: Path, out: Path, rows: int) -> int:
    """Write ``rows`` rows of ``results`` (cycled) to ``out`` with a ``generator`` column; returns the row count."""
    with results.open(newline="") as f:
        reader = csv.DictReader(f)
        fields, real = list(reader.fieldnames or []), [r for r in reader if r.get("status") == "ok"]
    if not real:
        raise SystemExit(f"error: {results}: no rated rows to repeat")
    with out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[*fields, "generator"])
        w.writeheader()
        for i in range(rows):
            w.writerow({**real[i % len(real)], "video": f"v{i}.mp4", "generator": GENERATORS[i % len(GENERATORS)]})
    return rows


def in_process_compare(a: Path, b: Path, prompt: str, repeats: int) -> dict:
    """Seconds per ``Assessor.compare`` call with the model loaded and warm (median of ``repeats`` after one untimed
    call), and the load time."""
    import statistics

    from llmvqa.assessor import Assessor
    from llmvqa.cli import silence_libraries

    silence_libraries()  # as the CLI does: the libraries' loading notes are not this benchmark's output
    t0 = time.perf_counter()
    assessor = Assessor.from_pretrained()
    load = time.perf_counter() - t0
    assessor.compare(a, b, prompt=prompt)  # the first call also loads the text encoder: not timed
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        assessor.compare(a, b, prompt=prompt)
        times.append(time.perf_counter() - t)
    return {"load_s": load, "compare_s": statistics.median(times), "repeats": repeats}


def render(report: dict) -> str:
    rows = [("`llmvqa compare A B --json` (2 clips)", report["compare"]),
            ("`llmvqa compare A B --prompt … --json`", report["compare_prompt"]),
            (f"`llmvqa report` over {report['report_rows']:,} rows, 5 groups", report["report"]),
            (f"`llmvqa batch` of the {report['clips']} clips behind it (score, groups, dimensions)", report["batch"])]
    lines = ["Whole processes (start-up and model loading included), "
             f"{report['cpus']} CPUs; clips of 4 s at 512², 8 fps", "",
             "| command | wall s | peak RSS MiB |", "|---|---|---|"]
    lines += [f"| {name} | {r['wall_s']:.1f} | {r['peak_rss_mib']:.0f} |" for name, r in rows]
    api = report["api"]
    lines += ["", f"`Assessor.compare` with the model loaded (the Python API, `POST /v1/compare`): "
                  f"{api['compare_s']:.2f} s per pair with a prompt (median of {api['repeats']} after a warm-up; model load "
                  f"{api['load_s']:.1f} s)"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    import os

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=8, help="clips rated by llmvqa batch for the report's rows")
    ap.add_argument("--rows", type=int, default=10_000, help="rows of the results file llmvqa report reads")
    ap.add_argument("--repeats", type=int, default=3, help="Assessor.compare calls timed in this process")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    from llmvqa.evaluation.benchkit import footage_clips, write_clips

    prompt = "people riding bicycles on a street"
    with tempfile.TemporaryDirectory(prefix="bench-commands-") as tmp:
        tmp = Path(tmp)
        (tmp / "clips").mkdir()
        clips = write_clips(tmp / "clips", footage_clips(max(2, args.clips), size=512, length=32), 8.0,
                            name="clip_{i:03d}")
        a, b = str(clips[0]), str(clips[1])
        report = {"cpus": os.cpu_count(), "clips": len(clips),
                  "compare": timed(["compare", a, b, "--json"]),
                  "compare_prompt": timed(["compare", a, b, "--prompt", prompt, "--json"]),
                  "batch": timed(["batch", str(tmp / "clips"), "--out", str(tmp / "results.csv"), "--no-progress"])}
        report["report_rows"] = repeat_rows(tmp / "results.csv", tmp / "many.csv", args.rows)
        report["report"] = timed(["report", str(tmp / "many.csv"), "--by", "generator", "--out", str(tmp / "page")])
        report["api"] = in_process_compare(clips[0], clips[1], prompt, args.repeats)
    from llmvqa.evaluation.report import print_report

    print_report(render(report), args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
