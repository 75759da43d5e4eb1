"""What the benchmarks (``eval/bench_*.py``) share: test clips, memory readings, synthetic features, timings.

Clips (uint8 (T, H, W, 3) frames, written as H.264 by ``write_clips``):

- ``panned_photo``: a real photo (skimage) upscaled and panned: swept diagonally across the frame
  (``bench_encoders``), or moved by a fixed step per frame (``photo_clips``, ``bench_rate``);
- ``footage_clips``: square windows of real footage (the bundled bikes clip, ``bench_batch``);
- ``bench_clip``: 4 s of example:bikes at 512² (the clip the rate-and-explain speed target is stated for).

Memory: ``peak_rss_mib`` (this process, its peak), ``rss_mib`` (a process now, with its descendants when
``tree``). ``synthetic_features``: VideoFeatures of given stream widths with the statistics at the middle of
their typical ranges (what training steps and LLM timings need, no encoder run). ``time_process`` runs a
command and samples its wall time, first output row and peak RSS; ``time_rate``, ``time_stages`` and
``reference_seconds`` time the assessor, the feature pipeline and a fixed generation job.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

PHOTOS: tuple[str, ...] = ("astronaut", "coffee", "chelsea", "rocket")
"""skimage.data photos the photo clips are cut from (clip i: PHOTOS[i % 4])."""


def panned_photo(width: int, height: int, num_frames: int, photo: str = "astronaut", *, zoom: float = 1.3,
                 step: tuple[int, int] | None = None) -> np.ndarray:
    """uint8 (num_frames, height, width, 3): skimage.data ``photo`` resized to a square of side
    ``zoom × max(width, height)`` and a window moved over it: with ``step`` (dx, dy) pixels per frame
    (wrapping inside the photo), else swept from the top-left corner across the whole width and half the height."""
    import cv2
    from skimage import data

    side = int(zoom * max(width, height))
    if side < max(width, height):
        raise ValueError(f"zoom {zoom} makes the photo smaller than the frame")
    img = cv2.resize(getattr(data, photo)(), (side, side), interpolation=cv2.INTER_CUBIC)
    if step is None:
        xs = np.linspace(0, side - width, num_frames).round().astype(int)
        ys = np.linspace(0, (side - height) // 2, num_frames).round().astype(int)
    else:
        t = np.arange(num_frames)
        xs, ys = step[0] * t % max(1, side - width), step[1] * t % max(1, side - height)
    return np.stack([img[y : y + height, x : x + width] for x, y in zip(xs, ys, strict=True)])


def photo_clips(n: int, *, seconds: float = 4.0, size: int = 512, fps: float = 8.0) -> Iterator[np.ndarray]:
    """``n`` clips of ``seconds`` at ``fps``, ``size``²: clip i pans PHOTOS[i % 4] (zoom 2) by (3 + i, 2) px a frame."""
    frames = int(round(seconds * fps))
    for i in range(n):
        yield panned_photo(size, size, frames, PHOTOS[i % len(PHOTOS)], zoom=2.0, step=(3 + i, 2))


def footage_clips(n: int, *, size: int = 512, length: int = 32, source: str = "example:bikes",
                  pool: int = 64) -> Iterator[np.ndarray]:
    """``n`` clips of ``length`` frames at ``size``²: windows of ``pool`` frames sampled evenly from ``source``,
    clip i starting at frame 7i and at column 37i (cyclically), cropped square and resized."""
    import cv2

    from llmvqa.assessor import resolve_video
    from llmvqa.video.loader import load_clip

    frames = load_clip(resolve_video(source), nframes=pool).frames
    h, w = frames.shape[1:3]
    side = min(h, w)
    for i in range(n):
        start = (i * 7) % max(1, len(frames) - length)
        window = frames[start : start + length, :side, (i * 37) % max(1, w - side + 1) :][:, :, :side]
        yield np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in window])


def write_clips(folder: str | Path, clips: Iterable[np.ndarray], fps: float, *, name: str = "clip{i}",
                crf: int = 18) -> list[Path]:
    """Write each clip as ``folder/name.format(i=i).mp4`` (H.264 at ``crf``); returns the paths."""
    from llmvqa.video.writer import write_video

    return [write_video(Path(folder) / f"{name.format(i=i)}.mp4", frames, fps=fps, crf=crf)
            for i, frames in enumerate(clips)]


def write_photo_clip(path: str | Path, width: int, height: int, seconds: float, fps: float, crf: int = 23) -> Path:
    """One swept ``panned_photo`` (astronaut) clip at ``path`` (a picklable target for a child process)."""
    path = Path(path)
    frames = panned_photo(width, height, int(round(seconds * fps)))
    return write_clips(path.parent, [frames], fps, name=path.stem, crf=crf)[0]


def bench_clip(folder: str | Path) -> Path:
    """4 s of example:bikes from 3 s on, resized to 512² (``defects.load_segment``), written to ``folder``."""
    from llmvqa.evaluation.defects import load_segment

    frames, fps = load_segment("bikes", 3.0)
    return write_clips(folder, [frames], fps, name="bikes_4s_512")[0]


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _stat(pid: int | str) -> tuple[int, int]:
    """(parent pid, resident pages) of a process from /proc; OSError when it is gone."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[21])


