"""Time-located evidence: what is wrong in a clip, when, and how strongly.

The encoders keep per-frame and per-frame-pair measurements beside their clip statistics:
per-frame sharpness, noise and brightness (``VideoFeatures.series``), one optical-flow row per
pair of consecutive sampled frames (``tokens["motion"]``, columns ``PAIR_FEATURES``) and one
embedding per frame (``tokens["semantic"]``). ``find_evidence`` turns them into ``Evidence``
items — a dimension of ``prompts/v1/dimensions.yaml``, a kind, a time range in seconds, a
strength in 0–1 and one sentence a person understands ("the picture freezes from 2.0 s to
2.5 s"). Local defects are found against the clip's own typical value (a burst stands out of
the rest of the clip); defects that fill the clip come from the clip statistics with fixed
thresholds. Every sentence states only what was measured.

Explanations and chat cite these sentences and nothing else (``llmvqa.justify``), the model
reads them as text in its prompt (``evidence_text``), and SIG writes its training chain of
thought from them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from llmvqa.prompts import load_yaml

if TYPE_CHECKING:  # torch stays unimported until features exist
    from llmvqa.features import VideoFeatures

_PAIR_COLUMNS = ("median_dx", "median_dy", "luma_change", "frame_diff", "frozen", "dt", "warp_error_compensated")


@dataclass(frozen=True)
class Evidence:
    """One measured defect."""

    dimension: str
    """Dimension key (dimensions.yaml) the defect lowers."""
    kind: str
    """freeze | stutter | shake | flicker | blur | noise | content_change | static | soft | grain | dark |
    bright | blocky | gray | mismatch."""
    start: float
    """Seconds (0 for defects that fill the clip)."""
    end: float
    strength: float
    """0–1: how strong the defect is (orders "the worst part")."""
    text: str
    """One sentence, lower-case start, no final period: "the picture freezes from 2.0 s to 2.5 s"."""
    local: bool = True
    """False when the defect fills the whole clip (no time range to point at)."""
    meta_jumps: int = 0
    """Flicker: how many frame pairs jump in brightness (not reported)."""

    def to_dict(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items() if k != "meta_jumps"}

    @property
    def sentence(self) -> str:
        """The text as a sentence: capitalized, with a final period."""
        return self.text[:1].upper() + self.text[1:] + "."


def _t(x: float) -> str:
    return f"{x:.1f} s"


def _phrase(kind: str, version: str = "v1", **kw) -> str:
    return load_yaml("evidence", version)["sentences"][kind].format(**kw)


# ------------------------------------------------------------------ the measurements, per frame / pair
def frame_times(features: VideoFeatures) -> np.ndarray:
    """(T,) seconds of the sampled frames: stored timestamps, else the motion rows' pair durations."""
    stamps = features.meta.get("timestamps")
    if stamps:
        t = np.asarray(json.loads(stamps), dtype=np.float64)
        if len(t) >= 2:
            return t
    p = pair_series(features)
    if p:
        return np.concatenate([[0.0], np.cumsum(p["dt"])])
    duration = float(features.meta.get("duration", 0) or 0)
    n = max(2, len(features.tokens["motion"]) + 1)
    return np.linspace(0.0, duration if duration > 0 else n - 1.0, n)


def pair_series(features: VideoFeatures) -> dict[str, np.ndarray]:
    """(T-1,) per-pair columns of the motion rows (llmvqa.encoders.motion.PAIR_FEATURES)."""
    from llmvqa.encoders.motion import PAIR_FEATURES  # the column names (cv2 is already loaded with features)

    rows = np.asarray(features.tokens["motion"], dtype=np.float64)  # (T-1, D >= PAIR_DIM)
    if rows.shape[1] < len(PAIR_FEATURES):  # not the flow encoder's rows: no per-pair evidence
        return {}
    return {c: rows[:, PAIR_FEATURES.index(c)].astype(np.float64) for c in _PAIR_COLUMNS}


def _runs(flags: np.ndarray, gap: int = 1) -> list[tuple[int, int]]:
    """Inclusive index ranges of True runs, bridging gaps of up to ``gap`` False entries."""
    idx = np.flatnonzero(flags)
    if not len(idx):
        return []
    runs, start, prev = [], int(idx[0]), int(idx[0])
    for i in idx[1:]:
        if i - prev > gap + 1:
            runs.append((start, prev))
            start = int(i)
        prev = int(i)
    runs.append((start, prev))
    return runs


