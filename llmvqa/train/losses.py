"""Score losses on the expected level score (AIGVEval / MSA-VQA): PLCC loss + rank loss.

Both act on a batch: ``pred`` and ``target`` are (B,) on the same 1–5 scale. The
expected score is softmax over the five level-word logits · WEIGHTS (Q-Align).
"""

from __future__ import annotations

import torch

from llmvqa.model.scoring import expected_scores, level_probs


def expected_level_score(level_logits: torch.Tensor) -> torch.Tensor:
    """(B, 5) level-word logits in LEVELS order → (B,) expected score on 1–5."""
    return expected_scores(level_probs(level_logits))


def plcc_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(1 − Pearson correlation) / 2 over the batch: 0 = perfectly correlated, 1 = anti-correlated."""
    p = pred.float() - pred.float().mean()
    t = target.float() - target.float().mean()
    r = (p * t).sum() / (p.norm() * t.norm() + eps)
    return (1.0 - r) / 2.0


def rank_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean over pairs i≠j of max(0, |yi − yj| − sign(yi − yj)(ŷi − ŷj)) (MSA-VQA)."""
    dy = target.float()[:, None] - target.float()[None, :]  # (B, B)
    dp = pred.float()[:, None] - pred.float()[None, :]  # (B, B)
    loss = torch.relu(dy.abs() - torch.sign(dy) * dp)
    n = pred.shape[0]
    off_diag = ~torch.eye(n, dtype=torch.bool, device=pred.device)
    return loss[off_diag].mean() if n > 1 else loss.sum() * 0.0


def soft_level_targets(target: torch.Tensor) -> torch.Tensor:
    """(B,) 1–5 targets → (B, 5) level distributions (LEVELS order, weights 5..1): the mass split between
    the two levels around the target so that its expected value is the target."""
    t = target.float().clamp(1.0, 5.0)
    pos = 5.0 - t  # 0 = excellent … 4 = bad
    lo = pos.floor().clamp(max=3.0)
    frac = pos - lo  # share of the next-worse level
    out = torch.zeros(t.shape[0], 5, device=t.device)
    out.scatter_(1, lo.long()[:, None], (1.0 - frac)[:, None])
    out.scatter_add_(1, (lo.long() + 1)[:, None], frac[:, None])
    return out


def soft_level_ce(level_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the level-word distribution against ``soft_level_targets`` — unlike a loss on the
    expected score, its gradient does not vanish when the softmax is saturated on one level."""
    q = soft_level_targets(target)
    return -(q * torch.log_softmax(level_logits.float(), dim=-1)).sum(-1).mean()


def score_targets(target_score: torch.Tensor, level_pos: torch.Tensor, tasks: list[str | None],
                  score_tasks: list[str]) -> torch.Tensor:
    """(B,) score targets, nan where there is no level word or the record's task is not in score_tasks
    (a dimension answer's last level word is that dimension's level, not the overall score's)."""
    target = target_score.float().clone()
    target[level_pos.to(target.device) < 0] = float("nan")
    keep = torch.tensor([t in score_tasks for t in tasks], dtype=torch.bool, device=target.device)
    target[~keep] = float("nan")
    return target


def score_loss(
    level_logits: torch.Tensor,
    target_score: torch.Tensor,
    plcc_weight: float,
    rank_weight: float,
    min_samples: int = 2,
) -> torch.Tensor | None:
    """Weighted PLCC + rank loss over the samples with a finite target (None if fewer than min_samples)."""
    valid = torch.isfinite(target_score)
    if int(valid.sum()) < max(2, min_samples):
        return None
    pred = expected_level_score(level_logits[valid])  # (N,)
    target = target_score[valid].to(pred.dtype)
    total = pred.new_zeros(())
    if plcc_weight > 0:
        total = total + plcc_weight * plcc_loss(pred, target)
    if rank_weight > 0:
        total = total + rank_weight * rank_loss(pred, target)
    return total
