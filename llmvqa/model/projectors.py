"""Projectors: a stream's (T, D) encoder tokens → a fixed number of LLM-embedding tokens.

Batches carry padded tokens (B, T_max, D) with per-sample lengths (B,), because T varies per
video. The number of output tokens is fixed (num_query_tokens) so the prompt can be rendered
before the features are projected.
"""

from __future__ import annotations

import torch
from torch import nn

from llmvqa.model.prior import PRIOR_OF_STREAM, normalize_prior
from llmvqa.statistics import PROMPT_STATS, normalize, stats_of_stream


def stats_vector(stream: str, stats: dict[str, float], prompt_stats: dict[str, float] | None = None) -> torch.Tensor:
    """Normalized statistics of one stream as a float32 vector (length stats_dim(stream)).

    Prompt statistics (prompt_alignment) take two slots: the normalized value (0 when absent)
    and a has-prompt indicator. Other statistics must be present. The last two slots are the
    stream's human-prior estimate (``PRIOR_OF_STREAM``, passed in prompt_stats by a model that has
    a prior; 0 and 0 otherwise).
    """
    prompt_stats = prompt_stats or {}
    values: list[float] = []
    for name in stats_of_stream(stream):
        if name in PROMPT_STATS:
            present = name in prompt_stats
            values += [normalize(name, prompt_stats[name]) if present else 0.0, 1.0 if present else 0.0]
        elif name in stats:
            values.append(normalize(name, stats[name]))
        else:
            raise ValueError(f"statistic {name!r} of stream {stream!r} is missing from the video features")
    prior = prompt_stats.get(PRIOR_OF_STREAM[stream])
    values += [0.0, 0.0] if prior is None else [normalize_prior(prior), 1.0]
    return torch.tensor(values, dtype=torch.float32)


def stats_dim(stream: str) -> int:
    return sum(2 if n in PROMPT_STATS else 1 for n in stats_of_stream(stream)) + 2


def widen_stats_inputs(state: dict[str, torch.Tensor], model_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Projector weights saved before the prior slots existed: the stats MLP's first layer gets zero
    columns for the missing inputs, the prior direction zeros and the token gate 1, so the old model
    computes exactly what it did (the slots are 0 for it anyway); the gates open (1)."""
    out = dict(state)
    for k, want in model_state.items():  # the prior direction: absent before the prior existed → zero
        if k.endswith("prior_dir") and k not in out:
            out[k] = torch.zeros_like(want)
        if (k.endswith("token_gate") or k.endswith("stats_gate")) and k not in out:
            out[k] = torch.ones_like(want)
    for k, v in state.items():
        want = model_state.get(k)
        if k.endswith("stats.0.weight") and want is not None and v.ndim == 2 and v.shape[1] < want.shape[1] \
                and v.shape[0] == want.shape[0]:
            out[k] = torch.cat([v, v.new_zeros(v.shape[0], want.shape[1] - v.shape[1])], dim=1)
    return out


def _mlp(d_in: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_out), nn.GELU(), nn.Linear(d_out, d_out))


def sample_indices(lengths: torch.Tensor, n: int) -> torch.Tensor:
    """(B,) lengths → (B, n) evenly spaced frame indices (repeats frames when T < n)."""
    steps = torch.linspace(0, 1, n, device=lengths.device)  # (n,)
    return torch.round(steps[None, :] * (lengths[:, None].float() - 1).clamp(min=0)).long()  # (B, n)


class MLPProjector(nn.Module):
    """Two-layer GELU MLP per frame, after sampling/padding T to num_tokens frames."""

    def __init__(self, d_in: int, hidden: int, num_tokens: int):
        super().__init__()
        self.num_tokens = num_tokens
        self.mlp = _mlp(d_in, hidden)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # x: (B, T, D), lengths: (B,) → (B, N, H)
        idx = sample_indices(lengths, self.num_tokens)  # (B, N)
        picked = torch.gather(x, 1, idx[:, :, None].expand(-1, -1, x.shape[-1]))  # (B, N, D)
        return self.mlp(picked)


class ResamplerProjector(nn.Module):
    """num_tokens learnable queries cross-attend to all T frames (padding masked)."""

    def __init__(self, d_in: int, hidden: int, num_tokens: int, heads: int = 4):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"resampler heads ({heads}) must divide the LLM hidden size ({hidden})")
        self.num_tokens = num_tokens
        self.inp = nn.Linear(d_in, hidden)
        self.queries = nn.Parameter(torch.randn(num_tokens, hidden) * hidden**-0.5)
        self.attn = nn.MultiheadAttention(hidden, heads, batch_first=True)
        self.norm = nn.LayerNorm(hidden)
        self.mlp = _mlp(hidden, hidden)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # x: (B, T, D), lengths: (B,) → (B, N, H)
        kv = self.inp(x)  # (B, T, H)
        pad = torch.arange(x.shape[1], device=x.device)[None, :] >= lengths[:, None]  # (B, T) True = padding
        q = self.queries[None].expand(x.shape[0], -1, -1)  # (B, N, H)
        out, _ = self.attn(q, kv, kv, key_padding_mask=pad, need_weights=False)
        out = out + q
        return out + self.mlp(self.norm(out))


class StreamProjector(nn.Module):
    """One stream: feature tokens (+ one stats token) in LLM embedding space."""

    def __init__(self, stream: str, d_in: int, hidden: int, kind: str, num_tokens: int,
                 stats_token: bool = True, heads: int = 4):
        super().__init__()
        self.stream = stream
        self.tokens = (MLPProjector(d_in, hidden, num_tokens) if kind == "mlp"
                       else ResamplerProjector(d_in, hidden, num_tokens, heads))
        self.stats = _mlp(stats_dim(stream), hidden) if stats_token else None
        # the human prior's estimate moves the stats token along one direction (zero: no effect); the
        # calibration stage starts it along the model's own score gradient (llmvqa.train.human)
        self.prior_dir = nn.Parameter(torch.zeros(hidden)) if stats_token else None
        # scales the feature tokens (1: as trained); a calibrated scorer closes it (llmvqa.train.human)
        self.token_gate = nn.Parameter(torch.ones(()), requires_grad=False)
        # scales the raw statistics in the stats token (1: as trained; the prior slots are never scaled); a
        # calibrated scorer closes it, so its stats token is a function of the prior's estimate alone
        self.stats_gate = nn.Parameter(torch.ones(()), requires_grad=False)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, stats: torch.Tensor | None) -> torch.Tensor:
        # → (B, N [+1], H)
        out = self.tokens(x, lengths) * self.token_gate
        if self.stats is not None:
            inputs = torch.cat([stats[:, :-2] * self.stats_gate, stats[:, -2:]], dim=1)
            token = self.stats(inputs) + stats[:, -2:-1] * self.prior_dir  # (B, H): the prior slot (value) × direction
            out = torch.cat([out, token[:, None, :]], dim=1)  # (B, N+1, H)
        return out
