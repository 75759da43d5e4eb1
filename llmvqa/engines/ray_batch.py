"""`llmvqa batch --engine ray`: the batch on Ray Data, over a pool of model replicas.

The driver lists the videos still to rate (the same resume rules and output sinks as the local
engine, ``llmvqa.commands.batch_io``), turns them into a Ray dataset of one row per video and maps
it with :class:`RaterReplica` — an actor class: each replica loads the model once and rates the
videos it is given, with ``num_cpus`` / ``num_gpus`` reserved per replica — so a local Ray with N
CPUs runs N / cpus-per-replica models side by side, and a cluster one per GPU of every node. Rows
stream back to the driver as replicas finish them and are written there at once: a killed run
keeps every row written, and the same command resumes it. A replica computes exactly what
``Assessor.rate`` computes in one process (the rows match the local engine's).

On a cluster: install llmvqa (with the model) on every node, put the videos where every node
sees them under the same path (shared storage), start Ray (``ray start --head`` / ``ray start
--address HEAD:6379``) and run the command on the head with ``--ray-address auto``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmvqa.commands.batch_io import Job
from llmvqa.errors import LlmvqaError


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None
    """Cluster to join ("auto", "ray://host:10001"); None starts a local Ray for this run."""
    replicas: int | None = None
    """Model replicas; None: one per GPU when ``gpus_per_replica`` > 0, else the CPUs over ``cpus_per_replica``."""
    cpus_per_replica: float = 1.0
    gpus_per_replica: float = 0.0
    num_cpus: int | None = None
    """CPUs of a local Ray started here (None: all of the machine's)."""
    batch_size: int = 8
    """Videos a replica takes at a time (score-only ones are scored together); rows come back a batch at a time."""

    def __post_init__(self) -> None:
        if self.cpus_per_replica <= 0 or self.gpus_per_replica < 0:
            raise LlmvqaError("--cpus-per-replica / --gpus-per-replica", "must be > 0 and ≥ 0")
        if self.batch_size < 1:
            raise LlmvqaError("--batch-size", f"must be at least 1, got {self.batch_size}")
        if self.replicas is not None and self.replicas < 1:
            raise LlmvqaError("--replicas", f"must be at least 1, got {self.replicas}")


class RaterReplica:
    """One model replica (a Ray Data actor): rates one batch of rows {video, path, prompt} at a time — each clip read
    here (optimized encoders: a replica lives for many videos), score-only clips scored together in one pass, as the
    local engine scores them (``llmvqa.engines.local.score_ready``)."""

    def __init__(self, model: str | None, device: str | None, explain: bool, dimensions: bool, threads: int):
        import torch

        from llmvqa.assessor import Assessor
        from llmvqa.video.loader import set_decode_threads

        torch.set_num_threads(max(1, threads))
        set_decode_threads(max(1, threads))  # its own CPUs: decord would pick as many threads as the node has
        self.assessor = Assessor.from_pretrained(model, device=device)
        getattr(self.assessor.extractor, "optimize_for_inference", bool)()
        self.explain, self.dimensions = explain, dimensions

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        from llmvqa.assessor import clean_prompt
        from llmvqa.engines.local import for_prompt, read_clip, score_ready

        ready = []
        for v, p, q in zip(batch["video"], batch["path"], batch["prompt"], strict=True):
            job, prompt = Job(str(v), str(p), str(q) or None), clean_prompt(str(q))
            read = read_clip(self.assessor.features, self.assessor.prompt_stats, job.path, (prompt,))
            ready.append((job, for_prompt(read, prompt)))
        rows = score_ready(self.assessor, ready, self.explain, self.dimensions)
        names = sorted({k for r in rows for k in r})
        return {k: [str(r.get(k, "")) for r in rows] for k in names}


def replica_count(options: RayOptions, resources: dict[str, float]) -> int:
    """How many replicas fit: ``options.replicas``, else the cluster's GPUs or CPUs over the per-replica share."""
    if options.replicas is not None:
        return options.replicas
    if options.gpus_per_replica > 0:
        return max(1, int(resources.get("GPU", 0) // options.gpus_per_replica))
    return max(1, int(resources.get("CPU", 1) // options.cpus_per_replica))


def _start_ray(options: RayOptions):
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as err:
        raise LlmvqaError("--engine ray", "Ray is not installed", "pip install 'llmvqa[ray]' (ray[data])") from err
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    if not ray.is_initialized():
        kwargs = {"address": options.address} if options.address else {"num_cpus": options.num_cpus}
        try:
            ray.init(**kwargs, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                     configure_logging=True)
        except Exception as err:  # unreachable cluster, bad address ...
            raise LlmvqaError("--ray-address" if options.address else "--engine ray",
                              f"cannot start Ray ({type(err).__name__}: {err})",
                              "check the address (ray status on the head node)" if options.address else
                              "check that Ray runs on this machine (python -c 'import ray; ray.init()')") from err
    return ray


def run_ray_batch(jobs: list[Job], out: str | Path, *, model: str | None = None, device: str | None = None,
                  explain: bool = False, dimensions: bool = True, options: RayOptions | None = None,
                  progress: bool = True):
    """Rate ``jobs`` into ``out`` on Ray; returns the BatchSummary (the local engine's rules and rows)."""
    from llmvqa.assessor import resolve_model_dir
    from llmvqa.commands.batch import plan_batch, record
    from llmvqa.engines.local import ModelSpec

    options = options or RayOptions()
    model_dir = str(resolve_model_dir(model))  # a clear error here, before any replica starts
    sink, todo, summary = plan_batch(jobs, out, ModelSpec(model_dir).dimension_names(dimensions))
    t0 = time.perf_counter()
    try:
        if todo:
            ray = _start_ray(options)
            ctx = ray.data.DataContext.get_current()
            ctx.enable_progress_bars = False  # our own bar below counts the rows as they arrive
            ctx.print_on_execution_start = False
            ctx.enable_operator_progress_bars = False
            for name in ("ray", "ray.data"):  # Ray Data logs its execution at INFO on stderr
                logging.getLogger(name).setLevel(logging.ERROR)
            replicas = min(replica_count(options, ray.cluster_resources()), len(todo))
            items = [{"video": j.video, "path": j.path, "prompt": j.prompt or ""} for j in todo]
            ds = ray.data.from_items(items, override_num_blocks=len(items))
            threads = max(1, int(options.cpus_per_replica))
            gpus = {"num_gpus": options.gpus_per_replica} if options.gpus_per_replica > 0 else {}
            with warnings.catch_warnings():  # max_restarts=0: a replica is not restarted (so its constructor
                warnings.simplefilter("ignore")  # arguments need not outlive the object store; Ray warns otherwise)
                ds = ds.map_batches(RaterReplica, batch_size=options.batch_size,
                                    compute=ray.data.ActorPoolStrategy(size=replicas),
                                    num_cpus=options.cpus_per_replica, batch_format="numpy", max_restarts=0, **gpus,
                                    fn_constructor_kwargs={"model": model_dir, "device": device, "explain": explain,
                                                       "dimensions": dimensions, "threads": threads})
            from tqdm import tqdm

            for row in tqdm(ds.iter_rows(), total=len(todo), desc="rating", unit="video", disable=not progress,
                            file=sys.stderr):
                record(summary, sink, dict(row))
    finally:
        sink.close()
    summary.seconds = time.perf_counter() - t0
    return summary


__all__ = ["RaterReplica", "RayOptions", "replica_count", "run_ray_batch"]
