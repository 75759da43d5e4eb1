"""`llmvqa batch` under a multi-process launcher: one shard of the list per process, one output at the end.

    accelerate launch --num_processes 4 -m llmvqa.cli batch videos/ --out results.csv     # 4 GPUs of one machine
    torchrun --nproc_per_node 4 -m llmvqa.cli batch videos/ --out results.csv             # the same

The launcher sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` (and ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT``) in every process. Process RANK rates the files whose first listing falls to it (the i-th distinct
file, prompt pair of the list goes to rank i mod WORLD_SIZE) with the local engine, on ``cuda:LOCAL_RANK`` when
there is a GPU (else on the CPU, its feature workers sized to its share of the machine's CPUs), into its own part
beside the output (``results.rank1-of-4.csv``; a ``.parquet`` output gets a part folder). What the output already
holds is skipped, as in any resumed run, and so is what the part holds. When every process is done (a barrier
on a gloo process group, so it needs no GPU), rank 0 appends the parts' rows to the output in list order and
removes the parts. A run stopped before that resumes by launching it again: each process picks up its part.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from llmvqa.commands.batch_io import Job, is_parquet, open_sink, read_results, row_key, row_status
from llmvqa.errors import LlmvqaError

BARRIER_TIMEOUT = timedelta(days=7)
"""How long the processes that finish first wait for the others (a shard may take hours)."""


@dataclass(frozen=True)
class Shard:
    rank: int
    world: int
    local_rank: int = 0
    local_world: int = 1
    """Processes of this run on this machine (they share its CPUs)."""


def launcher_shard(env: dict[str, str] | None = None) -> Shard | None:
    """This process's shard when a launcher started several (``WORLD_SIZE`` > 1), else None."""
    env = os.environ if env is None else env
    if "WORLD_SIZE" not in env:
        return None
    names = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE")
    try:
        world, rank, local_rank, local_world = (int(env.get(n, d)) for n, d in zip(names, ("1", "0", "0", "1"),
                                                                                    strict=True))
    except ValueError as err:
        raise LlmvqaError("launcher environment", f"{', '.join(f'{n}={env.get(n)!r}' for n in names)} are not all "
                          "integers", "launch with accelerate launch or torchrun, or unset WORLD_SIZE") from err
    if world <= 1:
        return None
    if not (0 <= rank < world and 0 <= local_rank < max(local_world, 1)):
        raise LlmvqaError("launcher environment", f"RANK={rank}, LOCAL_RANK={local_rank} do not fit WORLD_SIZE="
                          f"{world}, LOCAL_WORLD_SIZE={local_world}", "launch with accelerate launch or torchrun")
    return Shard(rank, world, local_rank, max(local_world, 1))


def shard_jobs(jobs: list[Job], shard: Shard) -> list[Job]:
    """The jobs of ``shard``: the i-th distinct (file, prompt) of the list goes to rank i mod world; a pair listed
    twice stays with one rank (which rates it once)."""
    owner: dict[tuple[str, str], int] = {}
    for job in jobs:
        owner.setdefault(job.key, len(owner) % shard.world)
    return [j for j in jobs if owner[j.key] == shard.rank]


def part_path(out: str | Path, shard: Shard) -> Path:
    """Where ``shard`` writes its rows: beside ``out``, ``NAME.rankR-of-W.SUFFIX`` (a folder for Parquet)."""
    out = Path(out)
    return out.with_name(f"{out.stem}.rank{shard.rank}-of-{shard.world}{out.suffix}")


def done_keys(out: str | Path) -> set[tuple[str, str]]:
    """Resume keys whose last row in ``out`` is ok, read without changing the file (other processes read it too;
    a CSV row torn by a killed run is left out, not cut)."""
    out = Path(out)
    if is_parquet(out):
        rows = read_results(out) if out.is_dir() else []
    elif out.is_file():
        text = out.read_text(encoding="utf-8", errors="replace")
        rows = list(csv.DictReader(io.StringIO(text[: text.rfind("\n") + 1])))
    else:
        rows = []
    return row_status(rows)[0]


def merge_parts(out: str | Path, parts: list[Path], jobs: list[Job]) -> int:
    """Append the rows of ``parts`` to ``out`` in list order (the order of ``jobs``), then remove the parts; the
    number of rows moved."""
    order = {}
    for i, job in enumerate(jobs):
        order.setdefault(job.key, i)
    rows: list[dict[str, Any]] = []
    header: list[str] | None = None
    for part in parts:
        if part.exists():
            got = read_results(part)
            rows += got
            if header is None and got:
                header = list(got[0])
    if rows:
        sink = open_sink(out)
        sink.start(sink.header or header)
        try:
            for row in sorted(rows, key=lambda r: order.get(row_key(r), len(order))):  # stable: ties keep part order
                sink.write(row)
        finally:
            sink.close()
    for part in parts:
        if part.is_dir():
            shutil.rmtree(part)
        elif part.exists():
            part.unlink()
    return len(rows)


def _process_group() -> Any:
    """The gloo process group of the launched processes (joined at the start, so that a wrong launch fails before
    hours of work)."""
    import torch.distributed as dist

    if not dist.is_initialized():
        missing = [n for n in ("MASTER_ADDR", "MASTER_PORT") if n not in os.environ]
        if missing:
            raise LlmvqaError("launcher environment", f"WORLD_SIZE is set but not {' or '.join(missing)}",
                              "launch with accelerate launch or torchrun, which set them all")
        dist.init_process_group("gloo", timeout=BARRIER_TIMEOUT)
    return dist


def run_sharded(args: Any, jobs: list[Job], shard: Shard):
    """``llmvqa batch`` (local engine) as process ``shard.rank`` of ``shard.world``; returns this shard's
    BatchSummary (rank 0's after the merge)."""
    from llmvqa.assessor import resolve_model_dir
    from llmvqa.engines.local import LocalOptions, ModelSpec, auto_workers, cpu_count, run_local_batch

    dist = _process_group()
    try:
        device = args.device
        if device is None:
            import torch

            device = f"cuda:{shard.local_rank}" if torch.cuda.is_available() else None
        workers = args.workers
        if workers is None:  # the machine's CPUs are shared by its launched processes
            workers = auto_workers(max(1, cpu_count() // shard.local_world), args.explain, args.dimensions)
        options = LocalOptions(workers=workers, batch_size=args.batch_size, threads=args.worker_threads)
        done = done_keys(args.out)
        share = shard_jobs(jobs, shard)
        mine = [j for j in share if j.key not in done]
        model = ModelSpec(str(resolve_model_dir(args.model)), device)
        summary = run_local_batch(model, mine, part_path(args.out, shard), explain=args.explain,
                                  dimensions=args.dimensions, options=options,
                                  progress=args.progress and shard.rank == 0)
        summary.skipped += len(share) - len(mine)
        print(f"rank {shard.rank} of {shard.world}: {summary.text()}", file=sys.stderr)
        dist.barrier()
        if shard.rank == 0:
            moved = merge_parts(args.out, [part_path(args.out, Shard(r, shard.world)) for r in range(shard.world)],
                                jobs)
            print(f"merged {moved} row(s) of {shard.world} processes into {args.out}", file=sys.stderr)
        dist.barrier()  # nobody leaves before the parts are merged (a launcher stops the rest when one exits)
    finally:
        dist.destroy_process_group()
    return summary
