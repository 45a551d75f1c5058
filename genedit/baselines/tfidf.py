"""TF-IDF baseline: sublinear tf-idf over identifier-aware word tokens, cosine by sparse dot product."""

from __future__ import annotations

import logging
import re

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from tqdm.auto import tqdm

from genedit.data.types import Collection, Query
from genedit.eval.types import Run

logger = logging.getLogger(__name__)

# Runs of letters/digits: "json.dumps" -> json, dumps; "load_json" -> load, json.
TOKEN_PATTERN = r"(?u)[^\W_]+"
_CAMEL_LOWER_UPPER = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_CAMEL_ACRONYM = re.compile(r"(?<=[A-Z])(?=[A-Z][a-z])")


def split_identifiers(text: str) -> str:
    """Lower-cased text with camelCase split ("getLogger" -> "get logger", "HTTPServer" -> "http server")."""
    return _CAMEL_ACRONYM.sub(" ", _CAMEL_LOWER_UPPER.sub(" ", text)).lower()


def top_k_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the indices and values of the k largest scores, best first, ties broken by lower index."""
    n_rows, n_cols = scores.shape
    k = min(k, n_cols)
    if k <= 0:
        return np.zeros((n_rows, 0), dtype=np.int64), np.zeros((n_rows, 0), dtype=scores.dtype)
    indices = np.empty((n_rows, k), dtype=np.int64)
    for row in range(n_rows):
        values = scores[row]
        if k < n_cols:
            kth = values[np.argpartition(-values, k - 1)[k - 1]]
            candidates = np.flatnonzero(values >= kth)  # every tie at the boundary, ascending index
        else:
            candidates = np.arange(n_cols)
        order = np.lexsort((candidates, -values[candidates]))[:k]
        indices[row] = candidates[order]
    return indices, np.take_along_axis(scores, indices, axis=1)


class TfidfRetriever:
    """Sparse lexical retriever: scikit-learn TfidfVectorizer (sublinear tf, unigrams) + cosine similarity."""

    name = "tfidf"

    def __init__(self, *, min_df: int = 1, max_df: float = 1.0, query_batch_size: int = 256) -> None:
        self.vectorizer = TfidfVectorizer(
            preprocessor=split_identifiers,
            token_pattern=TOKEN_PATTERN,
            ngram_range=(1, 1),
            sublinear_tf=True,
            min_df=min_df,
            max_df=max_df,
            dtype=np.float32,
        )
        self.query_batch_size = query_batch_size
        self.doc_ids: list[str] = []
        self.matrix: sp.csr_matrix | None = None

    @classmethod
    def from_collection(cls, collection: Collection, **options: object) -> TfidfRetriever:
        """A retriever fitted on the collection's documents."""
        retriever = cls(**options)  # type: ignore[arg-type]
        retriever.fit(collection)
        return retriever

    def fit(self, collection: Collection) -> None:
        """Index the collection's documents (title and text, untruncated)."""
        if not collection.documents:
            raise ValueError(f"collection {collection.name!r} has no documents")
        self.doc_ids = collection.doc_ids
        self.matrix = self.vectorizer.fit_transform([d.indexing_text() for d in collection.documents]).tocsr()
        logger.info("tfidf: indexed %d documents, vocabulary %d", len(self.doc_ids), len(self.vectorizer.vocabulary_))

    def search(self, queries: list[Query], k: int = 100) -> Run:
        """The top-k documents per query by tf-idf cosine (documents with score 0 fill up the ranking)."""
        if self.matrix is None:
            raise RuntimeError("TfidfRetriever.search called before fit")
        ranking: dict[str, list[str]] = {}
        scores: dict[str, list[float]] = {}
        doc_matrix_t = self.matrix.T.tocsc()
        starts = range(0, len(queries), self.query_batch_size)
        for start in tqdm(starts, desc="tfidf search", disable=len(starts) < 4):
            batch = queries[start : start + self.query_batch_size]
            q = self.vectorizer.transform([query.text for query in batch])
            dense = np.asarray((q @ doc_matrix_t).todense())
            idx, vals = top_k_rows(dense, k)
            for row, query in enumerate(batch):
                ranking[query.id] = [self.doc_ids[i] for i in idx[row]]
                scores[query.id] = [float(v) for v in vals[row]]
        return Run(ranking=ranking, scores=scores, name=self.name)
