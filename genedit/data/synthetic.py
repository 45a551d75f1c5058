"""Small deterministic synthetic collections for unit tests (not a benchmark)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from genedit.data.types import Collection, DataError, Document, Qrels, Query


@dataclass(frozen=True)
class SyntheticSpec:
    """Shape of a synthetic collection."""

    n_docs: int
    queries_per_doc: int = 2
    seed: int = 0
    vocab_size: int = 200
    doc_len: int = 30
    test_fraction: float = 0.2
    keys_per_doc: int = 3
    keys_per_query: int = 2
    noise_per_query: int = 2

    def validate(self) -> None:
        """Raise DataError for a shape that cannot be generated."""
        if self.n_docs < 1:
            raise DataError(f"n_docs must be >= 1, got {self.n_docs}")
        if self.queries_per_doc < 1:
            raise DataError(f"queries_per_doc must be >= 1, got {self.queries_per_doc}")
        if self.vocab_size < 1:
            raise DataError(f"vocab_size must be >= 1, got {self.vocab_size}")
        if self.doc_len < self.keys_per_doc:
            raise DataError(f"doc_len must be >= {self.keys_per_doc} (the key words), got {self.doc_len}")
        if not 0.0 <= self.test_fraction <= 1.0:
            raise DataError(f"test_fraction must be in [0, 1], got {self.test_fraction}")


def key_word(doc_index: int, key_index: int) -> str:
    """The key word `key_index` unique to document `doc_index` (e.g. 'k12b')."""
    return f"k{doc_index}{chr(ord('a') + key_index)}"


def _generate(spec: SyntheticSpec) -> Collection:
    """Build the collection described by a validated spec."""
    rng = random.Random(spec.seed)
    vocab = [f"w{i}" for i in range(spec.vocab_size)]
    width = max(3, len(str(spec.n_docs - 1)))
    qwidth = max(3, len(str(spec.n_docs * spec.queries_per_doc - 1)))

    documents: list[Document] = []
    queries: dict[str, Query] = {}
    relevant: dict[str, str] = {}
    for i in range(spec.n_docs):
        keys = [key_word(i, j) for j in range(spec.keys_per_doc)]
        words = [rng.choice(vocab) for _ in range(spec.doc_len - len(keys))]
        for key in keys:
            words.insert(rng.randrange(len(words) + 1), key)
        doc_id = f"d{i:0{width}d}"
        documents.append(Document(id=doc_id, title=f"topic {keys[0]}", text=" ".join(words)))
        for _ in range(spec.queries_per_doc):
            n_keys = min(spec.keys_per_query, len(keys))
            qwords = rng.sample(keys, n_keys) + [rng.choice(vocab) for _ in range(spec.noise_per_query)]
            rng.shuffle(qwords)
            query_id = f"q{len(queries):0{qwidth}d}"
            queries[query_id] = Query(id=query_id, text=" ".join(qwords))
            relevant[query_id] = doc_id

    order = list(queries)
    rng.shuffle(order)
    n_test = round(len(order) * spec.test_fraction)
    if len(order) >= 2 and 0.0 < spec.test_fraction < 1.0:
        n_test = min(max(n_test, 1), len(order) - 1)
    test_ids = set(order[:n_test])
    splits: dict[str, dict[str, dict[str, int]]] = {"train": {}, "test": {}}
    for query_id in queries:  # keep query-id order inside each split
        splits["test" if query_id in test_ids else "train"][query_id] = {relevant[query_id]: 1}
    return Collection(
        name=f"synthetic-{spec.n_docs}-seed{spec.seed}",
        documents=documents,
        queries=queries,
        qrels={name: Qrels(judgments=j) for name, j in splits.items()},
    )


def synthetic_collection(n_docs: int, queries_per_doc: int = 2, seed: int = 0, vocab_size: int = 200,
                         doc_len: int = 30, test_fraction: float = 0.2) -> Collection:
    """A deterministic toy collection whose queries share unique key words with their one relevant document."""
    spec = SyntheticSpec(n_docs=n_docs, queries_per_doc=queries_per_doc, seed=seed, vocab_size=vocab_size,
                         doc_len=doc_len, test_fraction=test_fraction)
    spec.validate()
    return _generate(spec)
