"""Recall@k (ir_measures: R@k): fraction of the relevant documents found in the top k."""

from __future__ import annotations

from collections.abc import Sequence, Set
from dataclasses import dataclass

from genedit.eval.measures.base import Measure, register_measure


@register_measure
@dataclass(frozen=True)
class Recall(Measure):
    """|relevant in top k| / |relevant|; 0.0 for a query without relevant documents."""

    name = "recall"
    aliases = ("r",)

    def compute(self, ranking: Sequence[str], relevant: Set[str]) -> float:
        """Distinct relevant ids among the first `cutoff`, over the number of relevant ids."""
        if not relevant:
            return 0.0
        return len(set(ranking[: self.cutoff]) & relevant) / len(relevant)
