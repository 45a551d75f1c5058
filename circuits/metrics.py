"""Retrieval measures of docid logits against relevance masks, per query (ranks, logit differences, log-probs)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from genedit.eval.rank import hits_at, rank_of, rr_at


@dataclass
class RankStats:
    """Per-query measures of the best-ranked relevant document (any leading shape, e.g. [P, B])."""

    rank: torch.Tensor  # 0-based rank of the best relevant docid (genedit.eval.rank_of: ties count against it)
    logit_diff: torch.Tensor  # best relevant logit minus best non-relevant logit
    logprob: torch.Tensor  # logsumexp of relevant logits minus logsumexp of all logits

    @property
    def hit1(self) -> torch.Tensor:
        """1.0 where a relevant document is at rank 1."""
        return hits_at(self.rank, 1)

    @property
    def hit10(self) -> torch.Tensor:
        """1.0 where a relevant document is in the top 10."""
        return hits_at(self.rank, 10)

    @property
    def rr10(self) -> torch.Tensor:
        """Reciprocal rank cut at 10."""
        return rr_at(self.rank, 10)


def rank_stats(logits: torch.Tensor, relevant: torch.Tensor) -> RankStats:
    """Measures of logits [..., B, N] against a relevance mask [B, N] (broadcast over leading axes)."""
    relevant = relevant.expand_as(logits)
    neg_inf = torch.finfo(logits.dtype).min
    best_rel = logits.masked_fill(~relevant, neg_inf).max(-1).values
    others = logits.masked_fill(relevant, neg_inf)
    best_other = others.max(-1).values
    rank = rank_of(logits, relevant)
    logprob = logits.masked_fill(~relevant, neg_inf).logsumexp(-1) - logits.logsumexp(-1)
    return RankStats(rank=rank, logit_diff=best_rel - best_other, logprob=logprob)


def metric_value(logits: torch.Tensor, relevant: torch.Tensor, metric: str) -> torch.Tensor:
    """Differentiable per-query metric: 'logprob' (relevant log-softmax mass) or 'logit_diff'."""
    stats = rank_stats(logits, relevant)
    if metric == "logprob":
        return stats.logprob
    if metric == "logit_diff":
        return stats.logit_diff
    raise ValueError(f"unknown metric {metric!r}; choose 'logprob' or 'logit_diff'")
