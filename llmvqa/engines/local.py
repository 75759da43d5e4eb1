"""`llmvqa batch` on one machine: videos are read in worker processes while this one scores.

Decoding and the three encoders take most of a clip's time and need no model: ``workers`` processes
(each with its own encoders and ``threads`` torch threads) extract the features of the next videos
while this process scores the ones already extracted. Score-only runs score every group of ready
clips in one batched LLM pass (``Assessor.score_overall`` → ``QualityLLM.score_batch``); with
dimensions or an explanation each clip is rated as ``Assessor.rate`` rates it. Rows are written in
the order of the list, as soon as they are scored: the same rows as the one-process loop (scores
equal to float rounding), the same resume rules and failure rows (``llmvqa.commands.batch``).

Workers run optimized encoders (``FeatureExtractor.optimize_for_inference``: ONNX Runtime with the ``onnx`` extra,
else TorchScript; the same features to float rounding), decode on their own thread count, and read a file listed
with several prompts once. The model loads here after the
first videos are handed to one worker (``ModelSpec``), which reads on while the model loads; the other workers
start once it is loaded.

A worker that dies (a decoder crash, the out-of-memory killer) takes the videos in flight with it:
the pool is restarted and they are tried again one at a time, so the video that kills its worker
alone gets an error row, and the run carries on. Workers ignore Ctrl-C; this process stops them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from llmvqa.commands.batch_io import Job
from llmvqa.errors import LlmvqaError

_EXTRACTOR: Any = None
"""The worker process's feature extractor (built once by ``_start_worker``)."""
_START_ERROR: str | None = None
"""Why the worker could not build its extractor (every job then answers "fatal" with it)."""


def cpu_count() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@dataclass(frozen=True)
class LocalOptions:
    workers: int | None = None
    """Feature-extraction processes; 0 reads every video in this process (the plain loop); None: ``auto_workers``."""
    batch_size: int = 8
    """The most ready clips scored in one batched pass."""
    threads: int = 1
    """Torch threads of each worker."""

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 0:
            raise LlmvqaError("--workers", f"must be 0 or more, got {self.workers}")
        if self.batch_size < 1:
            raise LlmvqaError("--batch-size", f"must be at least 1, got {self.batch_size}")
        if self.threads < 1:
            raise LlmvqaError("--worker-threads", f"must be at least 1, got {self.threads}")


def auto_workers(cpus: int, explain: bool, dimensions: bool) -> int:
    """Score only: one single-threaded worker per CPU (this process scores batches in their gaps: a tenth of a
    CPU-second per clip against about half a second to read one). With dimensions or an explanation this process spends
    longer on each clip than a worker reading it: on 2 CPUs the one-process loop is fastest (measured, see
    eval/bench_batch.py), with more one worker reads ahead while this process keeps the other CPUs."""
    if cpus < 2:
        return 0
    if explain or dimensions:
        return 0 if cpus <= 2 else 1
    return min(cpus, MAX_AUTO_WORKERS)


MAX_AUTO_WORKERS = 8
"""The most workers ``auto_workers`` starts: each holds its own encoders (about 0.7 GiB resident); ask for more
with ``--workers``."""


def load_worker_extractor(model: str | None, device: str | None, optimize: bool = True) -> Any:
    """The extractor of a model directory's encoders (the worker-side half of ``Assessor.from_pretrained``), with
    its backbones optimized for a long run when it offers it (``FeatureExtractor.optimize_for_inference``)."""
    from llmvqa.assessor import build_extractor, read_model_config, resolve_model_dir

    extractor = build_extractor(read_model_config(resolve_model_dir(model)).get("encoder"), device)
    if optimize and hasattr(extractor, "optimize_for_inference"):
        extractor.optimize_for_inference()
    return extractor


def _quiet_settings() -> tuple[dict[str, int], list]:
    """This process's logging levels of the libraries the CLI silences, and its warning filters (a worker copies
    them: without --verbose a worker prints nothing either)."""
    import logging
    import warnings

    from llmvqa.cli import LIBRARIES

    return {name: logging.getLogger(name).level for name in LIBRARIES}, list(warnings.filters)


