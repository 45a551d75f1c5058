"""Evaluate a Run against Qrels with registered measures (hits@k, mrr@k, recall@k)."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from genedit.data.types import Qrels
from genedit.eval.measures import Measure, parse_measures
from genedit.eval.types import Run

logger = logging.getLogger(__name__)

DEFAULT_MEASURES: tuple[str, ...] = ("hits@1", "hits@5", "hits@10", "mrr@10")


@dataclass
class EvalResult:
    """Mean measure values over the judged queries, and the per-query values behind them."""

    aggregate: dict[str, float]
    per_query: dict[str, dict[str, float]]
    n_queries: int
    n_missing: int = 0
    run_name: str = ""
    measures: list[str] = field(default_factory=list)

    def as_row(self, digits: int = 4) -> str:
        """One compact line, e.g. "hits@1=0.4200 hits@10=0.8000 mrr@10=0.5500 (n=100)"."""
        values = " ".join(f"{name}={value:.{digits}f}" for name, value in self.aggregate.items())
        missing = f", {self.n_missing} missing from run" if self.n_missing else ""
        return f"{values} (n={self.n_queries}{missing})"

    def format(self, digits: int = 4) -> str:
        """A small aligned table: the run name, one measure per line, and the query count."""
        width = max((len(name) for name in self.aggregate), default=0)
        lines = [f"{self.run_name or 'run'}: {self.n_queries} queries" + (f" ({self.n_missing} missing from run)" if self.n_missing else "")]
        lines += [f"  {name:<{width}}  {value:.{digits}f}" for name, value in self.aggregate.items()]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.as_row()


def check_judgeable(pairs: Sequence[tuple[object, set[str]]], indexed: set[str], deleted: set[str], where: str, split: str) -> None:
    """Refuse a split whose relevant documents the model never indexed (another corpus); deleted ones are misses."""
    missing = {d for _, rel in pairs for d in rel} - indexed - deleted
    if missing:
        raise ValueError(f"{where}: {len(missing)} relevant documents of split {split!r} are not indexed by the model "
                         f"(nor deleted by a journalled edit), e.g. {sorted(missing)[:3]}: is this the corpus the model indexes?")


def evaluate(run: Run, qrels: Qrels, measures: Sequence[str | Measure] = DEFAULT_MEASURES) -> EvalResult:
    """Score a run on every query of qrels with a relevant document; queries missing from the run score 0."""
    parsed = parse_measures(measures)
    names = [str(m) for m in parsed]
    query_ids = qrels.query_ids()
    per_query: dict[str, dict[str, float]] = {}
    missing = 0
    for qid in query_ids:
        relevant = qrels.relevant(qid)
        ranking = run.ranking.get(qid)
        if ranking is None:
            missing += 1
            ranking = []
        per_query[qid] = {name: m.compute(ranking, relevant) for name, m in zip(names, parsed)}
    if missing:
        logger.warning("run %r lacks %d of %d judged queries; they count as 0", run.name, missing, len(query_ids))
    if query_ids:
        aggregate = {name: math.fsum(v[name] for v in per_query.values()) / len(query_ids) for name in names}
    else:
        logger.warning("qrels hold no query with a relevant document; aggregates are NaN")
        aggregate = {name: float("nan") for name in names}
    return EvalResult(aggregate=aggregate, per_query=per_query, n_queries=len(query_ids), n_missing=missing, run_name=run.name, measures=names)
