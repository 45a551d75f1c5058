"""MRR@k (ir_measures: RR@k): reciprocal rank of the first relevant document within the top k."""

from __future__ import annotations

from collections.abc import Sequence, Set
from dataclasses import dataclass

from genedit.eval.measures.base import Measure, register_measure


@register_measure
@dataclass(frozen=True)
class MRR(Measure):
    """1/rank of the first relevant document if it is within the cutoff, else 0.0."""

    name = "mrr"
    aliases = ("rr",)

    def compute(self, ranking: Sequence[str], relevant: Set[str]) -> float:
        """Reciprocal rank (ranks from 1) of the first relevant id among the first `cutoff`."""
        for rank, doc in enumerate(ranking[: self.cutoff], start=1):
            if doc in relevant:
                return 1.0 / rank
        return 0.0