def _start_worker(make_extractor: Callable[[], Any], threads: int, quiet: tuple[dict[str, int], list],
                  niceness: int = 0) -> None:
    global _EXTRACTOR, _START_ERROR
    import logging
    import warnings

    import torch

    if niceness:
        with contextlib.suppress(OSError):
            os.nice(niceness)

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle (it stops the pool)
    levels, filters = quiet
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    warnings.filters[:] = filters
    torch.set_num_threads(threads)
    from llmvqa.video.loader import set_decode_threads

    set_decode_threads(threads)  # decord would pick several: more CPU per video on CPUs the workers already fill
    try:
        _EXTRACTOR = make_extractor()
    except Exception as err:  # reported by every job, and the run stops with it
        from llmvqa.commands.batch import error_text

        _START_ERROR = error_text(err)


def read_clip(extract: Callable[[str], Any], prompt_stats: Callable[[Any, str], dict], path: str,
              prompts: tuple[str | None, ...]) -> tuple:
    """("ok", features, {prompt: prompt_stats} for each of ``prompts``, seconds) or ("error", message, seconds): a
    clip read once for all the prompts it is listed with; never raises."""
    from llmvqa.commands.batch import error_text

    t = time.perf_counter()
    try:
        features = extract(path)
        stats = {prompt: {k: float(v) for k, v in prompt_stats(features, prompt).items()} if prompt else {}
                 for prompt in prompts}
        return "ok", features, stats, time.perf_counter() - t
    except Exception as err:  # one bad file is one error row
        return "error", error_text(err), time.perf_counter() - t


def for_prompt(result: tuple, prompt: str | None, reading_seconds: bool = True) -> tuple:
    """A ``read_clip`` result as one job sees it: ("ok", features, its prompt's statistics, seconds) or the error
    (``reading_seconds`` False: the reading was another job's, so none of its seconds)."""
    if result[0] != "ok":
        return result
    return "ok", result[1], result[2][prompt], result[3] if reading_seconds else 0.0


def extract_job(path: str, prompts: tuple[str | None, ...]) -> tuple:
    """(in a worker) ``read_clip`` with the worker's extractor, or ("fatal", why the extractor could not be built,
    0); never raises."""
    from llmvqa.assessor import resolve_video

    if _START_ERROR is not None:
        return "fatal", _START_ERROR, 0.0
    return read_clip(lambda p: _EXTRACTOR.extract(resolve_video(p)), _EXTRACTOR.prompt_stats, path, prompts)


class _Pending:
    __slots__ = ("job", "future", "crashes", "owner")

    def __init__(self, job: Job, future: Future, crashes: int = 0, owner: bool = True):
        self.job, self.future, self.crashes = job, future, crashes
        self.owner = owner
        """Whether this job's submission read the video (a further prompt of the same file reuses the reading)."""

    def result(self) -> tuple:
        """This job's ``extract_job`` result: its own prompt's statistics; raises BrokenProcessPool."""
        return for_prompt(self.future.result(), _prompt(self.job), self.owner)


def _prompt(job: Job) -> str | None:
    from llmvqa.assessor import clean_prompt

    return clean_prompt(job.prompt)


def score_ready(assessor: Any, ready: list[tuple[Job, tuple]], explain: bool, dimensions: bool) -> list[dict]:
    """Output rows of extracted clips (``extract_job`` results), in order; score-only clips in one batched pass."""
    from llmvqa.commands.batch import error_row, error_text, result_row

    rows: list[dict | None] = [None] * len(ready)
    ok = [i for i, (_, r) in enumerate(ready) if r[0] == "ok"]
    for i, (job, r) in enumerate(ready):
        if r[0] != "ok":
            rows[i] = error_row(job, r[1], r[2])
    overall: dict[int, Any] = {}
    t = time.perf_counter()
    if ok and not (explain or dimensions):
        try:
            scored = assessor.score_overall([ready[i][1][1] for i in ok], [_prompt(ready[i][0]) for i in ok],
                                            [ready[i][1][2] for i in ok])
            overall = dict(zip(ok, scored, strict=True))
        except Exception:  # noqa: BLE001 - scored one by one below, so the failure lands on its own clip
            overall = {}
    shared = (time.perf_counter() - t) / max(1, len(ok))
    for i in ok:
        job, (_, features, stats, seconds) = ready[i]
        t = time.perf_counter()
        try:
            result = assessor.rate_features(job.path, features, _prompt(job), explain=explain, dimensions=dimensions,
                                            prompt_stats=stats, overall=overall.get(i))
            row = result_row(job, result)
            row["seconds"] = f"{seconds + shared + time.perf_counter() - t:.3f}"
        except Exception as err:  # a bug on one clip must not lose a long batch; it is reported
            row = error_row(job, error_text(err), seconds + time.perf_counter() - t)
        rows[i] = row
    return rows  # type: ignore[return-value]


