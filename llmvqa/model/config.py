"""Settings of the quality LLM (projectors, backbone, LoRA) — one typed dataclass."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from llmvqa.errors import ConfigError
from llmvqa.settings import coerce_number
from llmvqa.statistics import STREAMS

CHAT_FORMATS = ("auto", "gemma", "chatml", "template")


@dataclass
class ModelConfig:
    backbone: str = "gemma3-270m"
    """Causal LM: "gemma3-270m" (offline default), a Hugging Face id or a local folder."""
    projector: str = "mlp"
    """Feature projector per stream: "mlp" (two layers, GELU; T frames sampled/padded to
    num_query_tokens) or "resampler" (num_query_tokens learnable queries cross-attending to all T)."""
    num_query_tokens: int = 8
    """Feature tokens per stream in the prompt (plus one stats token when stats_token is on)."""
    stats_token: bool = True
    """Add one token per stream projected from its normalized statistics vector."""
    stream_dims: dict[str, int] = field(default_factory=dict)
    """Input width D of each stream's (T, D) tokens, e.g. {"technical": 1280, ...}; required to build."""
    resampler_heads: int = 4
    """Attention heads of the resampler (must divide the LLM hidden size)."""
    use_lora: bool = True
    """Wrap the LLM with LoRA adapters (peft); False keeps the LLM frozen as loaded."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA scaling numerator (scale = alpha / r)."""
    lora_dropout: float = 0.05
    """Dropout on the LoRA input."""
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    """Module names that get adapters."""
    load_in_4bit: bool = False
    """QLoRA: nf4 weights through bitsandbytes (CUDA only)."""
    dtype: str = "auto"
    """LLM dtype: "auto" (bfloat16 with CUDA, float32 on CPU), "float32", "bfloat16", "float16"."""
    prompt_version: str = "v1"
    """Folder under prompts/ with the system prompt, chat format, template and questions."""
    chat_format: str = "auto"
    """Turn markers: "template" (the tokenizer's own chat template, through ``apply_chat_template``: Qwen2.5,
    Qwen2.5-VL), "gemma" (prompts/<v>/chat_format.yaml, <start_of_turn>…, for the base Gemma), "chatml"
    (chat_format_chatml.yaml, <|im_start|>…), or "auto": template when the tokenizer has a chat template,
    else chatml when it has <|im_start|> as one token, else gemma. A built model records the resolved format;
    checkpoints saved before this setting existed were trained with gemma markers and load with them."""
    trust_remote_code: bool = False
    """Allow custom model code from the backbone folder (only set it for sources you trust)."""
    max_new_tokens: int = 256
    """Upper bound on generated tokens for explain/chat."""
    restrict_vocab: bool = True
    """No longer read: generation is held to the plan of the clip's true sentences
    (llmvqa.justify / generation), which restricts it far more. Kept so older checkpoints load."""

    def __post_init__(self) -> None:
        if self.projector not in ("mlp", "resampler"):
            raise ConfigError("ModelConfig.projector", f"unknown projector {self.projector!r}", "use 'mlp' or 'resampler'")
        if self.num_query_tokens < 1:
            raise ConfigError("ModelConfig.num_query_tokens", f"must be ≥ 1, got {self.num_query_tokens}", "set e.g. 8")
        unknown = sorted(set(self.stream_dims) - set(STREAMS))
        if unknown:
            raise ConfigError("ModelConfig.stream_dims", f"unknown streams {unknown}", f"streams are {list(STREAMS)}")
        for s, d in self.stream_dims.items():
            if int(d) < 1:
                raise ConfigError("ModelConfig.stream_dims", f"stream {s!r} has width {d}", "widths must be ≥ 1")
        if self.use_lora and (self.lora_r < 1 or self.lora_alpha <= 0 or not 0 <= self.lora_dropout < 1):
            raise ConfigError("ModelConfig.lora_*", f"bad LoRA settings r={self.lora_r} alpha={self.lora_alpha} "
                              f"dropout={self.lora_dropout}", "use r ≥ 1, alpha > 0, 0 ≤ dropout < 1")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ConfigError("ModelConfig.dtype", f"unknown dtype {self.dtype!r}", "use auto/float32/bfloat16/float16")
        if self.chat_format not in CHAT_FORMATS:
            raise ConfigError("ModelConfig.chat_format", f"unknown chat format {self.chat_format!r}",
                              f"use one of {CHAT_FORMATS}")
        if self.max_new_tokens < 1:
            raise ConfigError("ModelConfig.max_new_tokens", f"must be ≥ 1, got {self.max_new_tokens}", "set e.g. 256")

    @property
    def tokens_per_stream(self) -> int:
        """Placeholder tokens per stream in the rendered prompt (known before projecting)."""
        return self.num_query_tokens + (1 if self.stats_token else 0)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        extra = sorted(set(d) - known)
        if extra:
            raise ConfigError("ModelConfig", f"unknown settings {extra}", f"known settings are {sorted(known)}")
        return cls(**{k: coerce_number(cls, k, v, f"model.{k}", "ModelConfig") for k, v in d.items()})
