"""Ranks of relevant documents in score tensors, with one tie rule for the trainer, circuits metrics and the lens.

A tie counts against the relevant document: its rank (zero-based) is the number of non-relevant documents whose
score is >= the best relevant score, so a model that gives every document the same score ranks it last, not first.
"""

from __future__ import annotations

import torch


def rank_of(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Zero-based rank [...] of the best relevant document in logits [..., N]; target is indices [...] or a mask [..., N].

    A mask broadcasts over leading axes of logits (e.g. logits [P, B, N] against relevant [B, N]). Ties count against
    the relevant document; a row without a relevant document, or whose best relevant score is NaN, gets the number of
    non-relevant documents (last place).
    """
    relevant = target.bool() if target.dtype == torch.bool else torch.nn.functional.one_hot(target.long(), logits.shape[-1]).bool()
    relevant = relevant.to(logits.device).expand_as(logits)
    best = logits.masked_fill(~relevant, -torch.inf).amax(-1, keepdim=True)
    others = ~relevant
    rank = ((logits >= best) & others).sum(-1)
    return torch.where(best.squeeze(-1).isnan(), others.sum(-1), rank)


def hits_at(rank: torch.Tensor, k: int) -> torch.Tensor:
    """1.0 where the zero-based rank is within the top k, else 0.0 (per query)."""
    return (rank < k).float()


def rr_at(rank: torch.Tensor, k: int) -> torch.Tensor:
    """Reciprocal rank cut at k (per query): 1 / (rank + 1) within the top k, else 0.0."""
    return torch.where(rank < k, 1.0 / (rank.float() + 1.0), torch.zeros_like(rank, dtype=torch.float))
