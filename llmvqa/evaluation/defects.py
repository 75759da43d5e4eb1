"""Controlled defects: real footage with one defect inserted at a known time.

``insert_defect`` changes uint8 (T, H, W, 3) frames in one time range; ``located`` checks
whether a justification names the defect's dimension and a time near its start, ``evidence_located``
whether the measured evidence does. The controlled-defect benchmark (``eval/defect_localization.py``:
the footage of ``load_segment``, the clips of ``cases``, the rates of ``tally``) and the evidence tests
use them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from llmvqa.levels import LEVELS

DEFECT_KINDS: tuple[str, ...] = ("freeze", "flicker", "blur", "noise", "content_swap", "shake")
DIMENSION_OF: dict[str, str] = {
    "freeze": "smoothness", "flicker": "flicker", "blur": "sharpness", "noise": "noise",
    "content_swap": "semantic_consistency", "shake": "smoothness",
}  # fmt: skip
"""The dimension (dimensions.yaml key) each defect lowers."""


@dataclass(frozen=True)
class Defect:
    kind: str
    start: float
    """Seconds."""
    end: float


def insert_defect(frames: np.ndarray, fps: float, defect: Defect, rng: np.random.Generator,
                  other: np.ndarray | None = None) -> np.ndarray:
    """A copy of uint8 (T, H, W, 3) ``frames`` at ``fps`` with ``defect`` inserted.

    freeze: the frame at the start repeats; flicker: brightness alternates ±30% frame by frame;
    blur: Gaussian blur (sigma 3 px per 512 px); noise: Gaussian noise, sigma 18; content_swap:
    from the start on, ``other`` (frames of another clip, same size) replaces the clip; shake: every
    frame shifted by a random offset of up to 4% of the width.
    """
    if defect.kind not in DEFECT_KINDS:
        raise ValueError(f"unknown defect {defect.kind!r}; kinds are {DEFECT_KINDS}")
    out = frames.copy()
    t = len(frames)
    i0 = max(0, min(t - 1, int(round(defect.start * fps))))
    i1 = max(i0 + 1, min(t, int(round(defect.end * fps))))
    seg = slice(i0, i1)
    h, w = frames.shape[1:3]
    if defect.kind == "freeze":
        out[seg] = frames[i0]
    elif defect.kind == "flicker":
        gain = np.where(np.arange(i1 - i0) % 2 == 0, 1.3, 0.7)[:, None, None, None]
        out[seg] = np.clip(frames[seg].astype(np.float32) * gain, 0, 255).astype(np.uint8)
    elif defect.kind == "blur":
        sigma = 3.0 * max(h, w) / 512
        out[seg] = np.stack([cv2.GaussianBlur(f, (0, 0), sigma) for f in frames[seg]])
    elif defect.kind == "noise":
        noisy = frames[seg].astype(np.float32) + rng.normal(0, 18, frames[seg].shape)
        out[seg] = np.clip(noisy, 0, 255).astype(np.uint8)
    elif defect.kind == "content_swap":
        if other is None or other.shape[1:] != frames.shape[1:] or len(other) < i1:
            raise ValueError("content_swap needs other frames of the same size, at least as many")
        out[i0:] = other[i0:t]
    elif defect.kind == "shake":
        amp = 0.04 * w
        for i in range(i0, i1):
            dx, dy = rng.uniform(-amp, amp, 2)
            m = np.float32([[1, 0, dx], [0, 1, dy]])
            out[i] = cv2.warpAffine(frames[i], m, (w, h), borderMode=cv2.BORDER_REFLECT)
    return out


_TIME = re.compile(r"(\d+(?:\.\d+)?)\s*s\b")


def stated_times(text: str) -> list[float]:
    """Every "N.N s" time a text states."""
    return [float(m.group(1)) for m in _TIME.finditer(text)]


def located(text: str, defect: Defect, dimension_name: str, tolerance: float = 0.5) -> tuple[bool, bool]:
    """(names the dimension, cites a time within ``tolerance`` of the defect's start *for* that dimension).

    A justification cites a dimension's evidence right before the dimension's level sentence
    ("The picture freezes from 2.0 s to 2.5 s. In terms of motion smoothness, this video is fair."),
    or, for a minor flaw of a dimension that still rates high, names it in the sentence
    ("Minor (motion smoothness): the camera shakes from 1.8 s to 2.6 s."): a time counts in either case.
    """
    from llmvqa.sig.validate import stated_levels

    sentences = re.split(r"(?<=[.!?])\s+", text.strip())
    named = any(dimension_name.lower() in x.lower() for x in sentences)
    timed = False
    for i, x in enumerate(sentences):
        if not any(abs(t - defect.start) <= tolerance for t in stated_times(x)):
            continue
        if f"({dimension_name.lower()})" in x.lower():  # "Minor (motion smoothness): the camera shakes ..."
            timed = True
            continue
        for later in sentences[i + 1:]:
            stated = [k for k, _ in stated_levels(later)[0]]
            if stated:
                from llmvqa.dimensions import load_dimensions

                names = {k: d.name for k, d in load_dimensions().dimensions.items()}
                timed = timed or names.get(stated[0], stated[0]) == dimension_name
                break
    return named, timed



SEGMENTS: tuple[tuple[str, float], ...] = (
    ("bikes", 0.0), ("bikes", 3.0), ("bikes", 6.0), ("bigbuckbunny", 0.0), ("bigbuckbunny", 1.2),
    ("carphone_pristine", 0.0))  # fmt: skip
"""(example clip, start second) of the controlled clips' footage."""
SECONDS, SIDE = 4.0, 512
"""Length (s) and side (px) of a controlled clip."""
TIMING: dict[str, tuple[tuple[float, float], ...]] = {
    "freeze": ((1.0, 1.7), (2.5, 3.2)), "flicker": ((0.5, 1.5), (2.3, 3.3)), "noise": ((0.8, 1.8), (2.6, 3.6)),
    "shake": ((0.6, 1.6), (2.2, 3.2)), "blur": ((0.0, 2.0), (2.0, 4.0)), "content_swap": ((1.5, 4.0), (2.7, 4.0)),
}  # fmt: skip
"""Each defect kind's two (start, end) times in a controlled clip."""


def load_segment(name: str, start: float, seconds: float = SECONDS, side: int = SIDE) -> tuple[np.ndarray, float]:
    """uint8 (round(seconds × fps), side, side, 3) frames of ``seconds`` of example:NAME from ``start``
    (every frame, resized), and the clip's fps."""
    from llmvqa.assessor import resolve_video
    from llmvqa.video.loader import load_clip
    from llmvqa.video.probe import probe

    path = resolve_video(f"example:{name}")
    info = probe(path)
    clip = load_clip(path, nframes=info.num_frames)
    keep = (clip.timestamps >= start - 1e-6) & (clip.timestamps < start + seconds - 1e-6)
    keep[np.flatnonzero(keep)[int(seconds * info.fps):]] = False  # exactly `seconds`
    frames = np.stack([cv2.resize(f, (side, side), interpolation=cv2.INTER_AREA) for f in clip.frames[keep]])
    return frames, float(info.fps)


def cases(n_segments: int = len(SEGMENTS)) -> list[tuple[int, Defect, int]]:
    """(segment index, defect, index of the segment a content swap brings in) of every controlled clip: each
    segment with each kind at its two ``TIMING`` times (the other segment: 2 + j segments further on)."""
    return [(s, Defect(kind, a, b), (s + 2 + j) % n_segments)
            for s in range(n_segments) for kind, times in TIMING.items() for j, (a, b) in enumerate(times)]


def evidence_located(evidence: Sequence, defect: Defect, tolerance: float = 0.5) -> tuple[str, bool, bool]:
    """(the evidence as text, a finding of the defect's dimension, one starting within ``tolerance`` s of the
    defect's start) for the measured ``evidence`` (``llmvqa.evidence.find_evidence``) of a controlled clip."""
    want = DIMENSION_OF[defect.kind]
    text = " ".join(f"{e.dimension}: {e.sentence}" for e in evidence)
    named = any(e.dimension == want for e in evidence)
    timed = any(e.dimension == want and abs(e.start - defect.start) <= tolerance for e in evidence)
    return text, named, timed


def tally(rows: Iterable[Mapping]) -> dict:
    """Rates over controlled clips ({"kind", "named", "timed"} each; located = named and timed): "clips",
    "located_rate", and "per_kind" {kind: {"located", "named", "clips", "rate"}}."""
    per_kind: dict[str, list[int]] = {}
    for r in rows:
        k = per_kind.setdefault(r["kind"], [0, 0, 0])
        k[0] += int(bool(r["named"] and r["timed"]))
        k[1] += int(bool(r["named"]))
        k[2] += 1
    located, clips = sum(v[0] for v in per_kind.values()), sum(v[2] for v in per_kind.values())
    return {"clips": clips, "located_rate": round(located / max(1, clips), 3),
            "per_kind": {k: {"located": v[0], "named": v[1], "clips": v[2], "rate": round(v[0] / v[2], 3)}
                         for k, v in sorted(per_kind.items())}}


FLAGGED = LEVELS[2:]
"""Levels that call a dimension flawed: fair, poor, bad."""


def level_tally(rows: Iterable[Mapping]) -> dict:
    """What the dimension levels say of controlled clips ({"kind", "levels": {dimension key: level}} each, as
    ``RatingResult.dimensions`` keys them): "affected_flagged", the share of clips whose defect's own dimension is
    rated fair or worse, and "flagged" {dimension: share of clips rated fair or worse} over every clip (each clip has
    one defect, so a dimension flagged on most clips flags footage or defects it does not measure)."""
    rows = [r for r in rows if r.get("levels")]
    if not rows:
        return {}
    own = [r["levels"].get(DIMENSION_OF[r["kind"]]) in FLAGGED for r in rows]
    dims = sorted({d for r in rows for d in r["levels"]})
    flagged = {d: round(sum(r["levels"].get(d) in FLAGGED for r in rows) / len(rows), 3) for d in dims}
    return {"clips": len(rows), "affected_flagged": round(sum(own) / len(rows), 3), "flagged": flagged}
