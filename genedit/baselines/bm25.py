"""BM25 baseline (bm25s, Lucene variant, k1 1.2, b 0.75) over the same identifier-aware tokens as TF-IDF."""

from __future__ import annotations

import logging
from types import ModuleType

import numpy as np
from tqdm.auto import tqdm

from genedit.baselines.tfidf import TOKEN_PATTERN, split_identifiers, top_k_rows
from genedit.data.types import Collection, Query
from genedit.eval.types import Run

logger = logging.getLogger(__name__)


def _bm25s() -> ModuleType:
    """The bm25s module, quiet: its import sets its logger to DEBUG, which logs every index build."""
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


class BM25Retriever:
    """Sparse lexical retriever: bm25s BM25 on lower-cased, camelCase-split word tokens without English stopwords."""

    name = "bm25"

    def __init__(self, *, k1: float = 1.2, b: float = 0.75, stopwords: str | None = "en", query_batch_size: int = 256) -> None:
        self.k1, self.b, self.stopwords = k1, b, stopwords
        self.query_batch_size = query_batch_size
        self.doc_ids: list[str] = []
        self.index = None

    @classmethod
    def from_collection(cls, collection: Collection, **options: object) -> BM25Retriever:
        """A retriever fitted on the collection's documents."""
        retriever = cls(**options)  # type: ignore[arg-type]
        retriever.fit(collection)
        return retriever

    def tokens(self, texts: list[str]) -> list[list[str]]:
        """The BM25 terms of each text (identifiers split, lower-cased, stopwords dropped): what the index counts."""
        return _bm25s().tokenize([split_identifiers(t) for t in texts], lower=True, token_pattern=TOKEN_PATTERN, stopwords=self.stopwords,
                              return_ids=False, show_progress=False)

    def fit(self, collection: Collection) -> None:
        """Index the collection's documents (title and text, untruncated)."""
        bm25s = _bm25s()
        if not collection.documents:
            raise ValueError(f"collection {collection.name!r} has no documents")
        self.doc_ids = collection.doc_ids
        self.index = bm25s.BM25(k1=self.k1, b=self.b, method="lucene")
        self.index.index(self.tokens([d.indexing_text() for d in collection.documents]), show_progress=False)
        logger.info("bm25: indexed %d documents", len(self.doc_ids))

    def search(self, queries: list[Query], k: int = 100) -> Run:
        """The top-k documents per query by BM25 score (ties and zero scores: lower corpus position first)."""
        if self.index is None:
            raise RuntimeError("BM25Retriever.search called before fit")
        ranking: dict[str, list[str]] = {}
        scores: dict[str, list[float]] = {}
        starts = range(0, len(queries), self.query_batch_size)
        for start in tqdm(starts, desc="bm25 search", disable=len(starts) < 4):
            batch = queries[start : start + self.query_batch_size]
            tokens = self.tokens([q.text for q in batch])
            dense = np.stack([self.index.get_scores(t) if t else np.zeros(len(self.doc_ids), dtype=np.float32) for t in tokens])
            idx, vals = top_k_rows(dense, k)
            for row, query in enumerate(batch):
                ranking[query.id] = [self.doc_ids[i] for i in idx[row]]
                scores[query.id] = [float(v) for v in vals[row]]
        return Run(ranking=ranking, scores=scores, name=self.name)
