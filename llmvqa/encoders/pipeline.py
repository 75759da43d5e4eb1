"""Video -> VideoFeatures: decode once, run the technical, motion and semantic encoders.

    from llmvqa.encoders.pipeline import FeatureExtractor
    fx = FeatureExtractor()                 # loads the models once
    feats = fx.extract("clip.mp4")          # VideoFeatures (prompt-independent)
    fx.prompt_stats(feats, "a cat surfing") # {"prompt_alignment": ...}

When the technical and semantic encoders name the same vision backbone, one model is
loaded and shared. ``timings`` holds the wall seconds of each stage of the last extraction
(``load`` = probe + decode, then one entry per encoder), ``cpu_timings`` the CPU seconds of
this process (all threads) for the same stages; ``load_seconds`` is the vision models' loading (the text
encoder loads with the first prompt: the class names' embeddings come from a table built once per machine).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from llmvqa import cancel
from llmvqa.encoders.backbones import load_vision_backbone
from llmvqa.encoders.cache import content_hash
from llmvqa.encoders.config import EncoderConfig
from llmvqa.encoders.motion import MotionEncoder
from llmvqa.encoders.semantic import SemanticEncoder
from llmvqa.encoders.technical import TechnicalEncoder, frame_series
from llmvqa.features import VideoFeatures
from llmvqa.statistics import PROMPT_STATS, STREAMS, stats_of_stream
from llmvqa.video.loader import load_clip
from llmvqa.video.types import Clip


class FeatureExtractor:
    """Loads the three encoders once; ``extract(path)`` / ``extract_clip(clip)`` give VideoFeatures."""

    def __init__(self, config: EncoderConfig | None = None, device: str | torch.device = "cpu"):
        self.config = config or EncoderConfig()
        self.device = torch.device(device)
        self.key = self.config.key()
        self.timings: dict[str, float] = {}
        self.cpu_timings: dict[str, float] = {}
        t0 = time.perf_counter()
        tech_cfg, sem_cfg = self.config.technical, self.config.semantic
        tech_backbone = load_vision_backbone(tech_cfg.backbone, self.device)
        self.shared_backbone = sem_cfg.backbone == tech_cfg.backbone
        sem_backbone = tech_backbone if self.shared_backbone else load_vision_backbone(sem_cfg.backbone, self.device)
        self.technical = TechnicalEncoder(tech_cfg, backbone=tech_backbone)
        self.motion = MotionEncoder(self.config.motion, device=self.device)
        self.semantic = SemanticEncoder(sem_cfg, backbone=sem_backbone)
        # the text encoder loads with the first prompt (the class names' embeddings: SemanticEncoder.class_table)
        self.load_seconds = time.perf_counter() - t0

    def optimize_for_inference(self) -> bool:
        """Faster encoders for a long run of videos (``VisionBackbone.optimize_for_inference``: the same features to
        float rounding, seconds to build); True when a backbone changed. ``llmvqa batch``'s feature workers call it."""
        changed = self.technical.backbone.optimize_for_inference()
        if not self.shared_backbone:
            changed = self.semantic.backbone.optimize_for_inference() or changed
        return changed

    def extract(self, path: str | os.PathLike, content_hash_: str | None = None) -> VideoFeatures:
        """Features of the video at ``path`` (raises VideoError for a bad video)."""
        digest = content_hash_ or content_hash(path)
        t0, c0 = time.perf_counter(), time.process_time()
        clip = load_clip(Path(path), nframes=self.config.nframes, limits=self.config.limits)
        load_s, load_cpu = time.perf_counter() - t0, time.process_time() - c0
        features = self.extract_clip(clip)
        self.timings = {"load": load_s, **self.timings}
        self.cpu_timings = {"load": load_cpu, **self.cpu_timings}
        features.meta.update(path=str(path), content_hash=digest)
        return features

    def extract_clip(self, clip: Clip) -> VideoFeatures:
        """Features of already-decoded frames (meta has no content_hash: such features are not cached)."""
        timings: dict[str, float] = {}
        cpu: dict[str, float] = {}
        tokens: dict[str, torch.Tensor] = {}
        stats: dict[str, float] = {}
        basis = None
        for stream in STREAMS:
            cancel.check()  # a request past its deadline stops between streams (llmvqa.cancel)
            t, c = time.perf_counter(), time.process_time()
            if stream == "semantic":
                tokens[stream], s, basis = self.semantic(clip)
            elif stream == "technical":  # the per-frame series first: the technical statistics average them
                series = frame_series(clip.frames)
                tokens[stream], s = self.technical(clip, series)
            else:
                tokens[stream], s = getattr(self, stream)(clip)
            stats.update(s)
            timings[stream], cpu[stream] = time.perf_counter() - t, time.process_time() - c
        self.timings, self.cpu_timings = timings, cpu
        for stream in STREAMS:  # every stream reports exactly its registry statistics
            names = [n for n in stats_of_stream(stream, probe=True) if n not in PROMPT_STATS]
            missing = [n for n in names if n not in stats]
            if missing:
                raise RuntimeError(f"{stream} encoder did not report statistics {missing}")
        meta = {
            "path": clip.info.path,
            "encoder_key": self.key,
            "alignment_space": str(getattr(self.semantic, "alignment_space", "")),
            "num_frames": str(len(clip.frames)),
            "width": str(clip.info.width),
            "height": str(clip.info.height),
            "fps": f"{clip.info.fps:g}",
            "duration": f"{clip.info.duration:g}",
            "timestamps": json.dumps([round(float(t), 4) for t in clip.timestamps]),
        }
        labels = self.semantic.top_labels(tokens["semantic"])
        if labels:
            meta["labels"] = json.dumps(labels)
        series = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in series.items()}
        tokens = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in tokens.items()}
        basis = basis.detach().to("cpu", torch.float32).contiguous() if basis is not None else None
        stats = {k: float(v) for k, v in stats.items() if k not in PROMPT_STATS}
        return VideoFeatures(tokens=tokens, stats=stats, alignment_basis=basis, meta=meta, series=series)

    def prompt_stats(self, features: VideoFeatures, prompt: str | None) -> dict[str, float]:
        """``{"prompt_alignment": float}`` for a non-empty prompt, else ``{}``."""
        if not prompt or not prompt.strip() or features.alignment_basis is None:
            return {}
        space = features.meta.get("alignment_space")
        mine = str(getattr(self.semantic, "alignment_space", ""))
        if space and mine and space != mine:
            raise ValueError(
                f"features were extracted in alignment space {space!r} but this extractor uses {mine!r}; "
                "re-extract them with the same encoder settings"
            )
        value = self.semantic.prompt_alignment(features.alignment_basis, prompt, features.tokens.get("semantic"))
        return {"prompt_alignment": float(value)}