def rss_mib(pid: int, *, tree: bool = False) -> float:
    """Resident memory of ``pid`` now, MiB (Linux /proc; OSError when it is gone), with ``tree`` summed over
    the process and every descendant (processes that end meanwhile are skipped)."""
    page = os.sysconf("SC_PAGE_SIZE") / 2**20
    if not tree:
        return _stat(pid)[1] * page
    children: dict[int, list[int]] = {}
    pages: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parent, pages[int(d.name)] = _stat(d.name)
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(d.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += pages.get(p, 0)
        todo += children.get(p, [])
    return total * page


def synthetic_features(dims: Mapping[str, int], seed: int = 0, frames: int = 16):
    """VideoFeatures with seeded N(0, 1) tokens of the stream widths ``dims`` (``frames`` tokens a stream, one
    fewer for motion), every statistic but the prompt ones at the middle of its typical range, and
    ``meta["content_hash"] = f"bench{seed}"``."""
    import torch

    from llmvqa.features import VideoFeatures
    from llmvqa.statistics import PROBE_STATISTICS, PROMPT_STATS, STATISTICS

    g = torch.Generator().manual_seed(seed)
    tokens = {s: torch.randn(frames - (s == "motion"), d, generator=g) for s, d in dims.items()}
    stats = {st.name: (st.typical[0] + st.typical[1]) / 2 for st in STATISTICS + PROBE_STATISTICS
             if st.name not in PROMPT_STATS}
    return VideoFeatures(tokens=tokens, stats=stats, meta={"content_hash": f"bench{seed}"})


def _rows(path: Path) -> int:
    """Complete CSV rows in ``path`` (header excluded; 0 when absent)."""
    import csv

    if not path.is_file():
        return 0
    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        return max(0, sum(1 for _ in csv.reader(f)) - 1)


def time_process(cmd: Sequence[str], rows_file: str | Path | None, interval: float = 0.1, *,
                 cwd: str | Path | None = None, env: dict | None = None) -> dict:
    """Run ``cmd`` (in ``cwd``, with ``env``; stdout discarded), sampling every ``interval`` s: "wall_s",
    "first_row_s" (seconds until ``rows_file`` holds a header and one row; None if never, or without a rows file),
    "row_times" ([seconds, rows] each time the row count changed), "peak_rss_mib" (the process tree's),
    "returncode", "stderr_tail" (its last 300 characters; stderr goes to a temporary file, so a chatty process never
    blocks on a full pipe)."""
    import tempfile

    rows_file = None if rows_file is None else Path(rows_file)
    err = tempfile.TemporaryFile()
    t0 = time.perf_counter()
    try:
        proc = subprocess.Popen(list(cmd), stdout=subprocess.DEVNULL, stderr=err, cwd=cwd, env=env)
    except OSError:
        err.close()
        raise
    first, peak, seen = None, 0.0, []
    while True:
        done = proc.poll() is not None
        peak = max(peak, rss_mib(proc.pid, tree=True)) if not done else peak
        n = _rows(rows_file) if rows_file is not None else 0
        if n and (not seen or seen[-1][1] != n):
            seen.append([time.perf_counter() - t0, n])
            first = seen[0][0] if first is None else first
        if done:
            break
        time.sleep(interval)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "first_row_s": first, "row_times": seen, "peak_rss_mib": peak,
            "returncode": proc.returncode, "stderr_tail": _tail(err, 300)}


def _tail(f, n: int) -> str:
    """The last ``n`` characters written to the open binary file ``f`` (which is closed)."""
    with f:
        f.seek(0)
        return f.read().decode(errors="replace")[-n:]


def after_first_rate(row_times: Sequence[Sequence[float]]) -> float | None:
    """Rows per second from the first row written to the last (``time_process``'s "row_times"): rows that arrive
    together with the first (a batch) are not counted, nor is the time after the last row (shutting down)."""
    if len(row_times) < 2:
        return None
    (t0, n0), (t1, n1) = row_times[0], row_times[-1]
    return (n1 - n0) / (t1 - t0) if t1 > t0 else None


