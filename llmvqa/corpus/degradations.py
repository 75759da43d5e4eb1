"""Degradations typical of AI-generated video, each graded by a strength in [0, 1].

Frame degradations are pure functions ``fn(frames, strength, rng) -> frames`` on uint8
(T, H, W, 3) RGB; strength 0 returns the frames unchanged. Three act elsewhere:
``compression`` at write time (a real low-bitrate H.264 encode, :func:`bitrate_for`),
``static`` at render time (the source rendered with ``speed = 1 - strength``, see
``llmvqa.corpus.sources.render``) and ``wrong_prompt`` on the text prompt. ``mutation`` also
takes the frames of another source.

Targets. Each degradation hurts some quality dimensions (``DEGRADATIONS[name].dimensions``,
weights w ∈ (0, 1]) and the overall quality (``overall`` weight w_o). For the degradations
(d, s_d) applied to a clip:

    score[dim]  = Π_d (1 − s_d · w_{d,dim})            (1 = unharmed)
    overall     = Π_d (1 − s_d · w_o,d)

so a pristine clip scores 1 everywhere, one degradation at strength s lowers the overall
to 1 − w_o·s, and two compound multiplicatively.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from llmvqa.prompts import load_yaml

DIMENSIONS: dict[str, tuple[str, ...]] = {g: tuple(dims) for g, dims in load_yaml("dimensions")["groups"].items()}
"""Quality dimensions by group, from prompts/v1/dimensions.yaml (the one list; see docs/architecture.md)."""

ALL_DIMENSIONS: tuple[str, ...] = tuple(d for group in DIMENSIONS.values() for d in group)

Frames = np.ndarray


def _float(frames: Frames) -> np.ndarray:
    return frames.astype(np.float32)


def _u8(x: np.ndarray) -> Frames:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _px(frames: Frames, at_256: float) -> float:
    """A pixel length given for 256-px clips, scaled to these frames."""
    return at_256 * min(frames.shape[1:3]) / 256.0


def blur(frames: Frames, strength: float, rng: np.random.Generator) -> Frames:
    """Gaussian blur, sigma 0.5 px + 2.5·strength px (the second term at 256 px, scaled with the size)."""
    if strength <= 0:
        return frames
    sigma = 0.5 + _px(frames, 2.5 * strength)
    k = 2 * int(np.ceil(3.0 * sigma)) + 1  # explicit kernel: OpenCV's default is a no-op below sigma ≈ 0.35
    return np.stack([cv2.GaussianBlur(f, (k, k), sigma) for f in frames])


def noise(frames: Frames, strength: float, rng: np.random.Generator) -> Frames:
    """Fresh Gaussian noise in every frame, sd up to 40 grey levels (mostly luma, some chroma)."""
    if strength <= 0:
        return frames
    sd = 40.0 * strength
    t, h, w, _ = frames.shape
    luma = rng.normal(0.0, sd, size=(t, h, w, 1))
    chroma = rng.normal(0.0, 0.35 * sd, size=(t, h, w, 3))
    return _u8(_float(frames) + luma + chroma)


def exposure(frames: Frames, strength: float, rng: np.random.Generator) -> Frames:
    """Under- or over-exposure (direction drawn from rng): gamma and gain, with clipping."""
    if strength <= 0:
        return frames
    x = _float(frames) / 255.0
    if rng.random() < 0.5:  # under: darker, crushed shadows
        y = (x ** (1.0 + 1.5 * strength)) * (1.0 - 0.45 * strength)
    else:  # over: brighter, clipped highlights
        y = 1.0 - (1.0 - x) ** (1.0 + 1.5 * strength)
        y = y * (1.0 + 0.6 * strength)
    return _u8(y * 255.0)


def contrast(frames: Frames, strength: float, rng: np.random.Generator) -> Frames:
    """Contrast loss: pixel values pulled towards the clip mean (a flat, hazy look), up to 80 %."""
    if strength <= 0:
        return frames
    x = _float(frames)
    mean = x.mean()
    return _u8(mean + (x - mean) * (1.0 - 0.8 * strength))


def color_shift(frames: Frames, strength: float, rng: np.random.Generator) -> Frames:
    """A colour cast: per-channel gains along a random tint, up to ±40 %."""
    if strength <= 0:
        return frames
    tint = rng.normal(size=3)
    tint -= tint.mean()
    tint /= np.abs(tint).max() + 1e-9
    gains = 1.0 + 0.4 * strength * tint  # (3,)
    return _u8(_float(frames) * gains)


def desaturate(frames: Frames, strength: float, rng: np.random.Generator) -> Frames:
    """Washed-out colour: saturation reduced by up to 90 %."""
    if strength <= 0:
        return frames
    x = _float(frames)
    gray = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # (T, H, W)
    return _u8(gray[..., None] + (x - gray[..., None]) * (1.0 - 0.9 * strength))


def flicker(frames: Frames, strength: float, rng: np.random.Generator) -> Frames:
    """Per-frame brightness gain: an oscillation plus random jumps, amplitude up to ±30 %."""
    if strength <= 0:
        return frames
    t = frames.shape[0]
    period = rng.uniform(2.0, 5.0)
    phase = rng.uniform(0.0, 2 * np.pi)
    wave = np.sin(2 * np.pi * np.arange(t) / period + phase)
    gains = 1.0 + 0.3 * strength * (0.6 * wave + 0.4 * rng.uniform(-1.0, 1.0, size=t))  # (T,)
    return _u8(_float(frames) * gains[:, None, None, None])


def jitter(frames: Frames, strength: float, rng: np.random.Generator) -> Frames:
    """Camera shake: random sub-pixel translations per frame (sd up to 5 px at 256 px), slight zoom hides borders."""
    if strength <= 0:
        return frames
    t, h, w, _ = frames.shape
    sd = _px(frames, 5.0) * strength
    shifts = np.clip(rng.normal(0.0, sd, size=(t, 2)), -3 * sd, 3 * sd)  # (T, 2)
    zoom = 1.0 + 2.0 * 3 * sd / min(h, w)
    out = []
    for f, (dx, dy) in zip(frames, shifts, strict=True):
        m = cv2.getRotationMatrix2D((w / 2, h / 2), 0.0, zoom)
        m[:, 2] += (dx, dy)
        out.append(cv2.warpAffine(f, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101))
    return np.stack(out)


def frozen(frames: Frames, strength: float, rng: np.random.Generator) -> Frames:
    """Frozen and dropped frames: each frame is held (previous frame repeated) with probability 0.6·strength.

    After a hold the clip jumps back to real time, so the content skips ahead (dropped frames).
    """
    if strength <= 0 or frames.shape[0] < 2:
        return frames
    t = frames.shape[0]
    hold = rng.random(t) < 0.6 * strength
    hold[0] = False
    if not hold[1:].any():
        hold[int(rng.integers(1, t))] = True
    idx = np.arange(t)
    for i in range(1, t):
        if hold[i]:
            idx[i] = idx[i - 1]
    return frames[idx].copy()


def ghosting(frames: Frames, strength: float, rng: np.random.Generator) -> Frames:
    """Frame blending: each frame mixed with the previous output (weight up to 0.75), a trailing ghost."""
    if strength <= 0:
        return frames
    a = 0.75 * strength
    x = _float(frames)
    out = np.empty_like(x)
    out[0] = x[0]
    for i in range(1, len(x)):
        out[i] = (1.0 - a) * x[i] + a * out[i - 1]
    return _u8(out)


def _smooth_field(h: int, w: int, rng: np.random.Generator, grid: int = 4) -> np.ndarray:
    """A smooth random displacement field (h, w, 2), values about in [-1, 1]."""
    coarse = rng.uniform(-1.0, 1.0, size=(grid, grid, 2)).astype(np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)


def morphing(frames: Frames, strength: float, rng: np.random.Generator) -> Frames:
    """Shapes that melt: a smooth local warp that drifts and grows over time (up to 20 px at 256 px)."""
    if strength <= 0:
        return frames
    t, h, w, _ = frames.shape
    f0, f1 = _smooth_field(h, w, rng), _smooth_field(h, w, rng)
    amp = _px(frames, 20.0) * strength
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    out = []
    for i, f in enumerate(frames):
        a = i / max(t - 1, 1)
        d = amp * a * ((1.0 - a) * f0 + a * f1)  # (h, w, 2), zero at the first frame
        out.append(cv2.remap(f, xs + d[..., 0], ys + d[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101))
    return np.stack(out)


def mutation(frames: Frames, strength: float, rng: np.random.Generator, other: Frames | None = None) -> Frames:
    """Semantic mutation: the content turns into another source's content near the end of the clip.

    The switch covers the last ``strength · T / 2`` frames (at least one), entered by a
    crossfade of up to 3 frames. ``other`` must have the same shape as ``frames``.
    """
    if strength <= 0:
        return frames
    if other is None or other.shape != frames.shape:
        raise ValueError(f"mutation needs other frames of shape {frames.shape}, got {None if other is None else other.shape}")
    t = frames.shape[0]
    n_switched = max(1, int(round(strength * t / 2)))
    k = t - n_switched  # first fully switched frame
    fade = min(3, k)
    w = np.zeros(t, dtype=np.float32)
    w[k:] = 1.0
    for j in range(fade):  # frames k-fade .. k-1 ramp up
        w[k - fade + j] = (j + 1) / (fade + 1)
    w4 = w[:, None, None, None]
    return _u8((1.0 - w4) * _float(frames) + w4 * _float(other))


def bitrate_for(strength: float, size: tuple[int, int], fps: float) -> int | None:
    """H.264 bitrate (bit/s) for a compression strength: 0.4 → 0.012 bits per pixel, log-spaced; None at 0.

    At least 4 kbit/s: libx264 refuses rates that round to 0 kbit/s (tiny test clips).
    """
    if strength <= 0:
        return None
    bpp = 0.4 * (0.012 / 0.4) ** strength
    return max(4000, int(round(bpp * size[0] * size[1] * fps)))


@dataclass(frozen=True)
class Degradation:
    """A degradation, where it acts and what it hurts."""

    name: str
    stage: str
    """"frames" (fn on frames), "render" (static), "encode" (compression) or "prompt" (wrong_prompt)."""
    dimensions: dict[str, float]
    """Dimension → weight w: the dimension's target is multiplied by (1 − strength · w)."""
    overall: float
    """Overall weight w_o: the overall target is multiplied by (1 − strength · w_o)."""
    fn: Callable[..., Frames] | None = None
    """The frame function (stage "frames" only)."""
    strengths: tuple[float, ...] = field(default=())
    """Allowed strengths when discrete (wrong_prompt); empty = continuous."""

    def __post_init__(self) -> None:
        unknown = set(self.dimensions) - set(ALL_DIMENSIONS)
        if unknown:
            raise ValueError(f"degradation {self.name}: unknown dimensions {sorted(unknown)}")
        if self.stage not in ("frames", "render", "encode", "prompt"):
            raise ValueError(f"degradation {self.name}: unknown stage {self.stage!r}")
        if (self.stage == "frames") != (self.fn is not None):
            raise ValueError(f"degradation {self.name}: a frame function is needed exactly for stage 'frames'")
        if not all(0 < w <= 1 for w in [*self.dimensions.values(), self.overall]):
            raise ValueError(f"degradation {self.name}: weights must be in (0, 1]")


