"""Named, interpretable statistics the encoders produce — one registry.

Each statistic has a documented meaning and direction. SIG's default experts
calibrate them to 0–1 quality scores, the model sees them as a "stats token",
and explanations quote them. Encoders must emit exactly these names (a test
checks it); add a statistic here first, then in its encoder.
"""

from __future__ import annotations

from dataclasses import dataclass

STREAMS: tuple[str, ...] = ("technical", "motion", "semantic")


@dataclass(frozen=True)
class Statistic:
    name: str
    stream: str
    meaning: str
    higher_is_better: bool | None
    """True/False: direction of quality; None: neither end is good per se (e.g. amount of motion)."""
    typical: tuple[float, float]
    """Values that map to 0 and 1 when the model reads the statistic (normalize(); not a calibration)."""


_S = Statistic
STATISTICS: tuple[Statistic, ...] = (
    # technical — computed on the sampled frames (luma unless noted)
    _S("sharpness", "technical", "log variance of the Laplacian on the native-resolution luma (higher = crisper edges)", True, (2, 9)),
    _S("noise", "technical", "estimated noise sigma in 8-bit units: robust (MAD) spread of a fine high-pass band of the native-resolution luma (Immerkaer mask); higher = noisier", False, (0, 20)),
    _S("blockiness", "technical", "ratio of luma jumps on the 8-px block grid to jumps off it (1 = none; higher = compression blocks)", False, (1, 2)),
    _S("underexposure", "technical", "fraction of pixels with luma below 16 (crushed shadows)", False, (0, 0.5)),
    _S("overexposure", "technical", "fraction of pixels with luma above 239 (blown highlights)", False, (0, 0.5)),
    _S("brightness", "technical", "mean luma in [0, 1]; both ends are bad", None, (0, 1)),
    _S("contrast", "technical", "RMS contrast: per-frame standard deviation of luma in [0, 1], averaged over frames", True, (0, 0.35)),
    _S("colorfulness", "technical", "Hasler–Süsstrunk colorfulness (0 = gray; ~100 = very colorful)", True, (0, 100)),
    _S("color_cast", "technical", "gray-edge colour cast: chroma (opponent r−g, y−b) of the mean per-channel |gradient| relative to its mean over channels (unitless; 0 = neutral edges, ~0.1 typical, > 0.3 a strong tint); blind to global brightness", False, (0, 0.4)),
    _S("saturation", "technical", "mean HSV saturation (max − min) / max of the RGB pixels, in [0, 1] (0 = gray; washed-out colour is low)", True, (0, 0.5)),
    # motion — on low-resolution grayscale frames, between consecutive sampled frames
    _S("dynamic_degree", "motion", "mean optical-flow magnitude between consecutive sampled frames as a fraction of the frame diagonal, per second (how much moves)", None, (0, 0.2)),
    _S("jitter", "motion", "RMS distance of the global (camera) motion path from its smoothed version, fraction of diagonal (shake/stutter)", False, (0, 0.01)),
    _S("flicker", "motion", "std of the frame-to-frame luma change (measured on motion-compensated pixels) after removing the linear trend, 8-bit units; scene cuts left out", False, (0, 5)),
    _S("warping_error", "motion", "mean absolute error after warping the previous frame by the flow, 8-bit units (temporal inconsistency)", False, (0, 20)),
    _S("frozen_ratio", "motion", "fraction of consecutive sampled-frame pairs that are near-identical (frozen/duplicated frames; threshold MotionConfig.frozen_threshold)", False, (0, 1)),
    _S("nonrigid_motion", "motion", "median over pairs of the median per-pixel distance of the flow from its robust (L1) global affine fit, fraction of the diagonal per pair (smooth non-rigid warping, morphing shapes)", False, (0, 0.01)),
    _S("ghosting", "motion", "median correlation between consecutive frame differences (F_t − F_t−1 vs F_t+1 − F_t) of the gray view, −1…1 (frame blending makes each change echo the previous one)", False, (0, 1)),
    # semantic — per-frame embeddings
    _S("semantic_consistency", "semantic", "mean cosine similarity between consecutive frame embeddings (1 = same content throughout)", True, (0.5, 1)),
    _S("semantic_mutation", "semantic", "largest drop of the cosine similarity of consecutive frame embeddings below its median over the clip (median − min; 0 with < 3 frames): a sudden change of identity, not gradual drift", False, (0, 0.5)),
    _S("prompt_alignment", "semantic", "similarity of the text prompt to the video content (present only when a prompt is given)", True, (0, 0.7)),
)

PROBE_STATISTICS: tuple[Statistic, ...] = (
    # technical, beside the colour statistics above; read by the dimension probe only (see the note below)
    _S("highlight_cast", "technical", "white-patch colour cast: opponent chroma (r−g, (r+g)/2−b) of the mean RGB of the brightest 5% of pixels, relative to their mean (0 = neutral highlights; a tint colours them, ~0.1 typical)", False, (0, 0.4)),
    _S("channel_balance", "technical", "99.5th percentile of the weakest RGB channel over that of the strongest (1 = every channel reaches the same peak; a channel gain lowers it)", True, (0.5, 1)),
)
"""Statistics the encoders also measure that only the dimension probe reads (``DimensionProbe.extra``): not in the
stats token, whose size (``STATISTICS``) the trained projectors and the human prior are built on. Found in session
13: a cast is invisible in the gray-edge ``color_cast`` of many tinted clips but colours their highlights. The colour
probe's balanced accuracy over always-the-majority-level, cross-fitted on the synth train split (5 source-grouped
folds): +0.075 over every other input, +0.098 with these two added, +0.138 over the technical statistics and these
two. On fetv_dev both run against the assumed direction (people rate tinted, graded AI clips higher), so the human
prior does not read them (model card, *The statistics against people*)."""

PROBE_READERS: dict[str, tuple[str, ...]] = {"highlight_cast": ("color",), "channel_balance": ("color",)}
"""The dimensions whose probe reads each of ``PROBE_STATISTICS``; the other dimensions' fits do not see it."""

STAT_BY_NAME: dict[str, Statistic] = {s.name: s for s in STATISTICS + PROBE_STATISTICS}
PROMPT_STATS: tuple[str, ...] = ("prompt_alignment",)
"""Statistics that exist only when a text prompt is given (not stored in the feature cache)."""


def normalize(name: str, value: float) -> float:
    """Scale a statistic to about [0, 1] by its typical range (clipped to [-1, 2]) for model input."""
    lo, hi = STAT_BY_NAME[name].typical
    return float(min(2.0, max(-1.0, (float(value) - lo) / (hi - lo))))


def stats_of_stream(stream: str, probe: bool = False) -> tuple[str, ...]:
    """The names of a stream's ``STATISTICS`` (its stats token's), with ``probe`` then its ``PROBE_STATISTICS``."""
    if stream not in STREAMS:
        raise ValueError(f"unknown stream {stream!r}; streams are {STREAMS}")
    return tuple(s.name for s in STATISTICS + (PROBE_STATISTICS if probe else ()) if s.stream == stream)
