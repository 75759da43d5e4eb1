"""Qwen2.5-VL path: the VL model's own vision tower is the semantic stream.

With ``backbone: Qwen/Qwen2.5-VL-7B-Instruct`` the language model (which carries the LoRA) is
loaded by llmvqa.model.backbone; this module supplies the semantic stream from the same
checkpoint's vision tower, beside our technical and motion streams:

    video ─► llmvqa's loader (probe, caps, timeout) ─► frames sized for the tower ─► patches (``video_patches``)
          ─► vision tower + merger (tokens already in the LM's width) ─► mean over space per temporal patch
          ─► semantic stream tokens (T', H) ─► the semantic projector like any other stream

The tower is frozen by default, so its tokens are computed once per video like any cached feature
(``QwenSemanticFeatures`` wraps the trainer's feature source). Frames come through the one video loader
(``qwen_frames``), never qwen-vl-utils' own decoder, which has no probe, caps or timeout. The frames are cut
into the tower's patches here (``video_patches``: Qwen2-VL's video processor after its resize), so the stream
needs no torchvision and runs wherever torch does.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llmvqa.errors import ModelError
from llmvqa.features import VideoFeatures

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
"""Qwen2-VL's pixel normalization (its processor's defaults)."""

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


def qwen_frames(path: str | Path, nframes: int = 16, max_pixels: int = 360 * 420, limits=None,
                factor: int = QWEN_FACTOR):
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
    H, W = qwen_size(h, w, max_pixels, factor)
    if (H, W) == (h, w):
        return np.ascontiguousarray(frames)
    return np.stack([cv2.resize(f, (W, H), interpolation=cv2.INTER_AREA) for f in frames])


def video_patches(frames, patch_size: int = 14, temporal_patch_size: int = 2, merge_size: int = 2,
                  mean=OPENAI_CLIP_MEAN, std=OPENAI_CLIP_STD) -> tuple[torch.Tensor, torch.Tensor]:
    """pixel_values_videos (patches, C·t·p·p) and video_grid_thw (1, 3) of uint8 frames (T, H, W, 3) whose sides
    are multiples of patch_size × merge_size (``qwen_frames``): rescaled to 0–1, normalized per channel, padded
    to whole temporal patches with the last frame, and cut into the vision tower's patch order — what
    Qwen2-VL's video processor does after its resize, written here in torch so no torchvision is needed."""
    video = torch.as_tensor(frames).permute(0, 3, 1, 2).float().div_(255.0)  # (T, C, H, W)
    t, c, h, w = video.shape
    side = patch_size * merge_size
    if h % side or w % side:
        raise ValueError(f"frame sides {h}x{w} must be multiples of {side} (resize with qwen_size)")
    video = (video - torch.tensor(mean).view(1, c, 1, 1)) / torch.tensor(std).view(1, c, 1, 1)
    if pad := -t % temporal_patch_size:
        video = torch.cat([video, video[-1:].expand(pad, -1, -1, -1)])
    gt, gh, gw = video.shape[0] // temporal_patch_size, h // patch_size, w // patch_size
    patches = video.view(gt, temporal_patch_size, c, gh // merge_size, merge_size, patch_size,
                         gw // merge_size, merge_size, patch_size)
    # (t, tp, c, h/m, m, p, w/m, m, p) → (t, h/m, w/m, m, m, c, tp, p, p): merge groups contiguous, as the tower reads
    patches = patches.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    flat = patches.reshape(gt * gh * gw, c * temporal_patch_size * patch_size * patch_size)
    return flat, torch.tensor([[gt, gh, gw]])


def normalization(model_path: str) -> tuple[list[float], list[float]]:
    """image_mean / image_std of the checkpoint's processor config (local folder or hub cache, never a download
    that fails offline); Qwen2-VL's published values (OpenAI CLIP's) where it has none."""
    from transformers.utils import cached_file

    for name in ("video_preprocessor_config.json", "preprocessor_config.json"):
        try:
            found = cached_file(model_path, name, _raise_exceptions_for_missing_entries=False,
                                _raise_exceptions_for_connection_errors=False)
        except (OSError, ValueError):
            found = None
        if found:
            cfg = json.loads(Path(found).read_text(encoding="utf-8"))
            if "image_mean" in cfg and "image_std" in cfg:
                return list(cfg["image_mean"]), list(cfg["image_std"])
    return list(OPENAI_CLIP_MEAN), list(OPENAI_CLIP_STD)


class QwenVisionStream:
    """The semantic stream of a Qwen2-VL / Qwen2.5-VL checkpoint: video → loader frames → patches → frozen tower
    → (T', D) tokens. Shared by training (``QwenSemanticFeatures``) and rating (``QwenSemanticExtractor``)."""

    def __init__(self, model_path: str, nframes: int = 16, device: str = "cpu", dtype=torch.float32,
                 max_pixels: int = 360 * 420):
        from transformers import AutoModelForImageTextToText

        self.nframes, self.device, self.max_pixels = nframes, device, max_pixels
        try:
            full = AutoModelForImageTextToText.from_pretrained(model_path, dtype=dtype)
        except (OSError, ValueError) as err:
            raise ModelError(model_path, f"cannot load the Qwen-VL checkpoint whose vision tower is the semantic "
                             f"stream ({type(err).__name__})", "pass the model's backbone by local path or make "
                             "it available in the hub cache") from err
        self.semantic = QwenVisionSemantic(vision_tower(full)).to(device).eval()
        del full
        vcfg = self.semantic.visual.config
        self.patch = int(vcfg.patch_size)
        self.temporal = int(getattr(vcfg, "temporal_patch_size", 2))
        self.mean, self.std = normalization(model_path)

    @torch.no_grad()
    def tokens(self, path: str | Path, limits=None) -> torch.Tensor:
        """(T', D) semantic tokens of one video, one per temporal patch; ``limits`` (VideoLimits) cap decoding."""
        frames = qwen_frames(path, self.nframes, self.max_pixels, limits, factor=self.patch * self.semantic.merge)
        pixels, grid = video_patches(frames, self.patch, self.temporal, self.semantic.merge, self.mean, self.std)
        return self.semantic(pixels.to(self.device), grid.to(self.device))[0].cpu()


class QwenSemanticFeatures:
    """FeatureSource wrapper: the base source's features with the semantic stream from the Qwen vision tower.

    base: record → VideoFeatures (the trainer's CachedFeatures); model_path: the Qwen2.5-VL checkpoint.
    Tokens are computed once per video (the tower is frozen) and kept in memory.
    """

    def __init__(self, base, model_path: str, nframes: int = 16, device: str = "cpu", dtype=torch.float32):
        self.base = base
        self.stream = QwenVisionStream(model_path, nframes, device, dtype)
        self._memo: dict[str, torch.Tensor] = {}
        # the caps of the recipe's encoders (EncoderConfig.limits) hold for the Qwen stream's frames too
        self.limits = getattr(getattr(base, "encoder_config", None), "limits", None)

    def __getattr__(self, name: str):  # prompt_stats, encoder_config, video_path ... of the base source
        return getattr(self.base, name)

    def semantic_tokens(self, path: str | Path) -> torch.Tensor:
        key = str(path)
        if key not in self._memo:
            self._memo[key] = self.stream.tokens(path, self.limits)
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
        self.extractor = extractor
        self.stream = QwenVisionStream(model_path, nframes, device, dtype)

    def __getattr__(self, name: str):
        return getattr(self.extractor, name)

    def extract(self, path, *args, **kwargs) -> VideoFeatures:
        feats = self.extractor.extract(path, *args, **kwargs)
        limits = getattr(getattr(self.extractor, "config", None), "limits", None)
        return with_semantic_tokens(feats, self.stream.tokens(path, limits))