# ------------------------------------------------------------------ local defects (against the clip itself)
def _freezes(p: dict, times: np.ndarray) -> list[Evidence]:
    frozen = p["frozen"] > 0.5
    if frozen.all():
        return [Evidence("dynamic_degree", "static", 0.0, float(times[-1]), 1.0, _phrase("static"), False)]
    n = len(frozen)
    runs = _runs(frozen, gap=0)
    if len(runs) >= 3 and frozen.mean() >= 0.3:  # duplicated frames all through: stutter, not one freeze
        return [Evidence("smoothness", "stutter", 0.0, float(times[-1]), float(min(1.0, frozen.mean() * 1.5)),
                         _phrase("stutter"), False)]
    out = []
    for a, b in runs:
        start, end = float(times[a]), float(times[b + 1])
        out.append(Evidence("smoothness", "freeze", start, end, float(min(1.0, (b - a + 1) / max(2, n / 4))),
                            _phrase("freeze", start=_t(start), end=_t(end))))
    return out


def _shakes(p: dict, times: np.ndarray) -> list[Evidence]:
    g = np.stack([p["median_dx"], p["median_dy"]], axis=1)  # (P, 2) global motion per pair, fraction of diagonal
    if len(g) < 3:
        return []
    pad = np.concatenate([g[:1], g, g[-1:]])
    smooth = np.median(np.stack([pad[:-2], pad[1:-1], pad[2:]]), axis=0)  # (P, 2) running median of 3
    resid = np.linalg.norm(g - smooth, axis=1)  # (P,) jerk of the camera path
    typical = float(np.median(resid))
    flags = resid > max(0.008, 4 * typical)
    out = []
    for a, b in _runs(flags):
        if flags[a : b + 1].sum() < 2:  # shake goes back and forth: one jump is a pan that starts
            continue
        start, end = float(times[a]), float(times[b + 1])
        out.append(Evidence("smoothness", "shake", start, end, float(min(1.0, resid[a : b + 1].max() / 0.04)),
                            _phrase("shake", start=_t(start), end=_t(end))))
    return out


def _flickers(p: dict, times: np.ndarray) -> list[Evidence]:
    lc = p["luma_change"] * 255.0  # (P,) motion-compensated brightness change per pair, 8-bit units
    mag = np.abs(lc)  # a cut can change brightness once; flicker must go up and down (below)
    typical = float(np.median(mag))
    flags = mag > max(4.0, 3 * typical)
    out = []
    for a, b in _runs(flags):
        sel = np.flatnonzero(flags[a : b + 1]) + a
        signs = np.sign(lc[sel])
        if len(sel) < 2 or not (signs[1:] != signs[:-1]).any():  # one step or a steady fade is not flicker
            continue
        start, end = float(times[a]), float(times[b + 1])
        out.append(Evidence("flicker", "flicker", start, end, float(min(1.0, mag[sel].max() / 30.0)),
                            _phrase("flicker", start=_t(start), end=_t(end), n=len(sel)), meta_jumps=len(sel)))
    return out


def _frame_runs(flags: np.ndarray, times: np.ndarray, min_frames: int = 2) -> list[tuple[int, int, float, float]]:
    """Runs of flagged frames as (a, b, start, end); end reaches halfway to the next frame."""
    out = []
    for a, b in _runs(flags):
        if b - a + 1 < min_frames or flags.mean() > 0.8:
            continue
        end = float(times[b]) if b == len(times) - 1 else float((times[b] + times[b + 1]) / 2)
        start = float(times[a]) if a == 0 else float((times[a - 1] + times[a]) / 2)
        out.append((a, b, start, end))
    return out


def _blurs(s: np.ndarray, times: np.ndarray) -> list[Evidence]:
    ref = float(np.percentile(s, 75))
    flags = s < ref - 1.0  # Laplacian variance below ~1/2.7 of the clip's sharp frames
    return [Evidence("sharpness", "blur", start, end, float(min(1.0, (ref - s[a : b + 1].mean()) / 3.0)),
                     _phrase("blur", start=_t(start), end=_t(end)))
            for a, b, start, end in _frame_runs(flags, times)]


def _noise_bursts(n: np.ndarray, times: np.ndarray) -> list[Evidence]:
    ref = float(np.percentile(n, 25))
    flags = n > max(1.5 * ref, ref + 2.5)
    return [Evidence("noise", "noise", start, end, float(min(1.0, (n[a : b + 1].mean() - ref) / 15.0)),
                     _phrase("noise", start=_t(start), end=_t(end)))
            for a, b, start, end in _frame_runs(flags, times)]