def steady_rate(row_times: Sequence[Sequence[float]]) -> float | None:
    """Rows per second over the second half of a run's rows (from ``time_process``'s "row_times"): the rate once
    start-up and any ramp (workers still loading) are past; None with too few samples."""
    if len(row_times) < 2:
        return None
    total = row_times[-1][1]
    t_half, n_half = next((t, n) for t, n in row_times if n >= total / 2)
    t_end = row_times[-1][0]
    return (total - n_half) / (t_end - t_half) if t_end > t_half and total > n_half else None


def time_rate(assessor, clips: Sequence[Path], **kwargs) -> dict:
    """Wall and process-CPU seconds per clip of a cold ``assessor.rate(clip, **kwargs)`` (features re-extracted
    each time), and each result's stage timings. CPU seconds / threads is what the wall time would be on
    otherwise idle cores; the wall time is inflated when other processes share the cores."""
    wall, cpu, stages = [], [], []
    for clip in clips:
        assessor.clear_features()
        t, c = time.perf_counter(), time.process_time()
        result = assessor.rate(clip, **kwargs)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        stages.append(result.timings)
    return {"mean_s": statistics.fmean(wall), "max_s": max(wall), "mean_cpu_s": statistics.fmean(cpu),
            "per_clip_s": wall, "stages": stages}


def load_assessor(model: str | None, untrained: bool, probe_clip: Path):
    """(Assessor, description): ``model`` (default: the shipped one when present), or with ``untrained`` (or
    nothing shipped) a freshly built model of the default ModelConfig, its projector widths read off the
    features of ``probe_clip``."""
    from llmvqa.assessor import DEFAULT_MODEL_DIR, Assessor

    if not untrained and (model or (DEFAULT_MODEL_DIR / "config.json").is_file()):
        return Assessor.from_pretrained(model), str(model or DEFAULT_MODEL_DIR)
    from llmvqa.encoders.config import EncoderConfig
    from llmvqa.encoders.pipeline import FeatureExtractor
    from llmvqa.model.config import ModelConfig
    from llmvqa.model.modeling import QualityLLM

    enc = EncoderConfig()
    extractor = FeatureExtractor(enc)
    feats = extractor.extract(probe_clip)
    dims = {s: int(t.shape[1]) for s, t in feats.tokens.items()}  # projector input widths
    qmodel = QualityLLM.build(ModelConfig(stream_dims=dims), enc.to_dict())
    qmodel.eval()
    return Assessor(qmodel, extractor, name="untrained"), "untrained (default ModelConfig, fresh projectors/LoRA)"


ENCODERS: tuple[str, ...] = ("technical", "motion", "semantic")


def time_stages(extractor, path: str | Path) -> dict[str, float]:
    """Wall seconds of probe, decode and each encoder of one ``extractor.extract(path)``, and the encoders'
    CPU seconds ("<encoder>_cpu")."""
    from llmvqa.video.probe import probe

    t = time.perf_counter()
    probe(path, extractor.config.limits)
    probe_s = time.perf_counter() - t
    extractor.extract(path)
    timings, cpu = dict(extractor.timings), dict(extractor.cpu_timings)
    return {
        "probe": probe_s,
        "decode": max(0.0, timings["load"] - probe_s),  # load_clip probes again, then decodes
        **{k: timings[k] for k in ENCODERS},
        **{f"{k}_cpu": cpu[k] for k in ENCODERS},
    }


def reference_seconds(assessor) -> float:
    """Seconds for a fixed job on this machine: 64 greedy tokens of the LM's plain ``generate`` (full
    vocabulary, no plan) after example:bikes' explain prompt. Machines and their load differ; rate and
    chat timings can be read against it."""
    import torch

    from llmvqa.model.collate import encode_conversation

    m = assessor.model
    f = assessor.features("example:bikes")
    ex = encode_conversation(m._user_turn(None, "explain", None), f, m.template, prompt_stats=m.input_stats(f, None),
                             open_answer="")
    batch = m.collator([ex])
    with torch.no_grad():
        emb = m.embed_inputs(batch["input_ids"], batch)
        t = time.perf_counter()
        m.lm.generate(inputs_embeds=emb, attention_mask=batch["attention_mask"], max_new_tokens=64,
                      min_new_tokens=64, do_sample=False)
    return time.perf_counter() - t


__all__ = ["ENCODERS", "PHOTOS", "after_first_rate", "bench_clip", "footage_clips", "load_assessor", "panned_photo",
           "peak_rss_mib", "photo_clips", "reference_seconds", "rss_mib", "steady_rate", "synthetic_features",
           "time_process", "time_rate", "time_stages", "write_clips", "write_photo_clip"]
