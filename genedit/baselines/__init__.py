"""Baseline retrievers (dense MiniLM + faiss, TF-IDF, BM25) sharing fit(collection) / search(queries, k) -> Run."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from genedit.data.types import Collection, Query
from genedit.eval.evaluate import DEFAULT_MEASURES, EvalResult, evaluate
from genedit.eval.types import Run

logger = logging.getLogger(__name__)


@runtime_checkable
class Retriever(Protocol):
    """What every baseline offers: index a collection, then rank its documents for queries."""

    name: str

    def fit(self, collection: Collection) -> None:
        """Index the collection's documents."""
        ...

    def search(self, queries: list[Query], k: int = 100) -> Run:
        """The top-k documents per query, best first."""
        ...


def _dense(**options: object) -> Retriever:
    from genedit.baselines.dense import DenseRetriever

    return DenseRetriever(**options)  # type: ignore[arg-type]


def _tfidf(**options: object) -> Retriever:
    from genedit.baselines.tfidf import TfidfRetriever

    return TfidfRetriever(**options)  # type: ignore[arg-type]


def _bm25(**options: object) -> Retriever:
    from genedit.baselines.bm25 import BM25Retriever

    return BM25Retriever(**options)  # type: ignore[arg-type]


def _factories() -> dict[str, Callable[..., Retriever]]:
    return {"bm25": _bm25, "dense": _dense, "tfidf": _tfidf}


def baseline_names() -> list[str]:
    """Names of the available baselines."""
    return sorted(_factories())


def make_baseline(name: str, **options: object) -> Retriever:
    """An unfitted baseline by name (case-insensitive); ValueError lists the known names."""
    factories = _factories()
    key = name.strip().lower()
    if key not in factories:
        raise ValueError(f"unknown baseline {name!r}; known baselines: {', '.join(sorted(factories))}")
    return factories[key](**options)


def run_baseline(
    name: str,
    collection: Collection,
    split: str,
    k: int = 100,
    *,
    measures: Sequence[str] = DEFAULT_MEASURES,
    **options: object,
) -> tuple[Run, EvalResult]:
    """Fit a baseline on the collection, search the split's queries, and evaluate against its qrels."""
    retriever = make_baseline(name, **options)
    queries = [query for query, _ in collection.split(split)]  # KeyError names the available splits
    start = time.perf_counter()
    retriever.fit(collection)
    run = retriever.search(queries, k=k)
    result = evaluate(run, collection.qrels[split], measures)
    logger.info("%s on %s/%s in %.1fs: %s", retriever.name, collection.name, split, time.perf_counter() - start, result.as_row())
    return run, result


def __getattr__(attr: str) -> object:
    """Lazy access to the retriever classes, so importing this package does not load torch or faiss."""
    if attr == "DenseRetriever":
        from genedit.baselines.dense import DenseRetriever

        return DenseRetriever
    if attr == "BM25Retriever":
        from genedit.baselines.bm25 import BM25Retriever

        return BM25Retriever
    if attr == "TfidfRetriever":
        from genedit.baselines.tfidf import TfidfRetriever

        return TfidfRetriever
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


__all__ = ["BM25Retriever", "DenseRetriever", "Retriever", "TfidfRetriever", "baseline_names", "make_baseline", "run_baseline"]
