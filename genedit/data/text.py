"""Text helpers shared by training and editing: splitting a document into sentence-like pseudo-queries."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from genedit.data.types import Document

_SENTENCE = re.compile(r"(?<=[.!?:])\s+(?=[A-Z(`'\"])")


def sentences(text: str, limit: int) -> list[str]:
    """Up to `limit` sentences of a text with at least four words each (the trainer's pseudo-queries)."""
    parts = [p.strip() for p in _SENTENCE.split(text) if len(p.split()) >= 4]
    return parts[:limit]



SHINGLE_WORDS = 8  # a run of this many words repeated across documents is boilerplate (licence headers, section markers)
SHINGLE_DOCS = 3  # ... when it occurs in at least this many documents


def _shingles(words: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


def boilerplate(texts: Sequence[str], n_words: int = SHINGLE_WORDS, min_docs: int = SHINGLE_DOCS) -> frozenset[tuple[str, ...]]:
    """Word n-grams that occur in at least `min_docs` of the texts: text that tells no document apart."""
    counts = Counter(g for text in texts for g in set(_shingles(text.split(), n_words)))
    return frozenset(g for g, c in counts.items() if c >= min_docs)


def without_boilerplate(text: str, shared: frozenset[tuple[str, ...]], n_words: int = SHINGLE_WORDS) -> str:
    """The text without the words any shared n-gram covers (the text itself if nothing else is left)."""
    if not shared:
        return text
    words = text.split()
    covered = [False] * len(words)
    for i, g in enumerate(_shingles(words, n_words)):
        if g in shared:
            covered[i : i + n_words] = [True] * n_words
    kept = [w for w, c in zip(words, covered) if not c]
    return " ".join(kept) if kept else text


def distinct_documents(docs: Sequence[Document], shared: frozenset[tuple[str, ...]]) -> list[Document]:
    """The documents without the boilerplate `shared` marks (the distinct text a `distinct_text` recipe trains on)."""
    return [Document(d.id, d.title, without_boilerplate(d.text, shared)) for d in docs]