@contextlib.contextmanager
def _ctrl_c_not_inherited():
    """SIGINT ignored while workers may be spawned, so that they start ignoring it (Ctrl-C reaches the whole process
    group; a worker interrupted while it imports prints a traceback): this process handles it and stops them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class FeaturePool:
    """Worker processes that extract features of submitted jobs; restarted when one dies.

    With ``one_first`` the pool starts with one worker, which reads every job submitted until ``start_all`` (while
    this process loads the model, it takes one CPU and leaves the load the others); ``start_all`` starts the other
    workers, and each job goes to the group of workers with the fewest jobs in flight."""

    def __init__(self, make_extractor: Callable[[], Any], workers: int, threads: int, jobs: list[Job] = (),
                 one_first: bool = False):
        self.make_extractor, self.workers, self.threads = make_extractor, workers, threads
        self.prompts: dict[str, list[str | None]] = {}
        """Per file (``Job.key[0]``), the prompts it is listed with: read once, scored with each."""
        self.left: Counter[str] = Counter()
        """Per file, its jobs that have not taken their result yet."""
        for job in jobs:
            listed = self.prompts.setdefault(job.key[0], [])
            if _prompt(job) not in listed:
                listed.append(_prompt(job))
            self.left[job.key[0]] += 1
        self.reading: OrderedDict[str, Future] = OrderedDict()
        """Per file still to be scored with another prompt, the future of its reading (at most ``KEEP_READINGS``)."""
        self.worked = False
        """Whether any worker has ever finished a job (a pool that breaks before that cannot start at all)."""
        self.first = 1 if one_first and workers > 1 else workers
        self.executors, self.in_flight = [self._new(self.first, FIRST_NICE if self.first < workers else 0)], [0]

    def start_all(self) -> None:
        """Start the workers that ``one_first`` held back (nothing when they run)."""
        if len(self.executors) == 1 and self.first < self.workers:
            self.executors.append(self._new(self.workers - self.first))
            self.in_flight.append(0)

    def _new(self, workers: int, niceness: int = 0) -> ProcessPoolExecutor:
        import multiprocessing

        # spawn: a forked child of a process whose torch already ran threads can deadlock in OpenMP
        return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start_worker,
                                   initargs=(self.make_extractor, self.threads, _quiet_settings(), niceness))

    def pending(self, job: Job, crashes: int = 0) -> _Pending:
        """The job, with the reading of its file: submitted now, or the one already submitted for another prompt."""
        key = job.key[0]
        if key in self.reading:
            return _Pending(job, self.reading[key], crashes, owner=False)
        future = self.submit(job)
        if self.left[key] > 1:  # listed again with another prompt: keep the reading for it
            self.reading[key] = future
            while len(self.reading) > KEEP_READINGS:
                self.reading.popitem(last=False)  # read again if its turn comes (bounded memory)
        return _Pending(job, future, crashes)

    def taken(self, job: Job) -> None:
        """The job has its result: its file's reading is dropped with the file's last job."""
        key = job.key[0]
        self.left[key] -= 1
        if self.left[key] <= 0:
            self.reading.pop(key, None)

    def submit(self, job: Job) -> Future:
        """The future of reading the job's file; on a pool already broken, a future holding BrokenProcessPool (met when
        waited for)."""
        prompts = tuple(self.prompts.get(job.key[0]) or [_prompt(job)])
        if _prompt(job) not in prompts:
            prompts += (_prompt(job),)
        group = min(range(len(self.executors)), key=self.in_flight.__getitem__)
        try:
            with _ctrl_c_not_inherited():  # a worker spawned here ignores Ctrl-C: this process stops the pool
                future = self.executors[group].submit(extract_job, job.path, prompts)
        except BrokenProcessPool as err:
            future = Future()
            future.set_exception(err)
            return future
        self.in_flight[group] += 1
        future.add_done_callback(partial(self._note, self.executors[group], group))
        return future

    def _note(self, executor: ProcessPoolExecutor, group: int, future: Future) -> None:
        if group < len(self.executors) and self.executors[group] is executor:  # not a pool restarted since
            self.in_flight[group] -= 1
        if not future.cancelled() and future.exception() is None:
            self.worked = True

    def restart(self) -> None:
        self.close()
        self.first = self.workers
        self.executors, self.in_flight = [self._new(self.workers)], [0]
        self.reading.clear()  # every reading in flight died with the pool

    def close(self) -> None:
        for executor in self.executors:
            executor.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True)
class ModelSpec:
    """A model to load in this process (``Assessor.from_pretrained(model, device, encoders=False)``) once the
    workers are busy: they read the first videos while it loads."""

    model: str | None = None
    device: str | None = None

    def load(self) -> Any:
        from llmvqa.assessor import Assessor

        return Assessor.from_pretrained(self.model, self.device, encoders=False)

    def dimension_names(self, dimensions: bool) -> list[str]:
        """The result columns' group and dimension names, from the model's config (nothing loaded)."""
        from llmvqa.assessor import load_dimensions, read_model_config, resolve_model_dir
        from llmvqa.statistics import STREAMS

        if not dimensions:
            return []
        version = str(read_model_config(resolve_model_dir(self.model)).get("prompt_version", "v1"))
        return [*STREAMS, *(d.key for d in load_dimensions(version))]

    def extractor_factory(self) -> Callable[[], Any]:
        return partial(load_worker_extractor, self.model, self.device)


OPTIMIZE_FROM = 16
"""With ``workers=0``, a list of at least this many videos is read with optimized encoders
(``FeatureExtractor.optimize_for_inference``: on one thread 0.15 s to open the ONNX Runtime copy (about 1 s the first
time on a machine, to export it) or 0.35 s to build the TorchScript one, then 0.18 / 0.13 s less per video); workers
always use them."""

KEEP_READINGS = 256
"""Readings (features) kept for files listed again further on with another prompt; past it a file is read again."""

FIRST_NICE = 19
"""Niceness of the worker that reads while the model loads (``one_first``): it takes only the CPU the load leaves
idle, and later only what this process's scoring leaves (the other workers run at normal priority)."""

