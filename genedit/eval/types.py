"""The ranked output of a retriever, shared by GenIR models and baselines."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Run:
    """Ranked document ids (best first) with their scores, per query id."""

    ranking: dict[str, list[str]]
    scores: dict[str, list[float]]
    name: str = "genedit"

    def top(self, query_id: str, k: int) -> list[str]:
        """The k best document ids for a query."""
        return self.ranking[query_id][:k]
