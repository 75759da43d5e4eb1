"""Qwen2.5-VL path: the VL model's own vision tower is the semantic stream.

With ``backbone: Qwen/Qwen2.5-VL-7B-Instruct`` the language model (which carries the LoRA) is
loaded by llmvqa.model.backbone; this module supplies the semantic stream from the same
checkpoint's vision tower, beside our technical and motion streams:

    video ─► llmvqa's loader (probe, caps, timeout) ─► frames sized for the tower ─► Qwen video processor
          ─► vision tower + merger (tokens already in the LM's width) ─► mean over space per temporal patch
          ─► semantic stream tokens (T', H) ─► the semantic projector like any other stream

The tower is frozen by default, so its tokens are computed once per video like any cached feature
(``QwenSemanticFeatures`` wraps the trainer's feature source). Frames come through the one video loader
(``qwen_frames``), never qwen-vl-utils' own decoder, which has no probe, caps or timeout. The processor's
video path needs torchvision (the ``qwen-vl`` extra); its absence is a ModelError naming
``pip install 'llmvqa[qwen-vl]'``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llmvqa.errors import ModelError
from llmvqa.features import VideoFeatures

INSTALL_HINT = "pip install 'llmvqa[qwen-vl]' (installs torchvision; match it to your torch build)"


def require_qwen_vl_utils():
    """The qwen_vl_utils module, or a ModelError that says how to install it."""
    try:
        import qwen_vl_utils
        import torchvision  # noqa: F401  (qwen-vl-utils decodes and resizes with it)
    except ImportError as err:
        raise ModelError("qwen-vl-utils", f"Qwen2.5-VL video processing is unavailable ({err})", INSTALL_HINT) from None
    return qwen_vl_utils


def vision_tower(model: nn.Module) -> nn.Module:
    """The vision transformer (+ merger) of a Qwen2-VL / Qwen2.5-VL model (or of a QualityLLM's lm)."""
    for path in ("visual", "model.visual", "base_model.model.model.visual", "lm.model.visual",
                 "lm.base_model.model.model.visual"):
        m: Any = model
        for part in path.split("."):
            m = getattr(m, part, None)
            if m is None:
                break
        if m is not None:
            return m
    raise ModelError(type(model).__name__, "has no Qwen-VL vision tower",
                     "use a Qwen2-VL / Qwen2.5-VL checkpoint as the backbone for the semantic stream")


class QwenVisionSemantic(nn.Module):
    """Vision tower → one semantic token per temporal patch (mean of its merged spatial tokens)."""

    def __init__(self, visual: nn.Module, frozen: bool = True):
        super().__init__()
        self.visual = visual
        cfg = visual.config
        self.merge = int(cfg.spatial_merge_size)
        self.dim = int(getattr(cfg, "out_hidden_size", None) or cfg.hidden_size)
        if frozen:
            for p in self.visual.parameters():
                p.requires_grad_(False)

    def forward(self, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> list[torch.Tensor]:
        """pixel_values (N_patches, C·t·p·p), grid_thw (V, 3) → per video (t, dim) tokens."""
        grid_thw = grid_thw.to(torch.long)
        need = int(grid_thw.prod(-1).sum())
        if pixel_values.shape[0] != need:
            raise ValueError(f"pixel_values has {pixel_values.shape[0]} patches but grid_thw {grid_thw.tolist()} "
                             f"needs {need}")
        dtype = next(self.visual.parameters()).dtype
        out = self.visual(pixel_values.to(dtype), grid_thw=grid_thw)
        merged = out.pooler_output if hasattr(out, "pooler_output") else out  # (N_patches / merge², dim)
        sizes = (grid_thw.prod(-1) // (self.merge**2)).tolist()
        if sum(sizes) != merged.shape[0]:
            raise ValueError(f"vision tower returned {merged.shape[0]} tokens for grids needing {sum(sizes)}")
        videos = []
        for (t, _, _), chunk in zip(grid_thw.tolist(), merged.split(sizes), strict=True):
            videos.append(chunk.reshape(t, -1, chunk.shape[-1]).float().mean(dim=1))  # (t, hw/merge², dim) → (t, dim)
        return videos


QWEN_FACTOR = 28
"""Frame sides must be multiples of the vision tower's patch (14) × spatial merge (2)."""


def qwen_size(height: int, width: int, max_pixels: int, factor: int = QWEN_FACTOR) -> tuple[int, int]:
    """(H, W): the frame scaled (never up) so that H·W ≤ max_pixels, both sides multiples of ``factor`` (≥ factor)."""
    scale = min(1.0, (max_pixels / float(height * width)) ** 0.5)
    return (max(factor, int(height * scale // factor) * factor), max(factor, int(width * scale // factor) * factor))


def qwen_frames(path: str | Path, nframes: int = 16, max_pixels: int = 360 * 420, limits=None):
    """Frames for the Qwen vision tower through llmvqa's one loader (probe, size and duration caps, decode
    timeout: ``limits``, a VideoLimits): an even number of evenly spaced frames (Qwen pairs them into temporal
    patches; a short clip's last frame is repeated), each resized by ``qwen_size``. uint8 (T, H, W, 3)."""
    import cv2
    import numpy as np

    from llmvqa.video.loader import load_clip

    clip = load_clip(path, nframes=max(2, nframes - nframes % 2), limits=limits)
    frames = clip.frames
    if len(frames) % 2:
        frames = np.concatenate([frames, frames[-1:]])
    h, w = frames.shape[1:3]
    H, W = qwen_size(h, w, max_pixels)
    if (H, W) == (h, w):
        return np.ascontiguousarray(frames)
    return np.stack([cv2.resize(f, (W, H), interpolation=cv2.INTER_AREA) for f in frames])


def video_inputs(path: str | Path, processor, nframes: int = 16, max_pixels: int = 360 * 420, limits=None) -> dict:
    """pixel_values_videos and video_grid_thw of one video: frames from ``qwen_frames``, then the Qwen processor."""
    require_qwen_vl_utils()  # the processor's video path needs torchvision
    video = qwen_frames(path, nframes, max_pixels, limits)
    vp = getattr(processor, "video_processor", None) or processor.image_processor
    inputs = vp(videos=[video], return_tensors="pt")
    return {"pixel_values_videos": inputs["pixel_values_videos"], "video_grid_thw": inputs["video_grid_thw"]}


class QwenSemanticFeatures:
    """FeatureSource wrapper: the base source's features with the semantic stream from the Qwen vision tower.

    base: record → VideoFeatures (the trainer's CachedFeatures); model_path: the Qwen2.5-VL checkpoint.
    Tokens are computed once per video (the tower is frozen) and kept in memory.
    """

    def __init__(self, base, model_path: str, nframes: int = 16, device: str = "cpu", dtype=torch.float32):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        require_qwen_vl_utils()
        self.base = base
        self.nframes = nframes
        self.device = device
        self.processor = AutoProcessor.from_pretrained(model_path)
        full = AutoModelForImageTextToText.from_pretrained(model_path, dtype=dtype)
        self.semantic = QwenVisionSemantic(vision_tower(full)).to(device).eval()
        del full
        self._memo: dict[str, torch.Tensor] = {}
        # the caps of the recipe's encoders (EncoderConfig.limits) hold for the Qwen stream's frames too
        self.limits = getattr(getattr(base, "encoder_config", None), "limits", None)

    def __getattr__(self, name: str):  # prompt_stats, encoder_config, video_path ... of the base source
        return getattr(self.base, name)

    @torch.no_grad()
    def semantic_tokens(self, path: str | Path) -> torch.Tensor:
        key = str(path)
        if key not in self._memo:
            inputs = video_inputs(path, self.processor, self.nframes, limits=self.limits)
            self._memo[key] = self.semantic(inputs["pixel_values_videos"].to(self.device),
                                            inputs["video_grid_thw"].to(self.device))[0].cpu()
        return self._memo[key]

    def __call__(self, record: dict) -> VideoFeatures:
        feats = self.base(record)
        path = self.base.video_path(record) if hasattr(self.base, "video_path") else Path(record["_root"]) / record["video"]
        return with_semantic_tokens(feats, self.semantic_tokens(path))


def with_semantic_tokens(features: VideoFeatures, tokens: torch.Tensor) -> VideoFeatures:
    """A copy of ``features`` whose semantic stream is ``tokens`` (T, D); stats and basis unchanged."""
    return dataclasses.replace(features, tokens={**features.tokens, "semantic": tokens.float()},
                               meta={**features.meta, "semantic_source": "qwen-vl-vision-tower"})


class QwenSemanticExtractor:
    """A FeatureExtractor whose semantic stream is a Qwen-VL vision tower's (the rating side of
    ``QwenSemanticFeatures``): ``Assessor.from_pretrained`` wraps the extractor with it when the checkpoint's
    encoder settings name ``semantic_tokens``. Everything else (statistics, prompt statistics, key) is the
    wrapped extractor's."""

    def __init__(self, extractor, model_path: str, nframes: int = 16, device: str = "cpu", dtype=torch.float32):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        require_qwen_vl_utils()
        self.extractor = extractor
        self.nframes = nframes
        self.device = device
        try:
            self.processor = AutoProcessor.from_pretrained(model_path)
            full = AutoModelForImageTextToText.from_pretrained(model_path, dtype=dtype)
        except (OSError, ValueError) as err:
            raise ModelError(model_path, f"cannot load the Qwen-VL checkpoint whose vision tower is the semantic "
                             f"stream ({type(err).__name__})", "pass the model's backbone by local path or make "
                             "it available in the hub cache") from err
        self.semantic = QwenVisionSemantic(vision_tower(full)).to(device).eval()
        del full

    def __getattr__(self, name: str):
        return getattr(self.extractor, name)

    @torch.no_grad()
    def extract(self, path, *args, **kwargs) -> VideoFeatures:
        feats = self.extractor.extract(path, *args, **kwargs)
        limits = getattr(getattr(self.extractor, "config", None), "limits", None)
        inputs = video_inputs(path, self.processor, self.nframes, limits=limits)
        tokens = self.semantic(inputs["pixel_values_videos"].to(self.device), inputs["video_grid_thw"].to(self.device))
        return with_semantic_tokens(feats, tokens[0].cpu())

