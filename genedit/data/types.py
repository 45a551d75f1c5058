"""Typed containers for an IR collection: documents, queries, relevance judgments."""

from __future__ import annotations

from dataclasses import dataclass, field


class DataError(ValueError):
    """Malformed collection input; the message names the file and line."""


@dataclass(frozen=True)
class Document:
    """One document of a corpus."""

    id: str
    title: str
    text: str

    def indexing_text(self) -> str:
        """Title and text joined, the text a GenIR model indexes (truncated later by tokens)."""
        return f"{self.title}. {self.text}" if self.title else self.text


@dataclass(frozen=True)
class Query:
    """One query."""

    id: str
    text: str


@dataclass(frozen=True)
class Qrels:
    """Relevance judgments of one split: query id -> {document id: grade}."""

    judgments: dict[str, dict[str, int]]

    def relevant(self, query_id: str) -> set[str]:
        """Document ids judged relevant (grade > 0) for a query."""
        return {d for d, g in self.judgments.get(query_id, {}).items() if g > 0}

    def query_ids(self) -> list[str]:
        """Query ids with at least one relevant document, in file order."""
        return [q for q, docs in self.judgments.items() if any(g > 0 for g in docs.values())]


@dataclass
class Collection:
    """A corpus with its queries and per-split qrels (BEIR layout)."""

    name: str
    documents: list[Document]
    queries: dict[str, Query]
    qrels: dict[str, Qrels] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._by_id = {d.id: d for d in self.documents}

    def __contains__(self, doc_id: object) -> bool:
        """Whether the collection holds a document id (`doc_id in collection`)."""
        return doc_id in self._by_id

    def document(self, doc_id: str) -> Document:
        """The document with this id."""
        return self._by_id[doc_id]

    @property
    def doc_ids(self) -> list[str]:
        """Document ids in corpus order."""
        return [d.id for d in self.documents]

    def split(self, name: str) -> list[tuple[Query, set[str]]]:
        """(query, relevant doc ids) pairs of one split; KeyError names the available splits."""
        if name not in self.qrels:
            raise KeyError(f"split {name!r} not in collection {self.name!r}; available: {sorted(self.qrels)}")
        qrels = self.qrels[name]
        return [(self.queries[q], qrels.relevant(q)) for q in qrels.query_ids()]
