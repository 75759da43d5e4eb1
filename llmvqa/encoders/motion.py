"""Motion encoder: dense optical flow between consecutive sampled frames.

Works on ``views.gray_lowres`` frames (grayscale, fixed height) so the cost does not
grow with the resolution. For every consecutive pair of sampled frames it computes
Farneback optical flow and one fixed-length token (``PAIR_FEATURES``), and over the
whole clip the motion statistics of ``llmvqa.statistics`` (dynamic_degree, jitter,
flicker, warping_error, frozen_ratio, nonrigid_motion, ghosting).

Flow convention (OpenCV): ``prev(y, x) ~ next(y + flow[y, x, 1], x + flow[y, x, 0])``,
so warping ``next`` by the flow reconstructs ``prev``; pixels whose flow points outside
the frame are left out of every warped comparison.

An optional Hugging Face video backbone (e.g. VideoMAE, by hub id or local path) adds
its mean-pooled clip embedding to every pair token.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from llmvqa.errors import ConfigError, ModelError, VideoError
from llmvqa.statistics import stats_of_stream
from llmvqa.video import views
from llmvqa.video.types import Clip

MOTION_STATS: tuple[str, ...] = stats_of_stream("motion")

_MAG_EDGES = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, np.inf)
"""Flow-magnitude histogram bin edges, in low-res pixels (the view is ``height`` rows high)."""
_GRID = 3
"""Mean flow magnitude is also reported per cell of a _GRID x _GRID layout."""

PAIR_FEATURES: tuple[str, ...] = (
    *(f"mag_hist_{i}" for i in range(len(_MAG_EDGES) - 1)),
    *(f"dir_hist_{i}" for i in range(8)),
    *(f"mag_cell_{i}" for i in range(_GRID * _GRID)),
    "mean_dx", "mean_dy", "median_dx", "median_dy", "std_dx", "std_dy",
    "mean_mag", "p90_mag", "max_mag",
    "affine_scale", "affine_rotation", "affine_shear_x", "affine_shear_y", "affine_residual",
    "warp_error", "warp_error_p90", "warp_error_compensated", "warp_valid",
    "luma_change", "frame_diff", "frame_diff_std", "frozen", "dt",
)  # fmt: skip
"""Names of the columns of one pair token (flow in fractions of the frame diagonal unless noted)."""
PAIR_DIM = len(PAIR_FEATURES)


@dataclass
class MotionConfig:
    """Settings of the motion encoder (all part of the feature-cache key)."""

    height: int = 144
    """Rows of the grayscale low-resolution view the flow is computed on (width keeps the aspect)."""
    pyr_scale: float = 0.5
    """Farneback: image scale between pyramid levels (< 1)."""
    levels: int = 3
    """Farneback: number of pyramid levels (more levels catch larger motion)."""
    winsize: int = 15
    """Farneback: averaging window size in pixels (larger = smoother, more robust flow)."""
    iterations: int = 3
    """Farneback: iterations per pyramid level."""
    poly_n: int = 5
    """Farneback: pixel neighbourhood of the polynomial expansion (5 or 7)."""
    poly_sigma: float = 1.2
    """Farneback: Gaussian sigma of the polynomial expansion (1.1 for poly_n=5, 1.5 for 7)."""
    frozen_threshold: float = 0.5
    """A pair counts as frozen when its mean absolute gray difference (8-bit units) is below this."""
    cut_threshold: float = 20.0
    """A pair whose warping error after removing its global luma change exceeds this (8-bit units)
    counts as a cut or content jump: it still counts in warping_error but is left out of flicker."""
    smoothing_window: int = 5
    """Frames of the Savitzky-Golay window that smooths the camera path before jitter is measured."""
    backbone: str | None = None
    """Optional Hugging Face video model (hub id or local path, e.g. VideoMAE) whose pooled clip
    embedding is appended to every pair token; None = optical-flow features only."""

    def __post_init__(self) -> None:
        if not isinstance(self.height, int) or self.height < 16:
            raise ConfigError("MotionConfig", f"height must be an integer >= 16, got {self.height!r}")
        if not 0 < self.pyr_scale < 1:
            raise ConfigError("MotionConfig", f"pyr_scale must be in (0, 1), got {self.pyr_scale!r}")
        for name in ("levels", "winsize", "iterations"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError("MotionConfig", f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.poly_n not in (5, 7):
            raise ConfigError("MotionConfig", f"poly_n must be 5 or 7, got {self.poly_n!r}")
        if self.cut_threshold <= 0:
            raise ConfigError("MotionConfig", f"cut_threshold must be > 0, got {self.cut_threshold!r}")
        if self.frozen_threshold < 0:
            raise ConfigError("MotionConfig", f"frozen_threshold must be >= 0, got {self.frozen_threshold!r}")
        if not isinstance(self.smoothing_window, int) or self.smoothing_window < 3 or self.smoothing_window % 2 == 0:
            raise ConfigError(
                "MotionConfig", f"smoothing_window must be an odd integer >= 3, got {self.smoothing_window!r}"
            )


class MotionEncoder:
    """``MotionEncoder(cfg)(clip) -> (tokens float32 (T-1, D), stats)``; D = PAIR_DIM (+ backbone width)."""

    def __init__(self, cfg: MotionConfig | None = None, device: str | torch.device = "cpu"):
        self.cfg = cfg or MotionConfig()
        self.backbone = _VideoBackbone(self.cfg.backbone, device) if self.cfg.backbone else None

    @property
    def dim(self) -> int:
        return PAIR_DIM + (self.backbone.dim if self.backbone else 0)

    def __call__(self, clip: Clip) -> tuple[torch.Tensor, dict[str, float]]:
        if len(clip.frames) < 2:
            raise VideoError(clip.info.path, f"has {len(clip.frames)} sampled frame(s); motion needs two",
                             "sample at least 2 frames (nframes >= 2)")  # fmt: skip
        gray = views.gray_lowres(clip.frames, self.cfg.height)  # (T, h, w) uint8
        dts = _pair_seconds(clip)  # (T-1,)
        pairs = [self._pair(gray[t], gray[t + 1], float(dts[t])) for t in range(len(gray) - 1)]
        rows = np.stack([p.row for p in pairs]).astype(np.float32)  # (T-1, PAIR_DIM)
        stats = _clip_stats(pairs, dts, self.cfg.smoothing_window, _difference_echo(gray))
        tokens = torch.from_numpy(rows)
        if self.backbone is not None:
            clip_vec = self.backbone.embed(clip.frames)  # (Db,)
            tokens = torch.cat([tokens, clip_vec[None].expand(len(tokens), -1)], dim=1)  # (T-1, PAIR_DIM + Db)
        return tokens.contiguous(), stats

    def _pair(self, prev: np.ndarray, nxt: np.ndarray, dt: float) -> _Pair:
        c = self.cfg
        flow = cv2.calcOpticalFlowFarneback(
            prev, nxt, None, c.pyr_scale, c.levels, c.winsize, c.iterations, c.poly_n, c.poly_sigma, 0
        )  # (h, w, 2) float32, pixels
        return _measure_pair(prev, nxt, flow, dt, c.frozen_threshold, c.cut_threshold)


@dataclass
class _Pair:
    row: np.ndarray
    """(PAIR_DIM,) token."""
    global_motion: np.ndarray
    """(2,) median flow (dx, dy) as a fraction of the diagonal."""
    mean_mag: float
    """Mean flow magnitude as a fraction of the diagonal."""
    warp_error: float
    luma_change: float
    frame_diff: float
    frozen: bool
    cut: bool
    """The flow does not explain the next frame (scene cut, content jump): left out of flicker."""
    nonrigid: float
    """Median distance of the flow from its robust global affine fit, fraction of the diagonal."""


def _pair_seconds(clip: Clip) -> np.ndarray:
    """Seconds between consecutive sampled frames (falls back to 1/fps when timestamps are unusable)."""
    dts = np.diff(np.asarray(clip.timestamps, dtype=np.float64))  # (T-1,)
    fallback = 1.0 / clip.info.fps if clip.info.fps and clip.info.fps > 0 else 1.0
    return np.where(np.isfinite(dts) & (dts > 0), dts, fallback)


def _measure_pair(
    prev: np.ndarray, nxt: np.ndarray, flow: np.ndarray, dt: float, frozen_threshold: float, cut_threshold: float
) -> _Pair:
    h, w = prev.shape
    diag = float(np.hypot(h, w))
    fx, fy = flow[..., 0], flow[..., 1]
    mag = np.hypot(fx, fy)  # (h, w)

    # warp next onto prev; keep pixels whose flow stays inside the frame
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))  # (h, w) each
    mx, my = gx + fx, gy + fy
    valid = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
    prev_f, next_f = prev.astype(np.float32), nxt.astype(np.float32)
    warped = cv2.remap(next_f, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)  # (h, w) ~ prev
    resid = warped - prev_f
    if valid.mean() < 0.05:  # almost everything left the frame: compare what is there
        valid = np.ones_like(valid)
    r = resid[valid]
    lo, hi = np.percentile(r, (25, 75))
    mid = r[(r >= lo) & (r <= hi)]
    luma_change = float(mid.mean()) if mid.size else float(np.median(r))  # interquartile mean: robust to occlusions
    abs_err = np.abs(r)
    warp_error = float(abs_err.mean())
    compensated = float(np.abs(r - luma_change).mean())  # structure mismatch, blind to a global gain
    diff = np.abs(next_f - prev_f)
    frame_diff = float(diff.mean())
    frozen = frame_diff < frozen_threshold

    mag_d = mag / diag
    hist = np.histogram(mag, bins=np.asarray(_MAG_EDGES))[0] / mag.size
    ang = np.arctan2(fy, fx)  # (h, w) radians
    dir_bins = ((ang + np.pi) / (2 * np.pi) * 8).astype(np.int64) % 8
    dir_hist = np.bincount(dir_bins.ravel(), weights=mag.ravel(), minlength=8)
    dir_hist = dir_hist / max(float(mag.sum()), 1e-6)
    ys = np.linspace(0, h, _GRID + 1).astype(np.int64)
    xs = np.linspace(0, w, _GRID + 1).astype(np.int64)
    cells = [mag_d[ys[i] : ys[i + 1], xs[j] : xs[j + 1]].mean() for i in range(_GRID) for j in range(_GRID)]
    med = np.array([np.median(fx), np.median(fy)]) / diag
    affine = _affine_motion(gx, gy, fx, fy, diag)
    row = np.concatenate([
        hist, dir_hist, cells,
        [fx.mean() / diag, fy.mean() / diag, med[0], med[1], fx.std() / diag, fy.std() / diag],
        [mag_d.mean(), np.percentile(mag_d, 90), mag_d.max()],
        affine,
        [warp_error / 255, np.percentile(abs_err, 90) / 255, compensated / 255, valid.mean()],
        [luma_change / 255, frame_diff / 255, diff.std() / 255, float(frozen), dt],
    ])  # fmt: skip
    assert row.shape == (PAIR_DIM,), row.shape
    cut = compensated > cut_threshold
    nonrigid = _nonrigid_residual(gx, gy, fx, fy, diag)
    return _Pair(row, med, float(mag_d.mean()), warp_error, luma_change, frame_diff, frozen, cut, nonrigid)


def _affine_motion(gx: np.ndarray, gy: np.ndarray, fx: np.ndarray, fy: np.ndarray, diag: float) -> np.ndarray:
    """Least-squares affine model of the flow on a sub-grid: [scale, rotation, shear_x, shear_y, residual].

    Coordinates are centered and in diagonal units, so the 2x2 part is unitless per pair.
    """
    step = 4
    x = (gx[::step, ::step].ravel() - gx.mean()) / diag
    y = (gy[::step, ::step].ravel() - gy.mean()) / diag
    u = fx[::step, ::step].ravel() / diag
    v = fy[::step, ::step].ravel() / diag
    a = np.stack([np.ones_like(x), x, y], axis=1)  # (N, 3)
    coef, *_ = np.linalg.lstsq(a, np.stack([u, v], axis=1), rcond=None)  # (3, 2)
    m = coef[1:].T  # (2, 2): [[du/dx, du/dy], [dv/dx, dv/dy]]
    resid = np.stack([u, v], axis=1) - a @ coef
    scale = 0.5 * (m[0, 0] + m[1, 1])
    rotation = 0.5 * (m[1, 0] - m[0, 1])
    return np.array([scale, rotation, 0.5 * (m[0, 0] - m[1, 1]), 0.5 * (m[0, 1] + m[1, 0]),
                     float(np.sqrt((resid**2).sum(axis=1).mean()))])  # fmt: skip


def _nonrigid_residual(
    gx: np.ndarray, gy: np.ndarray, fx: np.ndarray, fy: np.ndarray, diag: float, iterations: int = 3
) -> float:
    """Median per-pixel distance (fraction of the diagonal) of the flow from a robust global affine fit.

    The fit is iteratively reweighted least squares towards an L1 fit, so a moving object (a
    minority of pixels) neither bends the camera model nor moves the median; a smooth warp of
    the whole frame (morphing) leaves a residual at most pixels and raises it.
    """
    step = 4
    x = (gx[::step, ::step].ravel() - gx.mean()) / diag
    y = (gy[::step, ::step].ravel() - gy.mean()) / diag
    uv = np.stack([fx[::step, ::step].ravel(), fy[::step, ::step].ravel()], axis=1) / diag  # (N, 2)
    a = np.stack([np.ones_like(x), x, y], axis=1)  # (N, 3)
    sw = np.ones(len(x))  # sqrt of the IRLS weights
    for _ in range(iterations):
        coef, *_ = np.linalg.lstsq(a * sw[:, None], uv * sw[:, None], rcond=None)  # (3, 2)
        dist = np.linalg.norm(uv - a @ coef, axis=1)  # (N,)
        sw = 1.0 / np.sqrt(np.maximum(dist, np.median(dist) + 1e-9))  # weight 1/|r| (floored): an L1 fit
    return float(np.median(dist))


def _difference_echo(gray: np.ndarray, min_std: float = 0.5) -> float:
    """ghosting: median correlation of consecutive frame differences of gray (T, h, w) uint8 frames.

    Blending each frame with the previous output makes every frame difference a mix of the new
    change and the previous difference (an AR(1) echo), so consecutive differences correlate.
    Pairs whose difference is flat (std < ``min_std``, frozen frames) are skipped; 0 when fewer
    than two differences remain.
    """
    d = np.diff(gray.astype(np.float32), axis=0).reshape(len(gray) - 1, -1)  # (T-1, h*w)
    corr = [
        float(np.corrcoef(d[t - 1], d[t])[0, 1])
        for t in range(1, len(d))
        if d[t - 1].std() >= min_std and d[t].std() >= min_std
    ]
    return float(np.median(corr)) if corr else 0.0


def _detrended_std(values: np.ndarray, t: np.ndarray) -> float:
    """Standard deviation of ``values`` (taken at positions ``t``) around their least-squares line.

    0 for fewer than 3 values (a line fits two exactly).
    """
    n = len(values)
    if n < 3:
        return 0.0
    t = np.asarray(t, dtype=np.float64)
    slope, intercept = np.polyfit(t, values, 1)
    return float(np.std(values - (slope * t + intercept)))


def _path_jitter(steps: np.ndarray, window: int) -> float:
    """RMS distance between the camera path and its smoothed version.

    steps: (P, 2) global motion per pair (fractions of the diagonal). The path is their
    cumulative sum (P+1 points starting at 0); Savitzky-Golay (order 2, polynomial fit at
    the ends) keeps steady pans, zooms-in-speed and gentle accelerations, so what remains
    is shake and stutter.
    """
    path = np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)])  # (P+1, 2)
    n = len(path)
    win = min(window, n if n % 2 else n - 1)
    if win <= 2:
        return 0.0
    from scipy.signal import savgol_filter  # here: scipy.signal takes 0.5 s to import, and a model load needs none

    smooth = savgol_filter(path, win, polyorder=min(2, win - 1), axis=0, mode="interp")  # (P+1, 2)
    return float(np.sqrt(((path - smooth) ** 2).sum(axis=1).mean()))


def _clip_stats(pairs: list[_Pair], dts: np.ndarray, window: int, ghosting: float) -> dict[str, float]:
    steps = np.stack([p.global_motion for p in pairs])  # (P, 2)
    keep = np.array([not p.cut for p in pairs])
    kept = [p for p in pairs if not p.cut]
    stats = {
        "dynamic_degree": float(np.mean([p.mean_mag / dt for p, dt in zip(pairs, dts, strict=True)])),
        "jitter": _path_jitter(steps, window),
        "flicker": _detrended_std(np.array([p.luma_change for p in kept]), np.flatnonzero(keep)),
        "warping_error": float(np.mean([p.warp_error for p in pairs])),
        "frozen_ratio": float(np.mean([p.frozen for p in pairs])),
        "nonrigid_motion": float(np.median([p.nonrigid for p in pairs])),
        "ghosting": ghosting,
    }
    assert tuple(stats) == MOTION_STATS, (tuple(stats), MOTION_STATS)
    return stats


class _VideoBackbone:
    """A Hugging Face video model (VideoMAE-like: ``pixel_values`` (B, T, C, H, W)) giving one pooled vector."""

    def __init__(self, name_or_path: str, device: str | torch.device = "cpu"):
        from transformers import AutoConfig, AutoModel

        try:
            config = AutoConfig.from_pretrained(name_or_path)
            self.model = AutoModel.from_pretrained(name_or_path).eval().to(device)
        except (OSError, ValueError) as err:
            raise ModelError(
                f"motion backbone {name_or_path!r}",
                f"cannot be loaded ({type(err).__name__}: {str(err).splitlines()[0]})",
                "give a local folder with config.json + weights, or a hub id that is in the local cache; "
                "or set MotionConfig.backbone=None",
            ) from err
        self.num_frames = int(getattr(config, "num_frames", 16))
        self.image_size = int(getattr(config, "image_size", 224))
        self.dim = int(config.hidden_size)
        self.device = torch.device(device)
        self.mean, self.std = _processor_norm(name_or_path)

    @torch.inference_mode()
    def embed(self, frames: np.ndarray) -> torch.Tensor:
        idx = np.linspace(0, len(frames) - 1, self.num_frames).round().astype(np.int64)
        x = views.resized(frames[idx], self.image_size)  # (F, S, S, 3) uint8
        x = torch.from_numpy(x).float().div_(255).permute(0, 3, 1, 2)  # (F, 3, S, S)
        x = (x - self.mean[:, None, None]) / self.std[:, None, None]
        dtype = next(self.model.parameters()).dtype
        out = self.model(pixel_values=x[None].to(self.device, dtype)).last_hidden_state  # (1, N, Db)
        return out.mean(dim=1)[0].float().cpu()  # (Db,)


def _processor_norm(name_or_path: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel mean/std from the model's image processor when it has one, else ImageNet's."""
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    try:
        from transformers import AutoImageProcessor

        proc = AutoImageProcessor.from_pretrained(name_or_path)
        mean, std = tuple(proc.image_mean), tuple(proc.image_std)
    except (OSError, ValueError, AttributeError, TypeError):
        pass
    return torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)
