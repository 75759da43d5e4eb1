"""Training data: instruct records per stage, their cached features, and a seed-fixed order.

The order of epoch ``e`` is a permutation drawn from ``seed`` and ``e`` only, and the
micro-batch stream is epochs laid end to end, so micro-batch ``m`` is always the same
samples: resuming at optimizer step ``s`` starts at micro-batch ``s × grad_accum`` and
repeats nothing.
"""

from __future__ import annotations

import glob
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from llmvqa.errors import DataError
from llmvqa.features import VideoFeatures
from llmvqa.train.config import DataConfig, StageConfig

FeatureSource = Callable[[dict[str, Any]], VideoFeatures]
"""record → its VideoFeatures (from the cache, computed once when missing)."""


# ---------------------------------------------------------------- records


def _expand(patterns: list[str]) -> list[Path]:
    files: list[Path] = []
    for pat in patterns:
        hits = sorted(glob.glob(pat)) if any(c in pat for c in "*?[") else [pat]
        for hit in hits:
            p = Path(hit)
            if not p.is_file():
                raise DataError(str(p), "instruct file not found", "build it with `llmvqa sig ...` or fix data.train_files")
            files.append(p)
    if not files:
        raise DataError(", ".join(patterns), "no instruct files match", "fix data.train_files")
    return files


def read_records(cfg: DataConfig) -> list[dict[str, Any]]:
    """All records of cfg.train_files in cfg.split, each with "_root" = the directory its video path is relative to."""
    records: list[dict[str, Any]] = []
    for path in _expand(cfg.train_files):
        root = cfg.video_root or str(path.parent)
        with path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataError(f"{path}:{lineno}", f"not valid JSON ({err.msg})", "fix or drop the line") from None
                for key in ("video", "conversations", "task"):
                    if key not in rec:
                        raise DataError(f"{path}:{lineno}", f"record has no {key!r}", "see the instruct record format in docs/architecture.md")
                if cfg.split and rec.get("split", cfg.split) != cfg.split:
                    continue
                rec["_root"] = root
                records.append(rec)
    return records


def answer_words(record: dict[str, Any]) -> int:
    """Words in the record's assistant turns."""
    return sum(len(str(t.get("value", "")).split()) for t in record["conversations"] if t.get("from") == "gpt")


def stage_records(records: list[dict[str, Any]], stage: StageConfig, seed: int) -> list[dict[str, Any]]:
    """The records of one stage: its task types, short answers if asked, at most max_samples (seeded subset)."""
    keep = [
        r
        for r in records
        if r["task"] in stage.tasks and (stage.max_answer_words == 0 or answer_words(r) <= stage.max_answer_words)
    ]
    if stage.max_samples and len(keep) > stage.max_samples:
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(keep), generator=g)[: stage.max_samples].sort().values.tolist()
        keep = [keep[i] for i in idx]
    return keep


# ---------------------------------------------------------------- features


class CachedFeatures:
    """record → VideoFeatures via FeatureCache; extracts (once) and caches a video that is missing."""

    def __init__(self, cfg: DataConfig):
        from llmvqa.encoders.cache import FeatureCache

        self.cfg = cfg
        self.encoder_config = cfg.encoder
        self.key = self.encoder_config.key()
        self.cache = FeatureCache(cfg.feature_cache)
        self._extractor = None
        self._memo: dict[str, VideoFeatures] = {}
        self._prompt_memo: dict[str, dict[str, float]] = {}

    def video_path(self, record: dict[str, Any]) -> Path:
        path = Path(record["_root"]) / record["video"]
        if not path.is_file():
            raise DataError(str(path), f"video of record {record.get('id', '?')!r} not found", "fix data.video_root or the record")
        return path

    @property
    def extractor(self):
        if self._extractor is None:
            from llmvqa.encoders.pipeline import FeatureExtractor

            self._extractor = FeatureExtractor(self.encoder_config)
        return self._extractor

    def __call__(self, record: dict[str, Any]) -> VideoFeatures:
        path = self.video_path(record)
        feats = self._memo.get(str(path))
        if feats is None:
            from llmvqa.encoders.cache import get_or_extract

            feats, _ = get_or_extract(lambda: self.extractor, path, self.cache, key=self.key,
                                      compute_missing=self.cfg.compute_missing)
            self._memo[str(path)] = feats
        return feats

    def prompt_stats(self, record: dict[str, Any], features: VideoFeatures) -> dict[str, float] | None:
        """Prompt statistics (prompt_alignment) of a record with a text prompt; None without one."""
        prompt = record.get("prompt") or ""
        if not prompt:
            return None
        key = f"{features.meta.get('content_hash', record['video'])}\0{prompt}"
        if key not in self._prompt_memo:
            self._prompt_memo[key] = self.extractor.prompt_stats(features, prompt)
        return self._prompt_memo[key]

    def fill(self, records: list[dict[str, Any]], progress: bool = True) -> int:
        """Make sure every record's video is cached; returns how many videos were extracted."""
        from tqdm.auto import tqdm

        before = len(self._memo)
        seen = set()
        for rec in tqdm(records, desc="features", disable=not progress):
            p = str(self.video_path(rec))
            if p not in seen:
                seen.add(p)
                self(rec)
        return len(self._memo) - before


# ---------------------------------------------------------------- order


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, drop_last: bool) -> list[list[int]]:
    """Micro-batches (index lists) of one epoch; the permutation depends only on (seed, epoch)."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    perm = torch.randperm(n, generator=g).tolist()
    batches = [perm[i : i + batch_size] for i in range(0, n, batch_size)]
    if drop_last and len(batches) > 1 and len(batches[-1]) < batch_size:
        batches.pop()
    return batches


@dataclass
class BatchPlan:
    """Where optimizer steps fall in the micro-batch stream of one stage, for one process."""

    num_records: int
    batch_size: int
    grad_accum: int
    seed: int
    rank: int = 0
    world: int = 1
    drop_last: bool = False

    def __post_init__(self) -> None:
        if self.num_records == 0:
            raise DataError("stage data", "no records for this stage", "check the stage's tasks, data.split and data.train_files")
        full = epoch_batches(self.num_records, self.batch_size, self.seed, 0, self.drop_last)
        self.micro_per_epoch = max(1, len(full) // self.world)  # per process, equal on every rank

    @property
    def steps_per_epoch(self) -> int:
        return max(1, self.micro_per_epoch // self.grad_accum)

    def total_steps(self, stage: StageConfig) -> int:
        return stage.max_steps if stage.max_steps > 0 else stage.epochs * self.steps_per_epoch

    def micro_batch(self, m: int) -> tuple[int, list[int]]:
        """(epoch, record indices) of this process's micro-batch number m."""
        epoch, pos = divmod(m, self.micro_per_epoch)
        batches = epoch_batches(self.num_records, self.batch_size, self.seed, epoch, self.drop_last)
        return epoch, batches[pos * self.world + self.rank]

    def epoch_of_step(self, step: int) -> float:
        return step * self.grad_accum / self.micro_per_epoch


def num_epochs(plan: BatchPlan, steps: int) -> int:
    return math.ceil(plan.epoch_of_step(steps))
