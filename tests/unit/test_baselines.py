"""Baselines: tf-idf lexical matching, dense MiniLM retrieval, faiss vs brute-force parity, the registry."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np
import pytest
import torch

from genedit.baselines import Retriever, baseline_names, make_baseline, run_baseline
from genedit.baselines.tfidf import TfidfRetriever, split_identifiers, top_k_rows
from genedit.data.types import Collection, Document, Qrels, Query
from genedit.model.pretrained import sentence_embeddings


def lexical_collection() -> Collection:
    docs = [
        Document("d0", "os.path", "Common pathname manipulations: join, split, exists."),
        Document("d1", "json", "Encode Python objects with json.dumps and decode with json.loads."),
        Document("d2", "logging", "Use logging.getLogger to obtain a logger; configure handlers."),
        Document("d3", "re", "Regular expression operations: compile, match, search, sub."),
        Document("d4", "", "The zebrafish quokka token appears only here."),
        Document("d5", "collections", "Container datatypes: deque, Counter, OrderedDict, defaultdict."),
    ]
    queries = {
        "q0": Query("q0", "quokka"),
        "q1": Query("q1", "what does dumps return"),
        "q2": Query("q2", "get logger"),
        "q3": Query("q3", "ordered dict"),
        "q4": Query("q4", "nothing matches xyzzy"),
    }
    qrels = {"test": Qrels({"q0": {"d4": 1}, "q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d5": 1}})}
    return Collection(name="lexical", documents=docs, queries=queries, qrels=qrels)


def test_split_identifiers():
    assert split_identifiers("getLogger HTTPServer json.dumps") == "get logger http server json.dumps"


def test_tfidf_finds_planted_match():
    coll = lexical_collection()
    retriever = TfidfRetriever.from_collection(coll)
    assert isinstance(retriever, Retriever)
    run = retriever.search(list(coll.queries.values()), k=3)
    assert run.name == "tfidf"
    assert run.top("q0", 1) == ["d4"]
    assert run.top("q1", 1) == ["d1"]  # "json.dumps" in the doc is split into "json" and "dumps"
    assert run.top("q2", 1) == ["d2"]  # camelCase "getLogger" matches "get logger"
    assert run.top("q3", 1) == ["d5"]
    for qid in coll.queries:
        assert len(run.ranking[qid]) == 3 and len(run.scores[qid]) == 3
        assert run.scores[qid] == sorted(run.scores[qid], reverse=True)
    assert run.scores["q0"][0] > 0.0
    assert run.scores["q4"] == [0.0, 0.0, 0.0]  # no overlap: zero scores, deterministic corpus order
    assert run.ranking["q4"] == ["d0", "d1", "d2"]
    # k larger than the corpus returns every document
    assert len(retriever.search([coll.queries["q0"]], k=100).ranking["q0"]) == len(coll.documents)


def test_tfidf_scores_are_cosine():
    coll = lexical_collection()
    retriever = TfidfRetriever.from_collection(coll)
    q = retriever.vectorizer.transform(["json dumps"]).toarray()[0]
    d = retriever.vectorizer.transform([coll.document("d1").indexing_text()]).toarray()[0]
    run = retriever.search([Query("x", "json dumps")], k=1)
    expected = float(q @ d / (np.linalg.norm(q) * np.linalg.norm(d)))
    assert run.ranking["x"] == ["d1"] and run.scores["x"][0] == pytest.approx(expected, rel=1e-5)


def test_top_k_rows_ties_and_order():
    scores = np.array([[0.1, 0.5, 0.5, 0.9, 0.5], [0.0, 0.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    idx, vals = top_k_rows(scores, 3)
    assert idx.tolist() == [[3, 1, 2], [0, 1, 2]]
    assert vals[0].tolist() == pytest.approx([0.9, 0.5, 0.5])
    idx, _ = top_k_rows(scores, 10)
    assert idx[0].tolist() == [3, 1, 2, 4, 0]


def test_registry_and_run_baseline():
    assert baseline_names() == ["bm25", "dense", "tfidf"]
    with pytest.raises(ValueError, match="bm25, dense, tfidf"):
        make_baseline("splade")
    coll = lexical_collection()
    run, result = run_baseline("TFIDF", coll, "test", k=5)
    assert set(run.ranking) == {"q0", "q1", "q2", "q3"}
    assert result.n_queries == 4
    assert result.aggregate["hits@1"] == 1.0 and result.aggregate["mrr@10"] == 1.0
    with pytest.raises(KeyError, match="test"):
        run_baseline("tfidf", coll, "dev")


def test_search_before_fit():
    with pytest.raises(RuntimeError, match="before fit"):
        TfidfRetriever().search([Query("q", "x")])


# ---------------------------------------------------------------- dense (real MiniLM from disk)


def dense_collection() -> Collection:
    docs = [
        Document("cat", "Cats", "The domestic cat is a small carnivorous mammal kept as a pet."),
        Document("rain", "Weather", "Rain is liquid water falling from clouds in the sky."),
        Document("piano", "Music", "The piano is a keyboard instrument played by pressing keys."),
        Document("bread", "Baking", "Bread is baked from flour, water and yeast in an oven."),
        Document("rocket", "Space", "A rocket engine launches spacecraft into orbit around the Earth."),
    ]
    queries = {
        "q_cat": Query("q_cat", "which pet animal purrs"),
        "q_rocket": Query("q_rocket", "how do spacecraft reach orbit"),
        "q_bread": Query("q_bread", "baking with yeast and flour"),
    }
    qrels = {"test": Qrels({"q_cat": {"cat": 1}, "q_rocket": {"rocket": 1}, "q_bread": {"bread": 1}})}
    return Collection(name="tiny", documents=docs, queries=queries, qrels=qrels)


@pytest.fixture(scope="module")
def dense():
    from genedit.baselines.dense import DenseRetriever

    retriever = DenseRetriever(device="cpu", batch_size=2)  # batch 2 < 5 docs exercises padding across batches
    retriever.fit(dense_collection())
    return retriever


@pytest.mark.integration
def test_dense_ranks_matching_doc_first(dense):
    coll = dense_collection()
    run = dense.search(list(coll.queries.values()), k=5)
    assert run.name == "dense"
    assert run.top("q_cat", 1) == ["cat"]
    assert run.top("q_rocket", 1) == ["rocket"]
    assert run.top("q_bread", 1) == ["bread"]
    for qid in coll.queries:
        assert sorted(run.ranking[qid]) == sorted(coll.doc_ids)
        assert run.scores[qid] == sorted(run.scores[qid], reverse=True)
    assert len(dense.search([coll.queries["q_cat"]], k=100).ranking["q_cat"]) == 5


@pytest.mark.integration
def test_dense_matches_brute_force_cosine(dense):
    coll = dense_collection()
    queries = list(coll.queries.values())
    run = dense.search(queries, k=5)
    docs = sentence_embeddings(dense.encoder, dense.tokenizer, [d.indexing_text() for d in coll.documents], max_length=256, batch_size=2)
    qs = sentence_embeddings(dense.encoder, dense.tokenizer, [q.text for q in queries], max_length=256, batch_size=2)
    # independent cosine: re-normalise in float64 and divide by norms explicitly
    docs64, qs64 = docs.double(), qs.double()
    cosine = (qs64 @ docs64.T) / (qs64.norm(dim=1, keepdim=True) * docs64.norm(dim=1)[None, :])
    for row, query in enumerate(queries):
        order = torch.argsort(cosine[row], descending=True).tolist()
        assert run.ranking[query.id] == [coll.doc_ids[i] for i in order]
        expected = cosine[row, order].tolist()
        assert run.scores[query.id] == pytest.approx(expected, abs=1e-5)


@pytest.mark.integration
def test_dense_truncates_to_max_length(dense):
    long_text = "word " * 2000
    emb_long = dense.encode([long_text])
    emb_cut = dense.encode([" ".join(["word"] * 254)])  # 254 words + [CLS] + [SEP] = 256 tokens
    assert emb_long.shape == (1, 384)
    np.testing.assert_allclose(emb_long, emb_cut, atol=1e-5)


@pytest.mark.integration
def test_length_sorted_batches_keep_input_order(dense):
    """Embeddings come back in input order and equal unpadded one-text-at-a-time embeddings."""
    texts = ["a much longer text about baking bread in a hot oven for an hour", "cat", "dogs bark", "", "x y z w v u t s"]
    batched = sentence_embeddings(dense.encoder, dense.tokenizer, texts, batch_size=3)
    single = torch.cat([sentence_embeddings(dense.encoder, dense.tokenizer, [t], batch_size=1) for t in texts])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=0)
    assert sentence_embeddings(dense.encoder, dense.tokenizer, []).shape == (0, single.shape[1])
