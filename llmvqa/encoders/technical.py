"""Technical stream: backbone embeddings of FAST-VQA fragments + low-level quality statistics.

Tokens: one pooled backbone embedding per used frame of the ``grid*patch`` fragment mosaic
(native-resolution crops, so blur, noise and compression survive). Statistics (names and
meanings in :mod:`llmvqa.statistics`) are computed on the same frames:

- sharpness, noise, blockiness on the native-resolution luma (resizing would erase the very
  detail, grain and 8-px block grid they measure);
- exposure, brightness, contrast, colorfulness, color_cast, saturation on every ``stride``-th pixel,
  where the stride brings the short side to at most ``stats_max_side`` (360) px (subsampling keeps
  their distributions).

No weights are needed for the statistics: :meth:`TechnicalEncoder.stats_only`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from llmvqa.encoders.backbones import VisionBackbone, load_vision_backbone
from llmvqa.errors import ConfigError
from llmvqa.statistics import stats_of_stream
from llmvqa.video.types import Clip
from llmvqa.video.views import fragments

STAT_NAMES = stats_of_stream("technical", probe=True)


@dataclass
class TechnicalConfig:
    """Settings of the technical encoder."""

    backbone: str = "efficientnet_lite0"
    """Vision backbone: "efficientnet_lite0" (offline), "timm:<name>", or a HF id / local folder."""
    grid: int = 7
    """Fragments: cells per side of the mini-patch lattice."""
    patch: int = 32
    """Fragments: side in pixels of each native-resolution crop (mosaic side = grid * patch)."""
    nframes_used: int = 8
    """Frames (evenly spread over the clip's sampled frames) that give tokens and statistics."""
    stats_max_side: int = 360
    """Exposure/colour statistics subsample pixels so the short side is at most about this many pixels."""

    def __post_init__(self) -> None:
        for name in ("grid", "patch", "nframes_used", "stats_max_side"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"TechnicalConfig.{name}", f"must be a positive integer, got {value!r}", None)
        if not self.backbone:
            raise ConfigError("TechnicalConfig.backbone", "is empty", 'use "efficientnet_lite0"')


def select_frames(num_frames: int, n: int) -> np.ndarray:
    """Indices of ``min(n, num_frames)`` evenly spread frames (first and last included)."""
    n = min(n, num_frames)
    return np.unique(np.linspace(0, num_frames - 1, n).round().astype(np.int64))


def _luma(frames: np.ndarray) -> np.ndarray:
    """uint8 (T, H, W, 3) RGB -> uint8 (T, H, W) BT.601 luma."""
    return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])


def sharpness_per_frame(luma: np.ndarray) -> np.ndarray:
    """(T,) ln(1 + variance of the 3x3 Laplacian) of each frame."""
    vals = [float(cv2.meanStdDev(cv2.Laplacian(y, cv2.CV_16S, ksize=1))[1][0, 0]) ** 2 for y in luma]
    return np.log1p(np.asarray(vals, dtype=np.float64))


def sharpness(luma: np.ndarray) -> float:
    """ln(1 + variance of the 3x3 Laplacian), per frame, averaged."""
    return float(np.mean(sharpness_per_frame(luma)))


# Immerkaer's noise mask (the difference of two Laplacians): zero on any plane, so smooth shading
# cancels; white noise of sigma s gives a response of sigma 6 s (the mask's L2 norm).
_NOISE_MASK = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)


def _binned_median(counts: np.ndarray) -> float:
    """Median of non-negative integer data from its histogram, interpolated inside the median's bin.

    Integer |responses| would make the plain median jump in steps of 1/(6*0.6745) sigma.
    """
    cum = np.cumsum(counts)
    half = cum[-1] / 2
    k = int(np.searchsorted(cum, half))
    before = float(cum[k - 1]) if k > 0 else 0.0
    lo, width = (0.0, 0.5) if k == 0 else (k - 0.5, 1.0)  # bin of value k: [k-0.5, k+0.5), clipped at 0
    return lo + width * (half - before) / max(float(counts[k]), 1.0)


def noise_per_frame(luma: np.ndarray) -> np.ndarray:
    """(T,) noise sigma (8-bit units) of each frame: median(|Immerkaer mask response|) / (6 * 0.6745).

    A robust (MAD) estimate on the finest band: edges and texture are a minority of pixels, so
    the median reads the noise floor. Computed on the native luma, since resizing averages noise away.
    """
    sig = []
    for y in luma:
        r = cv2.filter2D(y, cv2.CV_16S, _NOISE_MASK)[1:-1, 1:-1]  # (H-2, W-2), border rows dropped
        counts = np.bincount(cv2.absdiff(r, 0).ravel().view(np.uint16))  # |r| are small integers: median by histogram
        sig.append(_binned_median(counts) / (6 * 0.6745))
    return np.asarray(sig, dtype=np.float64)


def noise(luma: np.ndarray) -> float:
    """Noise sigma (8-bit units), per frame (noise_per_frame), averaged."""
    return float(np.mean(noise_per_frame(luma)))


