"""Pseudo-queries of a document when the user gives none: what an edit trains and measures efficacy on.

For each document (documented in README, "Editing"):
- the title, when it has at least two words;
- up to `sentences` sentences of the text with at least four words (the trainer's pseudo-queries);
- a keyphrase query: the document's `keyphrases` highest-weighted terms under a TF-IDF model of the corpus
  (scikit-learn), joined by spaces;
- the DSI indexing text: title plus the first tokens of the text (as many as the model was trained with, `RowRecipe`).
User-given queries come first and are always kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from genedit.data.types import Document
from genedit.model.rows import pseudo_queries


@dataclass
class PseudoQueries:
    """Derives pseudo-queries; the TF-IDF model is fitted once on the corpus the model indexes."""

    sentences: int = 3
    keyphrases: int = 6
    vectorizer: TfidfVectorizer | None = None

    def fit(self, texts: Sequence[str]) -> "PseudoQueries":
        """Fit the keyphrase TF-IDF model (terms unknown to it are ignored for later documents)."""
        texts = [t for t in texts if t.strip()]
        if texts:
            self.vectorizer = TfidfVectorizer(stop_words="english", sublinear_tf=True, token_pattern=r"(?u)\b[A-Za-z_][A-Za-z0-9_]+\b", max_features=50000).fit(texts)
        return self

    def keyphrase_queries(self, docs: Sequence[Document]) -> list[str]:
        """One keyphrase query per document ('' when no known term)."""
        if self.vectorizer is None:
            self.fit([d.indexing_text() for d in docs])
        assert self.vectorizer is not None
        matrix = self.vectorizer.transform([d.indexing_text() for d in docs]).tocsr()
        vocab = self.vectorizer.get_feature_names_out()
        out = []
        for i in range(matrix.shape[0]):
            row = matrix.getrow(i)
            order = np.argsort(-row.data, kind="stable")[: self.keyphrases]
            out.append(" ".join(vocab[row.indices[j]] for j in order))
        return out

    def __call__(self, docs: Sequence[Document], indexing: Sequence[str], given: Mapping[str, Sequence[str]] | None = None) -> list[list[str]]:
        """Queries per document: given ones first, then title, sentences, keyphrases, indexing text (deduplicated)."""
        keys = self.keyphrase_queries(docs)
        out = []
        for doc, key, index_text in zip(docs, keys, indexing):
            cands = list((given or {}).get(doc.id, []))
            if len(doc.title.split()) >= 2:
                cands.append(doc.title)
            cands += pseudo_queries(doc, self.sentences)
            cands += [key, index_text]
            out.append(list(dict.fromkeys(q for q in cands if q.strip())))
        return out
