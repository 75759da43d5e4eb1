"""Semantic stream: per-frame embeddings of resized frames, content-stability statistics and
the basis for prompt alignment.

- tokens: backbone embedding of each used frame (short side to ``size``, center crop);
- semantic_consistency / semantic_mutation (see :mod:`llmvqa.statistics`) from the cosine
  similarities of those embeddings;
- alignment_basis, a unit vector in a text space, so that prompt alignment is
  ``cosine(text_embedding(prompt), alignment_basis)`` and needs no video at prompt time:
  - classifier backbone (offline EfficientNet-Lite0): per frame, the probability-weighted mean of
    the MiniLM embeddings of the top-k ImageNet class names, averaged over frames;
  - CLIP / SigLIP backbone: the mean of the unit image embeddings (the model's joint space).
- or, with ``alignment_scoring="class_expectation"`` (EfficientNet-Lite0), prompt alignment is read
  from the cached key-frame embeddings at prompt time: the classifier head gives each frame's class
  probabilities, and the statistic is the probability-weighted mean cosine between the prompt and
  the frame's top ``scoring_top_k`` class names, averaged over frames. It tells a wrong prompt from
  the right one more often than the basis (``eval/alignment_pairs.py``).

The offline basis only knows 1000 ImageNet classes: it flags a wrong subject, it does not grade
fine prompt fidelity (see DESIGN.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from llmvqa.encoders.backbones import EfficientNetLite0Backbone, VisionBackbone, load_vision_backbone
from llmvqa.encoders.cache import cache_root
from llmvqa.encoders.technical import select_frames
from llmvqa.encoders.text import TextEncoder, load_text_encoder
from llmvqa.errors import ConfigError, ModelError
from llmvqa.video.types import Clip
from llmvqa.video.views import resized


@dataclass
class SemanticConfig:
    """Settings of the semantic encoder."""

    backbone: str = "efficientnet_lite0"
    """Vision backbone: "efficientnet_lite0" (offline), "timm:<name>", or a HF id / local folder (CLIP/SigLIP for real prompt alignment)."""
    text_encoder: str = "auto"
    """Text space of prompt alignment: "auto" (the backbone's own text tower for CLIP/SigLIP, else "minilm"), "minilm", or a HF id / folder."""
    nframes_used: int = 8
    """Frames (evenly spread over the clip's sampled frames) that give tokens and statistics."""
    size: int = 224
    """Side of the resized, center-cropped frames the backbone sees."""
    top_k: int = 5
    """Classifier backbones: ImageNet classes per frame whose names form the alignment basis."""
    class_template: str = "a photo of a {}"
    """Sentence around a class name before it is embedded (matches how prompts describe content)."""
    alignment_offset: str = "none"
    """prompt_alignment = cos(prompt, basis) minus a per-prompt offset: "none", or "classes" (the prompt's
    mean cosine to the backbone's class names; evens out "hub" prompts that sit close to every video;
    classifier backbones only). Not part of the cached features: prompt statistics are computed per query."""
    alignment_scoring: str = "basis"
    """How prompt_alignment reads the video: "basis" (cosine with the cached alignment_basis) or
    "class_expectation" (EfficientNet-Lite0: the expected cosine between the prompt and each key frame's
    top scoring_top_k class names, from the cached semantic tokens). Not part of the cached features."""
    scoring_top_k: int = 20
    """Classes per frame of alignment_scoring="class_expectation" (1000 = the whole distribution)."""

    def __post_init__(self) -> None:
        for name in ("nframes_used", "size", "top_k", "scoring_top_k"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"SemanticConfig.{name}", f"must be a positive integer, got {value!r}", None)
        for name in ("top_k", "scoring_top_k"):
            if getattr(self, name) > 1000:
                raise ConfigError(f"SemanticConfig.{name}", f"must be <= 1000 (ImageNet classes), got {getattr(self, name)}",
                                  None)
        if self.alignment_scoring not in ("basis", "class_expectation"):
            raise ConfigError("SemanticConfig.alignment_scoring",
                              f"must be 'basis' or 'class_expectation', got {self.alignment_scoring!r}", None)
        if not self.backbone or not self.text_encoder:
            raise ConfigError("SemanticConfig", "backbone and text_encoder must be non-empty", "use the defaults")
        if self.alignment_offset not in ("none", "classes"):
            raise ConfigError("SemanticConfig.alignment_offset", f"must be 'none' or 'classes', got {self.alignment_offset!r}",
                              None)
        if "{}" not in self.class_template:
            raise ConfigError(
                "SemanticConfig.class_template", f"must contain '{{}}', got {self.class_template!r}", None
            )


def _read_table(path, rows: int) -> torch.Tensor | None:
    """A stored class-name table of ``rows`` rows, or None (absent, unreadable, from another torch: built again)."""
    try:
        table = torch.load(path, weights_only=True)
    except Exception:  # noqa: BLE001
        return None
    return table if isinstance(table, torch.Tensor) and table.ndim == 2 and len(table) == rows else None


def consistency_stats(emb: torch.Tensor) -> dict[str, float]:
    """semantic_consistency and semantic_mutation of per-frame embeddings (T, D).

    semantic_mutation is the median minus the minimum of the consecutive-frame cosine
    similarities: a pair far less similar than the clip's usual pair is a sudden change of
    identity, while the slow drift of a moving camera lowers every pair alike. 0 with < 3 frames.
    """
    e = F.normalize(emb.float(), dim=-1)  # (T, D)
    if len(e) < 2:
        return {"semantic_consistency": 1.0, "semantic_mutation": 0.0}
    consecutive = (e[1:] * e[:-1]).sum(-1)  # (T-1,)
    mutation = float(consecutive.median() - consecutive.min()) if len(e) >= 3 else 0.0
    return {"semantic_consistency": float(consecutive.mean()), "semantic_mutation": mutation}


class SemanticEncoder:
    """``__call__(clip) -> (tokens (T, D), stats, alignment_basis (E,))``; models load on first use.

    Pass ``backbone`` (and ``text_encoder``) to share already-loaded models with other encoders.
    """

    def __init__(
        self,
        cfg: SemanticConfig | None = None,
        backbone: VisionBackbone | None = None,
        text_encoder: TextEncoder | None = None,
    ):
        self.cfg = cfg or SemanticConfig()
        self._backbone = backbone
        self._text = text_encoder
        self._own_text = text_encoder is None
        """Whether the text encoder is this encoder's to load (none was passed in)."""
        self._class_matrix: torch.Tensor | None = None
        self._class_table: torch.Tensor | None = None
        """(C, E) text embeddings of every class name (``class_table``)."""
        self._prompt_cache: dict[str, torch.Tensor] = {}  # prompt → unit embedding (a batch repeats prompts)

    @property
    def backbone(self) -> VisionBackbone:
        if self._backbone is None:
            self._backbone = load_vision_backbone(self.cfg.backbone)
        return self._backbone

    def _text_name(self) -> str:
        """The text encoder the settings ask for ("auto" resolved)."""
        name = self.cfg.text_encoder
        if name == "auto":
            return self.cfg.backbone if self.backbone.joint_space else "minilm"
        if self.backbone.joint_space and name != self.cfg.backbone:
            raise ConfigError(
                "SemanticConfig.text_encoder",
                f"{name!r} cannot read the image-text space of {self.cfg.backbone!r}",
                'use "auto" (the backbone\'s own text tower)',
            )
        return name

    @property
    def text_encoder(self) -> TextEncoder:
        if self._text is None:
            self._text = load_text_encoder(self._text_name(), backbone=self.backbone)
        return self._text

    def _default_text(self) -> bool:
        """Whether the text encoder is the offline MiniLM that this encoder loads itself (not one passed in): then
        the class names' embeddings can come from the disk cache and a video without a prompt never loads it."""
        return self._own_text and self._text_name() == "minilm"

    @property
    def alignment_space(self) -> str:
        """Names the text space of alignment_basis (store it with the features; bases from different spaces do not compare)."""
        if self.backbone.joint_space:
            return f"joint:{self.backbone.name}"
        text = "minilm" if self._text is None and self._default_text() else self.text_encoder.name
        space = f"classes:{self.backbone.name}:top{self.cfg.top_k}:{text}"
        if self.cfg.class_template != SemanticConfig.class_template:
            space += f":{self.cfg.class_template}"
        return space

    def views(self, clip: Clip | np.ndarray) -> np.ndarray:
        """The resized frames the backbone sees: uint8 (T, size, size, 3)."""
        frames = clip.frames if isinstance(clip, Clip) else np.asarray(clip)
        return resized(frames[select_frames(len(frames), self.cfg.nframes_used)], self.cfg.size)

    def class_table(self) -> torch.Tensor:
        """(C, E) text embeddings of every class name of the backbone, built once. With the default MiniLM the table
        is kept in ``cache_root()/class_names`` (built once per machine, about 3 s), so that reading a video without
        a prompt loads no text encoder: a feature worker or ``rate clip.mp4`` starts about 3 s sooner."""
        if self._class_table is None:
            names = [self.cfg.class_template.format(c) for c in self.backbone.classes]
            path = None
            if self._default_text():
                key = hashlib.sha256(json.dumps([self.backbone.name, "minilm", names]).encode()).hexdigest()[:20]
                path = cache_root() / "class_names" / f"{key}.pt"
            table = _read_table(path, len(names)) if path else None
            if table is None:
                text = self.text_encoder
                table = torch.cat([text.embed(names[i:i + 256]) for i in range(0, len(names), 256)]).float()
                if path and text.name == "minilm":  # a stand-in under another name (tests) is never stored
                    with contextlib.suppress(OSError):  # a read-only home: the table stays in memory only
                        path.parent.mkdir(parents=True, exist_ok=True)
                        tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
                        torch.save(table, tmp)
                        os.replace(tmp, path)
            self._class_table = table
        return self._class_table

    def class_basis(self, probs: torch.Tensor) -> torch.Tensor:
        """(T, C) class probabilities -> unit (E,) vector: per-frame top-k name mix, averaged."""
        top_p, top_i = probs.topk(min(self.cfg.top_k, probs.shape[-1]), dim=-1)  # (T, k)
        w = top_p / top_p.sum(-1, keepdim=True)  # (T, k)
        per_frame = (w.unsqueeze(-1) * self.class_table()[top_i]).sum(1)  # (T, E)
        return F.normalize(per_frame.mean(0), dim=-1)

    def __call__(self, clip: Clip | np.ndarray) -> tuple[torch.Tensor, dict[str, float], torch.Tensor | None]:
        images = self.views(clip)
        bb = self.backbone
        if isinstance(bb, EfficientNetLite0Backbone):
            tokens, probs = bb.embed_and_probs(images)  # one forward: (T, 1280), (T, 1000)
        else:
            tokens = bb.embed(images)  # (T, D)
            probs = None if bb.joint_space or bb.classes is None else bb.class_probs(images)
        if bb.joint_space:
            basis = F.normalize(F.normalize(tokens, dim=-1).mean(0), dim=-1)  # (E,)
        elif probs is not None:
            basis = self.class_basis(probs)
        else:
            basis = None  # neither a joint space nor class names: no prompt alignment for this backbone
        return tokens, consistency_stats(tokens), None if basis is None else basis.float()

    def top_labels(self, tokens: torch.Tensor, k: int = 3) -> list[str]:
        """The ``k`` most probable class names over the clip (mean of per-frame probabilities), first
        synonym only ("seashore, coast" -> "seashore"); [] when the backbone has no class head."""
        probs_of = getattr(self.backbone, "probs_from_embeddings", None)
        classes = self.backbone.classes
        if probs_of is None or not classes or tokens is None or len(tokens) == 0:
            return []
        mean = probs_of(torch.as_tensor(tokens, dtype=torch.float32)).mean(0)  # (C,)
        return [classes[i].split(",")[0].strip() for i in mean.topk(min(k, len(mean))).indices.tolist()]

    def prompt_alignment(self, alignment_basis: torch.Tensor | None, prompt: str,
                         tokens: torch.Tensor | None = None) -> float:
        """The prompt's alignment with a video: cosine with ``alignment_basis`` (same text space), or with
        ``alignment_scoring="class_expectation"`` the expected class-name cosine of the video's semantic
        ``tokens`` (T, D); minus the per-prompt offset when ``alignment_offset="classes"``."""
        text = self._prompt_embedding(prompt)  # (E,)
        if self.cfg.alignment_scoring == "class_expectation":
            cos = self._class_expectation(tokens, text)
        else:
            cos = self._basis_cosine(alignment_basis, text)
        if self.cfg.alignment_offset == "classes":
            cos -= float((self.class_name_matrix() @ text).mean())
        return cos

    def _prompt_embedding(self, prompt: str, max_cached: int = 4096) -> torch.Tensor:
        text = self._prompt_cache.get(prompt)
        if text is None:
            text = F.normalize(self.text_encoder.embed([prompt])[0].float(), dim=0)
            if len(self._prompt_cache) >= max_cached:
                self._prompt_cache.pop(next(iter(self._prompt_cache)))
            self._prompt_cache[prompt] = text
        return text

    def _basis_cosine(self, alignment_basis: torch.Tensor | None, text: torch.Tensor) -> float:
        if alignment_basis is None:
            raise ModelError(
                self.backbone.name,
                "the features have no alignment basis (the backbone has neither an image-text space nor class names)",
                'use a CLIP/SigLIP model, a 1000-class classifier, or "efficientnet_lite0"',
            )
        basis = torch.as_tensor(alignment_basis, dtype=torch.float32).flatten()
        if basis.shape[0] != text.shape[0]:
            raise ModelError(
                self.text_encoder.name,
                f"alignment basis has {basis.shape[0]} dimensions but the text encoder gives {text.shape[0]}",
                "re-extract the features with the same semantic encoder settings",
            )
        return float(F.cosine_similarity(text, basis, dim=0))

    def _class_expectation(self, tokens: torch.Tensor | None, text: torch.Tensor) -> float:
        """Mean over frames of the probability-weighted cosine between the prompt and the frame's top-k class names."""
        probs_of = getattr(self.backbone, "probs_from_embeddings", None)
        if probs_of is None:
            raise ConfigError("SemanticConfig.alignment_scoring",
                              f"'class_expectation' needs a classifier whose class probabilities follow from its "
                              f"embeddings; {self.cfg.backbone!r} has none", 'use "efficientnet_lite0" or "basis"')
        if tokens is None or tokens.ndim != 2 or len(tokens) == 0:
            raise ModelError(self.backbone.name, "prompt alignment by class expectation needs the video's semantic "
                             "tokens (T, D)", "pass features.tokens['semantic']")
        probs = probs_of(tokens)  # (T, C)
        top_p, top_i = probs.topk(min(self.cfg.scoring_top_k, probs.shape[-1]), dim=-1)  # (T, k)
        cos = self.class_name_matrix() @ text  # (C,)
        return float(((top_p / top_p.sum(-1, keepdim=True)) * cos[top_i]).sum(-1).mean())

    def class_name_matrix(self) -> torch.Tensor:
        """(C, E) unit text embeddings of every class name (alignment_offset="classes", class_expectation), once."""
        if self._class_matrix is None:
            classes = self.backbone.classes
            if self.backbone.joint_space or not classes:
                raise ConfigError("SemanticConfig.alignment_offset",
                                  f"'classes' needs a classifier backbone with class names; {self.cfg.backbone!r} has none",
                                  'set alignment_offset: "none"')
            self._class_matrix = F.normalize(self.class_table(), dim=-1)
        return self._class_matrix
