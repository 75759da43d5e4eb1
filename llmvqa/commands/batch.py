"""`llmvqa batch DIR|LIST --out RESULTS` — rate many videos, one row each.

    llmvqa batch videos/ --out results.csv
    llmvqa batch list.csv --out results.csv --explain          # list: video[,prompt] (CSV or Parquet)
    llmvqa batch list.parquet --out results.parquet --engine ray --replicas 4   # Ray: model replicas in parallel
    accelerate launch --multi_gpu --num_processes 4 -m llmvqa.cli batch videos/ --out results.csv   # 4 GPUs

Rows are written as each video finishes (CSV: flushed one by one, so a killed run loses at most
one video and a row torn by the kill is removed on the next run; Parquet: a part file per 16
rows); running the same command again skips the (video file, prompt) pairs already rated in
--out, however the path was typed, and tries the ones that failed again. A video that fails gets
status "error" and its message; the run carries on, and exits 1 while any listed video's last
row is an error. The local engine reads (decodes and encodes) videos in ``--workers`` processes while this one
scores the clips already read, score-only clips in batches (llmvqa.engines.local); ``--workers 0``
does everything in this process, one video at a time. ``--engine ray`` spreads the videos over
model replicas on a local Ray or a cluster (``--ray-address``), with the same rows
(llmvqa.engines.ray_batch; extra: llmvqa[ray]). Started by a launcher (``accelerate launch``, ``torchrun``), each
process rates its share of the list on its own GPU and rank 0 merges the rows into --out in list order
(llmvqa.engines.shards).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmvqa.commands.batch_io import Job, ResultSink, collect_jobs, columns, open_sink
from llmvqa.commands.rate import add_dimensions_arg, add_model_args
from llmvqa.errors import LlmvqaError
from llmvqa.statistics import STREAMS


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
        lines += [f"  failed: {error if error.startswith(video) else f'{video}: {error}'}" for video, error in self.failed]
        return "\n".join(lines)


def register(subparsers) -> None:
    p = subparsers.add_parser("batch", help="rate a folder or a CSV / Parquet list of videos into CSV or Parquet",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="a folder of videos (searched recursively) or a CSV / Parquet list with columns "
                                  "video[,prompt]")
    p.add_argument("--out", required=True, help="results: a .csv file (appended to) or a .parquet folder of parts; "
                                                "videos already in it are skipped")
    p.add_argument("--prompt-column", default="prompt", help="list column holding the text prompt (default: prompt)")
    p.add_argument("--explain", action="store_true", help="also generate a justification per video (slower)")
    add_dimensions_arg(p, True)  # a <name>_score and <name>_level column per group and dimension
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this machine (feature workers + this process); ray: Ray Data over model replicas "
                        "(pip install 'llmvqa[ray]')")
    p.add_argument("--workers", type=int, default=None,
                   help="local engine: processes that decode and encode videos while this one scores (default: one "
                        "per CPU score only, at most 8; with dimensions or --explain none on 2 CPUs, else one; 0: all "
                        "in this process)")
    p.add_argument("--batch-size", type=int, default=8,
                   help="most clips scored in one pass (local engine), videos a Ray replica takes at a time (default 8)")
    p.add_argument("--worker-threads", type=int, default=1, help="local engine: torch threads per worker (default 1)")
    p.add_argument("--ray-address", default=None,
                   help="Ray cluster to join (e.g. auto, or ray://head:10001); default: start a local Ray")
    p.add_argument("--replicas", type=int, default=None,
                   help="model replicas (default: one per GPU with --gpus-per-replica, else CPUs / --cpus-per-replica)")
    p.add_argument("--cpus-per-replica", type=float, default=1.0, help="CPUs each replica reserves (default 1)")
    p.add_argument("--gpus-per-replica", type=float, default=0.0, help="GPUs each replica reserves (default 0)")
    add_model_args(p)
    p.set_defaults(func=run)


def result_row(job: Job, result: Any) -> dict[str, Any]:
    row = {"video": job.video, "path": job.key[0], "prompt": job.prompt or "", "status": "ok",
           "score": f"{result.score:.4f}",
           "score_100": f"{result.score_100:.2f}", "level": result.level, "spread": f"{result.spread:.4f}",
           "justification": result.justification or "", "error": ""}
    for name, rating in {**result.groups, **result.dimensions}.items():
        row[f"{name}_score"] = f"{rating.score:.4f}"
        row[f"{name}_level"] = rating.level
    return row


def error_text(err: BaseException) -> str:
    """A failed video's error column: the message of an LlmvqaError, else the type and message on one line."""
    if isinstance(err, LlmvqaError):
        return str(err)
    return f"{type(err).__name__}: {err}".replace("\n", " ")


