"""Protocol splits: seeded, disjoint, held-out queries never trained on; validation of protocol and fraction."""

from __future__ import annotations

import pytest

from benchmarks.protocols import PROTOCOLS, SplitSpec, collection_hash, make_split
from genedit.data import synthetic_collection
from genedit.data.types import Collection, DataError, Qrels


@pytest.fixture(scope="module")
def coll():
    return synthetic_collection(80, queries_per_doc=2, seed=1)


def _train_queries(c: Collection) -> set[str]:
    return set(c.qrels["train"].query_ids()) if "train" in c.qrels else set()


def _ids(split):
    return [op.doc_ids for op in split.ops], split.base.doc_ids, split.final.doc_ids


@pytest.mark.parametrize("protocol", ["add", "delete", "update", "sequential"])
def test_splits_are_seeded(coll, protocol):
    spec = SplitSpec(protocol, seed=3, n_edits=20, every=10)
    a, b = make_split(coll, spec), make_split(coll, spec)
    assert _ids(a) == _ids(b) and collection_hash(a.base) == collection_hash(b.base) and collection_hash(a.final) == collection_hash(b.final)
    other = make_split(coll, SplitSpec(protocol, seed=4, n_edits=20, every=10))
    assert _ids(other) != _ids(a)


def test_add_split(coll):
    s = make_split(coll, SplitSpec("add"))
    new = set(s.ops[0].doc_ids)
    assert len(new) == 8 and s.ops[0].op == "add"
    assert not new & set(s.base.doc_ids) and set(s.base.doc_ids) | new == set(coll.doc_ids)
    assert set(s.final.doc_ids) == set(coll.doc_ids)
    held = {q.id for q, _ in s.sets["edited"]}
    assert held and all(rel <= new for _, rel in s.sets["edited"])
    assert not held & _train_queries(s.base) and not held & _train_queries(s.final)  # nobody trains on them
    assert all(not rel & new for _, rel in s.sets["retained"] + s.sets["retained_train"])
    assert {q.id for q, _ in s.sets["retained_train"]} <= _train_queries(s.base)


def test_delete_split(coll):
    s = make_split(coll, SplitSpec("delete", fraction=0.25))
    gone = set(s.ops[0].doc_ids)
    assert len(gone) == 20 and s.base.doc_ids == coll.doc_ids
    assert set(s.final.doc_ids) == set(coll.doc_ids) - gone
    assert all(rel <= gone for _, rel in s.sets["deleted"]) and len(s.sets["deleted"]) == 40  # 2 queries per doc
    assert all(not rel & gone for _, rel in s.sets["retained"] + s.sets["retained_train"])
    assert not {d for js in s.final.qrels.values() for rel in js.judgments.values() for d in rel} & gone


def test_update_split(coll):
    s = make_split(coll, SplitSpec("update"))
    docs = s.ops[0].docs
    targets = {d.id for d in docs}
    assert len(docs) == 4 and targets <= set(s.base.doc_ids)
    kept_out = set(coll.doc_ids) - set(s.base.doc_ids)
    assert len(kept_out) == 4
    texts = {coll.document(k).text for k in kept_out}
    assert {d.text for d in docs} == texts  # the new texts are those of documents the base never saw
    assert {s.final.document(t).text for t in targets} == texts and set(s.final.doc_ids) == set(s.base.doc_ids)
    assert all(rel <= targets for _, rel in s.sets["edited"]) and s.sets["edited"]
    held = {q.id for q, _ in s.sets["edited"]}
    assert not held & _train_queries(s.final) and not held & _train_queries(s.base)
    stale = {q.id for q, _ in s.sets["stale"]}
    assert stale and not stale & set(s.final.queries)  # old queries of updated docs: nobody retrains on them


def test_sequential_stream(coll):
    s = make_split(coll, SplitSpec("sequential", n_edits=30, every=10))
    assert len(s.ops) == 30 and all(len(op.doc_ids) == 1 for op in s.ops)
    kinds = [op.op for op in s.ops]
    assert kinds.count("add") == 12 and kinds.count("delete") == 9 and kinds.count("update") == 9
    touched = [op.doc_ids[0] for op in s.ops]
    assert len(set(touched)) == 30  # every document edited at most once
    adds = {op.doc_ids[0] for op in s.ops if op.op == "add"}
    dels = {op.doc_ids[0] for op in s.ops if op.op == "delete"}
    assert not adds & set(s.base.doc_ids) and dels <= set(s.base.doc_ids)
    assert set(s.final.doc_ids) == (set(s.base.doc_ids) - dels) | adds
    assert len(s.chunks) == 3 and all(p for p in s.chunks[:1])
    assert {q.id for c in s.chunks for q, _ in c} == {q.id for q, _ in s.sets["edited"]}
    untouched_q = {q.id for q, _ in s.sets["retained"]}
    assert all(not rel & set(touched) for _, rel in s.sets["retained"]) and untouched_q
    with pytest.raises(DataError, match="fewer edits"):
        make_split(coll, SplitSpec("sequential", n_edits=80))


@pytest.mark.parametrize("fraction", [0.0, -0.1, 0.51, 1.0])
def test_fraction_outside_range_is_refused(coll, fraction):
    with pytest.raises(ValueError, match=r"\(0, 0.5\]"):
        make_split(coll, SplitSpec("add", fraction=fraction))


def test_unknown_protocol_and_data_without_test_queries(coll):
    with pytest.raises(ValueError, match="unknown protocol"):
        make_split(coll, SplitSpec("rename"))
    no_test = Collection("x", coll.documents, coll.queries, {"train": coll.qrels["train"]})
    with pytest.raises(DataError, match="no test queries"):
        make_split(no_test, SplitSpec("delete"))
    empty_test = Collection("x", coll.documents, coll.queries, {"train": coll.qrels["train"], "test": Qrels({})})
    with pytest.raises(DataError, match="no test queries"):
        make_split(empty_test, SplitSpec("add"))


def test_every_protocol_is_described_in_one_place():
    for name, p in PROTOCOLS.items():
        assert p.name == name and len(p.labels) == 2 and p.description and p.columns and p.panels
        assert all(c.head and c.key for c in p.columns)


@pytest.mark.parametrize("n_docs, expected", [(1300, 999), (1301, 1000), (5000, 1000), (60, 46), (3, 2), (2, 1)])
def test_the_longest_stream_that_fits_leaves_a_document_untouched(n_docs, expected):
    from benchmarks.protocols.sequential import documents_needed, max_edits

    n = max_edits(n_docs, 1000)
    assert n == expected
    assert n == 1 or documents_needed(n) <= n_docs - 1
    assert n == 1000 or documents_needed(n + 1) > n_docs - 1