SERIES: tuple[str, ...] = ("sharpness", "noise", "brightness")
"""Per-frame series (``frame_series``) kept with the features for time-located evidence."""


def frame_series(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame sharpness (ln Laplacian variance), noise sigma (8-bit) and mean luma (0–1) of
    uint8 (T, H, W, 3) frames — the same measures as the clip statistics, before averaging."""
    luma = _luma(np.asarray(frames))
    return {
        "sharpness": sharpness_per_frame(luma),
        "noise": noise_per_frame(luma),
        "brightness": luma.reshape(len(luma), -1).mean(axis=1) / 255.0,
    }


def _grid_step_ratio(steps_total: float, edge: np.ndarray, n_all: int) -> float:
    """(mean step on the grid + eps) / (mean step off it + eps)."""
    on = float(edge.sum())
    return (on / edge.size + 1e-3) / ((steps_total - on) / (n_all - edge.size) + 1e-3)


def blockiness(luma: np.ndarray, block: int = 8) -> float:
    """Mean |luma step| across the ``block``-px grid lines / mean |step| elsewhere, both directions, all frames.

    Block coding (JPEG, MPEG/H.264 transforms) leaves steps on the grid; clean content gives ~1.
    """
    t, h, w = luma.shape
    ratios = []
    if w > block:  # steps along x: between columns 8k-1 and 8k
        total = sum(float(cv2.sumElems(cv2.absdiff(f[:, 1:], f[:, :-1]))[0]) for f in luma)
        edge = np.abs(luma[:, :, block::block].astype(np.int16) - luma[:, :, block - 1 : -1 : block])  # (T, H, n_on)
        ratios.append(_grid_step_ratio(total, edge, t * h * (w - 1)))
    if h > block:  # steps along y
        total = sum(float(cv2.sumElems(cv2.absdiff(f[1:], f[:-1]))[0]) for f in luma)
        edge = np.abs(luma[:, block::block].astype(np.int16) - luma[:, block - 1 : -1 : block])  # (T, n_on, W)
        ratios.append(_grid_step_ratio(total, edge, t * (h - 1) * w))
    return float(np.mean(ratios)) if ratios else 1.0


def exposure_and_color(frames: np.ndarray, luma: np.ndarray, max_side: int) -> dict[str, float]:
    """underexposure, overexposure, brightness, contrast, colorfulness, color_cast, saturation on subsampled pixels.

    Every ``step``-th pixel with step = ceil(short side / max_side): these are distribution
    statistics, which plain subsampling keeps, and it makes 4K frames as cheap as 720p ones.
    """
    step = max(1, math.ceil(min(frames.shape[1:3]) / max_side))
    y = np.ascontiguousarray(luma[:, ::step, ::step])  # (T, h, w) uint8
    rgb = np.ascontiguousarray(frames[:, ::step, ::step])  # (T, h, w, 3) uint8
    luma_mean, luma_std, color, sat = [], [], [], []
    for f, yy in zip(rgb, y, strict=True):
        sat.append(float(cv2.cvtColor(f, cv2.COLOR_RGB2HSV)[..., 1].mean()) / 255.0)
        r, g, b = cv2.split(f.astype(np.float32))
        rg = r - g
        yb = 0.5 * (r + g) - b
        (m_rg,), (s_rg,) = (v[:, 0] for v in cv2.meanStdDev(rg))
        (m_yb,), (s_yb,) = (v[:, 0] for v in cv2.meanStdDev(yb))
        color.append(np.hypot(s_rg, s_yb) + 0.3 * np.hypot(m_rg, m_yb))  # Hasler–Süsstrunk
        (m,), (sd,) = (v[:, 0] for v in cv2.meanStdDev(yy))
        luma_mean.append(m)
        luma_std.append(sd)
    n = y.size
    return {
        "underexposure": float(np.count_nonzero(y < 16) / n),
        "overexposure": float(np.count_nonzero(y > 239) / n),
        "brightness": float(np.mean(luma_mean) / 255.0),
        "contrast": float(np.mean(luma_std) / 255.0),  # per-frame std: brightness drift over time is not contrast
        "colorfulness": float(np.mean(color)),
        "color_cast": color_cast(rgb),
        "saturation": float(np.mean(sat)),
        **highlight_color(rgb, y),
    }


def highlight_color(rgb: np.ndarray, luma: np.ndarray) -> dict[str, float]:
    """highlight_cast and channel_balance of uint8 (T, h, w, 3) RGB frames and their uint8 (T, h, w) luma.

    White-patch hypothesis: the brightest surfaces of a scene (luma at or above its 95th percentile) are about
    neutral, so the opponent chroma of their mean colour, relative to their mean, measures a tint; and every
    channel reaches about the same peak (its 99.5th percentile), so the weakest peak over the strongest falls with
    a channel gain. Percentiles are read from 256-bin histograms (the lowest grey level whose cumulative share
    reaches the quantile). Frames with no highlight above black (the brightest pixels' mean under 8 grey levels)
    give no evidence: 0 and 1.
    """
    y = luma.reshape(-1, luma.shape[-1])
    x = rgb.reshape(-1, rgb.shape[-2], 3)

    def quantile(channel: np.ndarray, q: float) -> int:
        cum = np.cumsum(cv2.calcHist([channel], [0], None, [256], [0, 256]).ravel())
        return int(np.searchsorted(cum, q * cum[-1]))

    mask = (y >= quantile(y, 0.95)).astype(np.uint8)
    m = np.asarray(cv2.mean(x, mask=mask)[:3])
    if m.mean() < 8.0:
        return {"highlight_cast": 0.0, "channel_balance": 1.0}
    r, g, b = m
    peaks = [quantile(np.ascontiguousarray(x[..., c]), 0.995) for c in range(3)]
    return {"highlight_cast": float(np.hypot(r - g, 0.5 * (r + g) - b) / m.mean()),
            "channel_balance": float(min(peaks) / max(max(peaks), 1))}


def color_cast(rgb: np.ndarray) -> float:
    """Gray-edge colour cast of uint8 (T, h, w, 3) RGB frames (unitless, 0 = neutral).

    Gray-edge hypothesis: averaged over a scene, edges are achromatic, so the mean |gradient| of
    R, G and B is about equal; a per-channel gain (a tint) scales them apart. With e = the mean
    |horizontal + vertical difference| per channel, the cast is the opponent chroma
    |(e_R − e_G, (e_R + e_G)/2 − e_B)| divided by mean(e): a global brightness gain cancels.
    Unlike the gray-world mean colour, it is barely moved by large uniformly coloured objects.
    """
    t, h, w, _ = rgb.shape
    e = np.zeros(3)  # exact per-channel sums of the uint8 |differences| (cv2), a thirtieth of a float copy's time
    if w > 1:
        e += np.sum([cv2.sumElems(cv2.absdiff(f[:, 1:], f[:, :-1]))[:3] for f in rgb], axis=0) / (t * h * (w - 1))
    if h > 1:
        e += np.sum([cv2.sumElems(cv2.absdiff(f[1:], f[:-1]))[:3] for f in rgb], axis=0) / (t * (h - 1) * w)
    if e.mean() < 1e-6:  # flat frames: no edges, no evidence of a cast
        return 0.0
    r, g, b = e
    return float(np.hypot(r - g, 0.5 * (r + g) - b) / e.mean())


def technical_stats(frames: np.ndarray, max_side: int = 360,
                    series: dict[str, np.ndarray] | None = None) -> dict[str, float]:
    """All technical statistics of uint8 (T, H, W, 3) RGB frames, in llmvqa.statistics order. ``series``: these
    frames' ``frame_series`` when already measured (their sharpness and noise are then averaged, not measured again)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"frames must be non-empty uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    luma = _luma(frames)
    if series is not None and all(len(series[k]) == len(frames) for k in ("sharpness", "noise")):
        stats = {"sharpness": float(np.mean(series["sharpness"])), "noise": float(np.mean(series["noise"]))}
    else:
        stats = {"sharpness": sharpness(luma), "noise": noise(luma)}
    stats["blockiness"] = blockiness(luma)
    stats.update(exposure_and_color(frames, luma, max_side))
    return {name: stats[name] for name in STAT_NAMES}


class TechnicalEncoder:
    """``__call__(clip) -> (tokens float32 (T, D), stats)``; the backbone loads on first use.

    Pass ``backbone`` to share an already-loaded model (e.g. with the semantic encoder).
    """

    def __init__(self, cfg: TechnicalConfig | None = None, backbone: VisionBackbone | None = None):
        self.cfg = cfg or TechnicalConfig()
        self._backbone = backbone

    @property
    def backbone(self) -> VisionBackbone:
        if self._backbone is None:
            self._backbone = load_vision_backbone(self.cfg.backbone)
        return self._backbone

    def used_frames(self, clip: Clip | np.ndarray) -> np.ndarray:
        frames = clip.frames if isinstance(clip, Clip) else np.asarray(clip)
        return frames[select_frames(len(frames), self.cfg.nframes_used)]

    def views(self, clip: Clip | np.ndarray) -> np.ndarray:
        """The fragment mosaics the backbone sees: uint8 (T, grid*patch, grid*patch, 3)."""
        return fragments(self.used_frames(clip), grid=self.cfg.grid, patch=self.cfg.patch)

    def stats_only(self, clip: Clip | np.ndarray, series: dict[str, np.ndarray] | None = None) -> dict[str, float]:
        """The technical statistics alone (no model needed). ``series``: ``frame_series`` of all the clip's frames,
        when already measured (the used frames' sharpness and noise are read from it)."""
        frames = clip.frames if isinstance(clip, Clip) else np.asarray(clip)
        idx = select_frames(len(frames), self.cfg.nframes_used)
        used = None if series is None else {k: np.asarray(series[k])[idx] for k in ("sharpness", "noise")}
        return technical_stats(frames[idx], self.cfg.stats_max_side, used)

    def __call__(self, clip: Clip | np.ndarray,
                 series: dict[str, np.ndarray] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        tokens = self.backbone.embed(self.views(clip))  # (T, D)
        return tokens, self.stats_only(clip, series)
