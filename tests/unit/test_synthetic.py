"""Synthetic collections: determinism, shapes, lexical findability."""

from __future__ import annotations

import pytest

from genedit.data import DataError, synthetic_collection


def test_deterministic_given_seed() -> None:
    assert synthetic_collection(30, seed=5) == synthetic_collection(30, seed=5)
    assert synthetic_collection(30, seed=5) != synthetic_collection(30, seed=6)


@pytest.mark.parametrize("n_docs, per_doc, doc_len", [(1, 1, 5), (10, 2, 30), (57, 3, 12)])
def test_shapes(n_docs: int, per_doc: int, doc_len: int) -> None:
    c = synthetic_collection(n_docs, queries_per_doc=per_doc, doc_len=doc_len, vocab_size=50)
    assert len(c.documents) == n_docs
    assert len(set(c.doc_ids)) == n_docs
    assert all(len(d.text.split()) == doc_len for d in c.documents)
    assert len(c.queries) == n_docs * per_doc
    assert set(c.qrels) == {"train", "test"}
    train, test = c.qrels["train"].judgments, c.qrels["test"].judgments
    assert set(train).isdisjoint(test)
    assert set(train) | set(test) == set(c.queries)
    for judged in (*train.values(), *test.values()):
        assert len(judged) == 1 and set(judged.values()) == {1}
    per_doc_count: dict[str, int] = {}
    for judged in (*train.values(), *test.values()):
        (doc_id,) = judged
        per_doc_count[doc_id] = per_doc_count.get(doc_id, 0) + 1
    assert per_doc_count == {d: per_doc for d in c.doc_ids}


def test_test_fraction() -> None:
    c = synthetic_collection(50, queries_per_doc=2, test_fraction=0.2)
    assert len(c.qrels["test"].judgments) == 20 and len(c.qrels["train"].judgments) == 80
    only_train = synthetic_collection(5, test_fraction=0.0)
    assert not only_train.qrels["test"].judgments and len(only_train.qrels["train"].judgments) == 10
    tiny = synthetic_collection(2, queries_per_doc=1, test_fraction=0.1)
    assert len(tiny.qrels["test"].judgments) == 1 and len(tiny.qrels["train"].judgments) == 1


def test_queries_are_lexically_findable() -> None:
    c = synthetic_collection(40, seed=1)
    doc_words = {d.id: set(d.text.split()) for d in c.documents}
    for split in ("train", "test"):
        for query, relevant in c.split(split):
            (doc_id,) = relevant
            overlap = {d: len(set(query.text.split()) & words) for d, words in doc_words.items()}
            best = max(overlap.values())
            assert overlap[doc_id] == best
            key_words = [w for w in query.text.split() if w.startswith("k")]
            assert len(key_words) >= 1
            assert all(w in doc_words[doc_id] for w in key_words)
            assert not any(w in doc_words[other] for w in key_words for other in doc_words if other != doc_id)


@pytest.mark.parametrize("kwargs", [
    {"n_docs": 0}, {"n_docs": 3, "queries_per_doc": 0}, {"n_docs": 3, "vocab_size": 0},
    {"n_docs": 3, "doc_len": 2}, {"n_docs": 3, "test_fraction": 1.5},
])
def test_invalid_arguments(kwargs: dict) -> None:
    with pytest.raises(DataError):
        synthetic_collection(**kwargs)