def _content_changes(features: VideoFeatures, p: dict, times: np.ndarray) -> list[Evidence]:
    """A sudden change of content: consecutive semantic embeddings drop far below their usual
    similarity, where the flow cannot explain the next frame (a cut or a swap)."""
    from llmvqa.encoders.technical import select_frames

    emb = np.asarray(features.tokens["semantic"], dtype=np.float64)  # (Ts, D)
    if len(emb) < 3:
        return []
    unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-8)
    sim = (unit[1:] * unit[:-1]).sum(1)  # (Ts-1,)
    idx = select_frames(len(times), len(emb))  # the sampled frames the semantic stream saw
    if len(idx) != len(emb):
        return []
    cut = p["warp_error_compensated"] * 255.0  # (P,)
    typical_cut = float(np.median(cut))
    out = []
    for i in np.flatnonzero(sim < np.median(sim) - 0.15):
        a, b = int(idx[i]), int(idx[i + 1])  # frames on each side of the drop
        jumps = cut[a:b]
        k = int(np.argmax(jumps)) + a
        if jumps.max() < max(12.0, 2.5 * typical_cut):  # gradual drift or motion, not a jump
            continue
        at = float((times[k] + times[k + 1]) / 2)
        out.append(Evidence("semantic_consistency", "content_change", float(times[k]), float(times[k + 1]),
                            float(min(1.0, (np.median(sim) - sim[i]) / 0.4)), _phrase("content_change", at=_t(at))))
    return out


# ------------------------------------------------------------------ defects that fill the clip (statistics)
_WHOLE_CLIP = (
    # (kind, dimension, statistic, test, strength from the value)
    ("soft", "sharpness", "sharpness", lambda v: v < 3.5, lambda v: (3.5 - v) / 2),
    ("grain", "noise", "noise", lambda v: v > 8.0, lambda v: (v - 8) / 12),
    ("blocky", "compression", "blockiness", lambda v: v > 1.25, lambda v: (v - 1.25) / 0.5),
    ("dark", "exposure", "underexposure", lambda v: v > 0.25, lambda v: v),
    ("bright", "exposure", "overexposure", lambda v: v > 0.25, lambda v: v),
    ("gray", "color", "saturation", lambda v: v < 0.05, lambda v: (0.05 - v) / 0.05),
)


def _whole_clip(features: VideoFeatures, duration: float, local: list[Evidence]) -> list[Evidence]:
    out = []
    covered = {e.kind for e in local}
    for kind, dim, stat, test, strength in _WHOLE_CLIP:
        v = features.stats.get(stat)
        if v is None or not test(v) or (kind == "soft" and "blur" in covered) or (kind == "grain" and "noise" in covered):
            continue
        out.append(Evidence(dim, kind, 0.0, duration, float(np.clip(strength(v), 0.1, 1.0)),
                            _phrase(kind, pct=f"{100 * v:.0f}"), False))
    return out


def _mismatch(features: VideoFeatures, prompt: str | None, prompt_stats: dict | None) -> list[Evidence]:
    """The frames' top class names against the prompt, when the alignment statistic is low."""
    if not prompt or not prompt_stats or "prompt_alignment" not in prompt_stats or not features.meta.get("labels"):
        return []
    value = float(prompt_stats["prompt_alignment"])
    if value >= load_yaml("evidence")["mismatch_below"]:
        return []
    labels = json.loads(features.meta["labels"])[:2]
    looks = " or ".join(labels)
    duration = float(frame_times(features)[-1])
    return [Evidence("prompt_alignment", "mismatch", 0.0, duration, 0.6,
                     _phrase("mismatch", looks=looks, prompt=prompt.strip().rstrip(".")), False)]


def find_evidence(features: VideoFeatures, prompt: str | None = None,
                  prompt_stats: dict | None = None) -> list[Evidence]:
    """Every defect measured in ``features``, strongest first (ties: earlier first)."""
    times = frame_times(features)
    p = pair_series(features)
    found: list[Evidence] = []
    if p and len(times) == len(p["dt"]) + 1:
        found += [*_freezes(p, times), *_shakes(p, times)]
        flickers, changes = _flickers(p, times), _content_changes(features, p, times)

        def near(e: Evidence, f: Evidence) -> bool:
            return f.start - 0.3 <= e.start <= f.end + 0.3

        # brightness pulses move the embeddings, and a swap to other content moves the brightness: a burst
        # of >= 3 jumps is flicker, fewer around a content jump are the jump
        found += [f for f in flickers if f.meta_jumps >= 3 or not any(near(c, f) for c in changes)]
        found += [c for c in changes if not any(near(c, f) and f.meta_jumps >= 3 for f in flickers)]
    s = features.series
    if "sharpness" in s and len(s["sharpness"]) == len(times):
        found += _blurs(np.asarray(s["sharpness"], dtype=np.float64), times)
    if "noise" in s and len(s["noise"]) == len(times):
        found += _noise_bursts(np.asarray(s["noise"], dtype=np.float64), times)
    found += _whole_clip(features, float(times[-1]), found)
    found += _mismatch(features, prompt, prompt_stats)
    return sorted(found, key=lambda e: (-e.strength, e.start))


def evidence_text(evidence: Iterable[Evidence], version: str = "v1") -> str:
    """The measurements as one line of the model's prompt (prompts/<v>/evidence.yaml)."""
    items = list(evidence)
    spec = load_yaml("evidence", version)
    body = "; ".join(e.text for e in items) if items else spec["none"]
    return spec["prompt"].format(evidence=body)
