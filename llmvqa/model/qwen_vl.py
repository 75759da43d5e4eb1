"""Qwen2.5-VL path: the VL model's own vision tower is the semantic stream.

With ``backbone: Qwen/Qwen2.5-VL-7B-Instruct`` the language model (which carries the LoRA) is
loaded by llmvqa.model.backbone; this module supplies the semantic stream from the same
checkpoint's vision tower, beside our technical and motion streams:

    video ─► qwen-vl-utils fetch_video (frames) ─► Qwen video processor (pixel_values_videos, grid_thw)
          ─► vision tower + merger (tokens already in the LM's width) ─► mean over space per temporal patch
          ─► semantic stream tokens (T', H) ─► the semantic projector like any other stream

The tower is frozen by default, so its tokens are computed once per video like any cached feature
(``QwenSemanticFeatures`` wraps the trainer's feature source). qwen-vl-utils needs torchvision;
it is imported lazily and its absence is a ModelError naming ``pip install 'llmvqa[qwen-vl]'``.
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


def video_inputs(path: str | Path, processor, nframes: int = 16, max_pixels: int = 360 * 420) -> dict:
    """pixel_values_videos and video_grid_thw of one video through qwen-vl-utils and the Qwen processor."""
    qvu = require_qwen_vl_utils()
    nframes = max(2, nframes - nframes % 2)  # qwen-vl-utils wants an even frame count
    video = qvu.fetch_video({"video": str(path), "nframes": nframes, "max_pixels": max_pixels})
    if isinstance(video, tuple):  # newer qwen-vl-utils return (frames, metadata)
        video = video[0]
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

    def __getattr__(self, name: str):  # prompt_stats, encoder_config, video_path ... of the base source
        return getattr(self.base, name)

    @torch.no_grad()
    def semantic_tokens(self, path: str | Path) -> torch.Tensor:
        key = str(path)
        if key not in self._memo:
            inputs = video_inputs(path, self.processor, self.nframes)
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