_REGISTRY = (
    Degradation("blur", "frames", {"sharpness": 1.0}, 0.95, blur),
    Degradation("noise", "frames", {"noise": 1.0, "sharpness": 0.2}, 0.9, noise),
    Degradation("compression", "encode", {"compression": 1.0, "sharpness": 0.4}, 0.95),
    Degradation("exposure", "frames", {"exposure": 1.0, "color": 0.2}, 0.85, exposure),
    Degradation("contrast", "frames", {"exposure": 0.8, "color": 0.3}, 0.75, contrast),
    Degradation("color_shift", "frames", {"color": 1.0}, 0.75, color_shift),
    Degradation("desaturate", "frames", {"color": 0.9}, 0.7, desaturate),
    Degradation("flicker", "frames", {"flicker": 1.0, "temporal_consistency": 0.3}, 0.9, flicker),
    Degradation("jitter", "frames", {"smoothness": 1.0, "temporal_consistency": 0.2}, 0.85, jitter),
    Degradation("frozen", "frames", {"smoothness": 0.8, "temporal_consistency": 0.8}, 0.85, frozen),
    Degradation("ghosting", "frames", {"temporal_consistency": 0.8, "sharpness": 0.5}, 0.85, ghosting),
    Degradation("morphing", "frames", {"temporal_consistency": 0.8, "semantic_consistency": 0.6}, 0.95, morphing),
    Degradation("mutation", "frames", {"semantic_consistency": 1.0, "temporal_consistency": 0.5}, 0.95, mutation),
    Degradation("static", "render", {"dynamic_degree": 1.0}, 0.7),
    Degradation("wrong_prompt", "prompt", {"prompt_alignment": 1.0}, 0.6, strengths=(0.5, 1.0)),
)

DEGRADATIONS: dict[str, Degradation] = {d.name: d for d in _REGISTRY}
"""All degradations by name, in the order they are applied to frames."""


def apply(frames: Frames, name: str, strength: float, rng: np.random.Generator, other: Frames | None = None) -> Frames:
    """Apply one frame-stage degradation (mutation needs ``other``)."""
    deg = DEGRADATIONS[name]
    if deg.fn is None:
        raise ValueError(f"{name} acts at stage {deg.stage!r}, not on frames")
    if name == "mutation":
        return deg.fn(frames, strength, rng, other=other)
    return deg.fn(frames, strength, rng)


def targets(degradations: list[tuple[str, float]]) -> dict[str, float]:
    """Per-dimension 0–1 targets plus "overall" (formulas in the module docstring)."""
    scores = dict.fromkeys(ALL_DIMENSIONS, 1.0)
    overall = 1.0
    for name, s in degradations:
        if not 0.0 <= s <= 1.0:
            raise ValueError(f"strength of {name} must be in [0, 1], got {s}")
        deg = DEGRADATIONS[name]
        for dim, w in deg.dimensions.items():
            scores[dim] *= 1.0 - s * w
        overall *= 1.0 - s * deg.overall
    scores["overall"] = overall
    return scores