def error_row(job: Job, message: str, seconds: float) -> dict[str, Any]:
    """The output row of a video that failed."""
    return {"video": job.video, "path": job.key[0], "prompt": job.prompt or "", "status": "error", "error": message,
            "seconds": f"{seconds:.3f}"}


def rate_job(assessor: Any, job: Job, explain: bool, dimensions: bool) -> dict[str, Any]:
    """The output row of one video: its rating, or status "error" and the message (never raises for one video)."""
    t = time.perf_counter()
    try:
        row = result_row(job, assessor.rate(job.path, prompt=job.prompt, explain=explain, dimensions=dimensions))
    except Exception as err:  # a bad file, or a bug on one file: either must not lose a long batch; it is reported
        return error_row(job, error_text(err), time.perf_counter() - t)
    row["seconds"] = f"{time.perf_counter() - t:.3f}"
    return row


def plan_batch(jobs: list[Job], out: str | Path, dimension_names: list[str]) -> tuple[ResultSink, list[Job], BatchSummary]:
    """Open the output, and list the jobs still to rate (each (file, prompt) once, none already rated ok)."""
    sink = open_sink(out)
    todo, seen = [], set()
    for j in jobs:
        if j.key not in sink.done and j.key not in seen:  # the same file listed twice is rated once
            todo.append(j)
            seen.add(j.key)
    summary = BatchSummary(skipped=len(jobs) - len(todo), repaired=sink.repaired,
                           retried=sum(j.key in sink.failed_before for j in todo))
    sink.start(sink.header or columns(dimension_names))
    return sink, todo, summary


def record(summary: BatchSummary, sink: ResultSink, row: dict[str, Any]) -> None:
    sink.write(row)
    if row.get("status") == "ok":
        summary.done += 1
    else:
        summary.failed.append((str(row.get("video")), str(row.get("error"))))


def dimension_names(assessor: Any, dimensions: bool) -> list[str]:
    return [*STREAMS, *(d.key for d in assessor.dimensions)] if dimensions else []


def run_batch(assessor: Any, jobs: list[Job], out: str | Path, *, explain: bool = False, dimensions: bool = False,
              progress: bool = True) -> BatchSummary:
    """Rate ``jobs`` into ``out`` (append, skip videos already there); never stops on a bad video."""
    from tqdm import tqdm

    sink, todo, summary = plan_batch(jobs, out, dimension_names(assessor, dimensions))
    t0 = time.perf_counter()
    try:
        for job in tqdm(todo, desc="rating", unit="video", disable=not progress, file=sys.stderr):
            record(summary, sink, rate_job(assessor, job, explain, dimensions))
    finally:
        sink.close()
    summary.seconds = time.perf_counter() - t0
    return summary


def run(args: argparse.Namespace) -> int:
    jobs = collect_jobs(args.source, args.prompt_column)
    from llmvqa.engines.shards import launcher_shard, run_sharded

    shard = launcher_shard()  # started by accelerate launch / torchrun: this process's share of the list
    if shard is not None:
        if args.engine == "ray":
            raise LlmvqaError("--engine ray", "spreads the work itself; it does not run under a launcher",
                              "run llmvqa batch --engine ray as one process, or drop --engine ray")
        summary = run_sharded(args, jobs, shard)
        if shard.rank == 0:
            print(f"results: {args.out}", file=sys.stderr)
        return 1 if summary.failed else 0
    if args.engine == "ray":
        from llmvqa.engines.ray_batch import RayOptions, run_ray_batch

        options = RayOptions(address=args.ray_address, replicas=args.replicas, cpus_per_replica=args.cpus_per_replica,
                             gpus_per_replica=args.gpus_per_replica, batch_size=args.batch_size)
        summary = run_ray_batch(jobs, args.out, model=args.model, device=args.device, explain=args.explain,
                                dimensions=args.dimensions, options=options, progress=args.progress)
    else:
        from llmvqa.assessor import resolve_model_dir
        from llmvqa.engines.local import LocalOptions, ModelSpec, run_local_batch

        options = LocalOptions(workers=args.workers, batch_size=args.batch_size, threads=args.worker_threads)
        # the model loads after the feature workers have their first videos (with --workers 0: here, first)
        model = ModelSpec(str(resolve_model_dir(args.model)), args.device)
        summary = run_local_batch(model, jobs, args.out, explain=args.explain, dimensions=args.dimensions,
                                  options=options, progress=args.progress)
    print(summary.text(), file=sys.stderr)
    print(f"results: {args.out}", file=sys.stderr)
    return 1 if summary.failed else 0
