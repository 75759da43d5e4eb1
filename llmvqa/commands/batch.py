"""`llmvqa batch DIR|CSV --out results.csv` — rate many videos, one CSV row each.

    llmvqa batch videos/ --out results.csv
    llmvqa batch list.csv --out results.csv --explain     # list.csv: video[,prompt]

Rows are written (and flushed) as each video finishes, so a killed run loses at most
one video (a row torn by the kill is removed on the next run); running the same command
again skips the (video file, prompt) pairs already rated in --out, however the path was
typed, and tries the ones that failed again. A video that fails gets status "error" and
its message; the run carries on, and exits 1 while any listed video's last row is an error.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmvqa.commands.rate import add_dimensions_arg, add_model_args
from llmvqa.errors import DataError, LlmvqaError
from llmvqa.statistics import STREAMS

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".webm", ".avi", ".gif", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts")
BASE_COLUMNS = ("video", "path", "prompt", "status", "score", "score_100", "level", "spread")
TAIL_COLUMNS = ("justification", "error", "seconds")


@dataclass(frozen=True)
class Job:
    video: str
    """The video as listed."""
    path: str
    """Where to read it."""
    prompt: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        """What resuming compares: the resolved file (example:NAME as is) and the prompt."""
        return resume_key(self.path, self.prompt or "")


def resume_key(path: str, prompt: str) -> tuple[str, str]:
    if path.startswith("example:"):
        return path, prompt
    try:
        return str(Path(path).resolve()), prompt
    except (OSError, RuntimeError, ValueError):
        return path, prompt


@dataclass
class BatchSummary:
    done: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    retried: int = 0
    """Videos whose earlier row in the output was an error, tried again."""
    repaired: bool = False
    """The output ended in a row torn by a killed run; it was removed (its video is rated again)."""

    def text(self) -> str:
        rate = self.done / self.seconds if self.seconds > 0 else 0.0
        lines = [f"rated {self.done} video(s) in {self.seconds:.1f} s ({rate:.2f} videos/s), "
                 f"skipped {self.skipped} already in the output, {len(self.failed)} failed"
                 + (f" ({self.retried} earlier failure(s) tried again)" if self.retried else "")]
        if self.repaired:
            lines.append("  removed a row torn by an interrupted run from the end of the output")
        lines += [f"  failed: {video}: {error}" for video, error in self.failed]
        return "\n".join(lines)


def register(subparsers) -> None:
    p = subparsers.add_parser("batch", help="rate a folder or CSV list of videos into a CSV",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="a folder of videos (searched recursively) or a CSV with columns video[,prompt]")
    p.add_argument("--out", required=True, help="results CSV (appended to; videos already in it are skipped)")
    p.add_argument("--prompt-column", default="prompt", help="CSV column holding the text prompt (default: prompt)")
    p.add_argument("--explain", action="store_true", help="also generate a justification per video (slower)")
    add_dimensions_arg(p, True)  # a <name>_score and <name>_level column per group and dimension
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    add_model_args(p)
    p.set_defaults(func=run)


def collect_jobs(source: str | Path, prompt_column: str = "prompt") -> list[Job]:
    """The videos of a folder (sorted, recursive) or of a CSV list (paths relative to the CSV's folder)."""
    src = Path(source)
    if src.is_dir():
        files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
        if not files:
            raise DataError(str(src), "no video files found", f"put videos ({', '.join(VIDEO_SUFFIXES)}) in it")
        return [Job(str(p), str(p)) for p in files]
    if not src.is_file():
        raise DataError(str(src), "not found", "pass a folder of videos or a CSV with a 'video' column")
    with src.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "video" not in reader.fieldnames:
            raise DataError(str(src), f"has no 'video' column (columns: {reader.fieldnames})",
                            "add a header row: video,prompt")
        jobs = []
        for row in reader:
            video = (row.get("video") or "").strip()
            if not video:
                continue
            path = video if video.startswith("example:") or Path(video).is_absolute() else str(src.parent / video)
            prompt = (row.get(prompt_column) or "").strip() or None
            jobs.append(Job(video, path, prompt))
    return jobs


def columns(dimension_names: Iterable[str]) -> list[str]:
    per = [c for n in dimension_names for c in (f"{n}_score", f"{n}_level")]
    return [*BASE_COLUMNS, *per, *TAIL_COLUMNS]


def repair_tail(out: Path) -> bool:
    """Cut a last line without its newline (a row torn when a run was killed mid-write); True if cut."""
    if not out.is_file() or out.stat().st_size == 0:
        return False
    with out.open("rb+") as f:
        f.seek(-1, 2)
        if f.read(1) == b"\n":
            return False
        f.seek(0)
        data = f.read()
        f.truncate(data.rfind(b"\n") + 1)  # 0 when even the header is torn
    return True


def read_done(out: Path) -> tuple[set[tuple[str, str]], set[tuple[str, str]], list[str] | None]:
    """(keys rated ok, keys whose last row is an error, header or None for a new file) of an output CSV.
    Rows of files written before the ``path`` column are keyed by their ``video`` as typed."""
    if not out.is_file() or out.stat().st_size == 0:
        return set(), set(), None
    status: dict[tuple[str, str], str] = {}
    with out.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "video" not in reader.fieldnames:
            raise DataError(str(out), "exists but is not a llmvqa batch result (no 'video' column)",
                            "choose another --out or delete the file")
        for row in reader:
            if row.get("video"):
                key = resume_key(row.get("path") or row["video"], row.get("prompt") or "")
                status[key] = row.get("status") or "ok"
        header = list(reader.fieldnames)
    return {k for k, v in status.items() if v == "ok"}, {k for k, v in status.items() if v != "ok"}, header


def result_row(job: Job, result: Any) -> dict[str, Any]:
    row = {"video": job.video, "path": job.key[0], "prompt": job.prompt or "", "status": "ok",
           "score": f"{result.score:.4f}",
           "score_100": f"{result.score_100:.2f}", "level": result.level, "spread": f"{result.spread:.4f}",
           "justification": result.justification or "", "error": ""}
    for name, rating in {**result.groups, **result.dimensions}.items():
        row[f"{name}_score"] = f"{rating.score:.4f}"
        row[f"{name}_level"] = rating.level
    return row


def run_batch(assessor: Any, jobs: list[Job], out: str | Path, *, explain: bool = False, dimensions: bool = False,
              progress: bool = True) -> BatchSummary:
    """Rate ``jobs`` into ``out`` (append, flush per row, skip videos already there); never stops on a bad video."""
    from tqdm import tqdm

    out = Path(out)
    repaired = repair_tail(out)
    done, failed_before, header = read_done(out)
    names = [*STREAMS, *(d.key for d in assessor.dimensions)] if dimensions else []
    fieldnames = header or columns(names)
    todo, seen = [], set()
    for j in jobs:
        if j.key not in done and j.key not in seen:  # the same file listed twice is rated once
            todo.append(j)
            seen.add(j.key)
    summary = BatchSummary(skipped=len(jobs) - len(todo), repaired=repaired,
                           retried=sum(j.key in failed_before for j in todo))
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with out.open("a", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fieldnames, extrasaction="ignore", restval="")
        if header is None:
            writer.writeheader()
            f.flush()
        for job in tqdm(todo, desc="rating", unit="video", disable=not progress, file=sys.stderr):
            t = time.perf_counter()
            try:
                result = assessor.rate(job.path, prompt=job.prompt, explain=explain, dimensions=dimensions)
                row = result_row(job, result)
                summary.done += 1
            except LlmvqaError as err:
                row = {"video": job.video, "path": job.key[0], "prompt": job.prompt or "", "status": "error",
                       "error": str(err)}
                summary.failed.append((job.video, str(err)))
            except Exception as err:  # a bug on one file must not lose a long batch; it is reported
                message = f"{type(err).__name__}: {err}".replace("\n", " ")
                row = {"video": job.video, "path": job.key[0], "prompt": job.prompt or "", "status": "error",
                       "error": message}
                summary.failed.append((job.video, message))
            row["seconds"] = f"{time.perf_counter() - t:.3f}"
            writer.writerow(row)
            f.flush()
    summary.seconds = time.perf_counter() - t0
    return summary


def run(args: argparse.Namespace) -> int:
    from llmvqa.assessor import Assessor

    jobs = collect_jobs(args.source, args.prompt_column)
    assessor = Assessor.from_pretrained(args.model, device=args.device)
    summary = run_batch(assessor, jobs, args.out, explain=args.explain, dimensions=args.dimensions,
                        progress=args.progress)
    print(summary.text(), file=sys.stderr)
    print(f"results: {args.out}", file=sys.stderr)
    return 1 if summary.failed else 0
