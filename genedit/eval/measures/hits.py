"""Hits@k (ir_measures: Success@k): 1 if any relevant document is in the top k."""

from __future__ import annotations

from collections.abc import Sequence, Set
from dataclasses import dataclass

from genedit.eval.measures.base import Measure, register_measure


@register_measure
@dataclass(frozen=True)
class Hits(Measure):
    """1.0 if any relevant document is ranked within the cutoff, else 0.0."""

    name = "hits"
    aliases = ("hit", "success")

    def compute(self, ranking: Sequence[str], relevant: Set[str]) -> float:
        """1.0 if a relevant id is among the first `cutoff` ids."""
        return 1.0 if any(doc in relevant for doc in ranking[: self.cutoff]) else 0.0