# While this process loads the model, one worker reads the first videos (FeaturePool one_first); the others start
# once it is loaded. On 2 CPUs, starting every worker at once delayed the first result by about 2.5 s (measured 7.4 s
# against 10.0 s, session 16), and one worker given a single video sat idle for the rest of the load.


def run_local_batch(assessor: Any, jobs: list[Job], out: str | Path, *, explain: bool = False,
                    dimensions: bool = False, options: LocalOptions | None = None, progress: bool = True,
                    make_extractor: Callable[[], Any] | None = None):
    """Rate ``jobs`` into ``out`` with feature workers (see the module); returns the BatchSummary.

    ``assessor``: an Assessor, or a ModelSpec to load once the workers have their first videos. ``make_extractor``:
    a picklable callable each worker calls once to build its extractor (default: the encoders of the model's
    directory). ``options.workers == 0`` runs the one-process loop (``llmvqa.commands.batch.run_batch``)."""
    from tqdm import tqdm

    from llmvqa.commands.batch import dimension_names, error_row, plan_batch, record, run_batch

    options = options or LocalOptions()
    spec = assessor if isinstance(assessor, ModelSpec) else None
    workers = options.workers if options.workers is not None else auto_workers(cpu_count(), explain, dimensions)
    if workers == 0:
        assessor = spec.load() if spec else assessor
        if len(jobs) >= OPTIMIZE_FROM:  # the faster encoders pay for their start-up after a few videos
            getattr(assessor.extractor, "optimize_for_inference", bool)()
        return run_batch(assessor, jobs, out, explain=explain, dimensions=dimensions, progress=progress)
    if make_extractor is None:
        make_extractor = spec.extractor_factory() if spec else partial(load_worker_extractor,
                                                                       assessor.meta.get("model"), None)
    names = spec.dimension_names(dimensions) if spec else dimension_names(assessor, dimensions)
    sink, todo, summary = plan_batch(jobs, out, names)
    t0 = time.perf_counter()
    if not todo:
        sink.close()
        return summary
    import torch

    workers = min(workers, len(todo))
    # this process scores while the workers read: the CPUs they leave (at least one thread)
    torch.set_num_threads(max(1, cpu_count() - workers * options.threads))
    pool = FeaturePool(make_extractor, workers, options.threads, todo, one_first=spec is not None)
    window = 2 * workers + options.batch_size  # videos in flight: workers never wait for this process
    pending: deque[_Pending] = deque()
    queue = iter(todo)
    bar = tqdm(total=len(todo), desc="rating", unit="video", disable=not progress, file=sys.stderr)

    suspects: deque[Job] = deque()  # in flight when a worker died: tried again one at a time

    def fill(limit: int | None = None) -> None:
        if suspects:  # alone in the pool, a video that kills its worker again is the one to blame
            if not pending:
                pending.append(pool.pending(suspects.popleft(), crashes=1))
            return
        while len(pending) < (window if limit is None else limit):
            job = next(queue, None)
            if job is None:
                return
            pending.append(pool.pending(job))

    def crashed() -> None:
        """A worker died: restart the pool; alone, the video that was being read gets an error row, else every
        video in flight is tried again, one at a time."""
        if not pool.worked:
            raise LlmvqaError("feature workers", "the worker processes stopped before reading any video",
                              "run with --workers 0 to read the videos in this process (and see why); a script that "
                              "calls run_local_batch must guard its entry point with if __name__ == '__main__'")
        pool.restart()
        if pending[0].crashes:
            message = ("the worker reading this video stopped (a decoder crash, or killed for memory); check the "
                       "file, or run with --workers 0 to read it in this process")
            job = pending.popleft().job
            pool.taken(job)
            record(summary, sink, error_row(job, message, 0.0))
            bar.update()
        suspects.extendleft(reversed([p.job for p in pending]))
        pending.clear()
        fill()

    batched = not (explain or dimensions)  # score only: clips are scored together, so worth waiting for
    first = True
    try:
        fill()  # the first worker starts on the first videos ...
        if spec:
            assessor = spec.load()  # ... while the model loads here
            pool.start_all()
        while pending:
            try:
                head = pending[0].result()
            except BrokenProcessPool:
                crashed()
                continue
            if head[0] == "fatal":
                raise LlmvqaError("feature workers", f"cannot load the encoders ({head[1]})",
                                  "check the model directory, or run with --workers 0 to see the full error")
            ready = [(pending.popleft().job, head)]
            pool.taken(ready[-1][0])
            # the first clip alone (the first result comes soon); then, score only, a batch of the next clips in
            # order, waiting for them while the workers read on (the window keeps them busy); else the ones done
            while pending and not first and len(ready) < options.batch_size and (batched or pending[0].future.done()):
                try:
                    nxt = pending[0].result()
                except BrokenProcessPool:
                    break  # met at the head of the queue on the next turn
                if nxt[0] == "fatal":
                    break
                ready.append((pending.popleft().job, nxt))
                pool.taken(ready[-1][0])
                fill()
            first = False
            fill()  # the workers read on while this process scores
            for row in score_ready(assessor, ready, explain, dimensions):
                record(summary, sink, row)
                bar.update()
    finally:
        bar.close()
        pool.close()
        sink.close()
    summary.seconds = time.perf_counter() - t0
    return summary
