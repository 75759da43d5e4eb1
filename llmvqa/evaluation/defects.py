"""Controlled defects: real footage with one defect inserted at a known time.

``insert_defect`` changes uint8 (T, H, W, 3) frames in one time range; ``located`` checks
whether a justification names the defect's dimension and a time near its start. The
controlled-defect benchmark (``eval/defect_localization.py``) and the evidence tests use them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import cv2
import numpy as np

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
