"""BM25 baseline (bm25s): planted lexical matches, BM25 scoring against a hand computation, the registry and CLI."""

from __future__ import annotations

import math

import pytest

from genedit.baselines import Retriever, make_baseline, run_baseline
from genedit.baselines.bm25 import BM25Retriever
from genedit.data.types import Query
from tests.unit.test_baselines import lexical_collection


def test_bm25_finds_planted_matches_and_is_registered():
    coll = lexical_collection()
    retriever = make_baseline("BM25")
    assert isinstance(retriever, BM25Retriever) and isinstance(retriever, Retriever)
    retriever.fit(coll)
    run = retriever.search(list(coll.queries.values()), k=3)
    assert run.name == "bm25"
    assert run.top("q0", 1) == ["d4"] and run.top("q1", 1) == ["d1"] and run.top("q2", 1) == ["d2"] and run.top("q3", 1) == ["d5"]
    assert run.scores["q4"] == [0.0, 0.0, 0.0] and run.ranking["q4"] == ["d0", "d1", "d2"]  # no overlap: corpus order
    for qid in coll.queries:
        assert run.scores[qid] == sorted(run.scores[qid], reverse=True)
    _, result = run_baseline("bm25", coll, "test")
    assert result.aggregate["hits@1"] == 1.0


def test_bm25_score_matches_the_lucene_formula():
    coll = lexical_collection()
    r = BM25Retriever.from_collection(coll, stopwords=None)
    tokens = r.tokens([d.indexing_text() for d in coll.documents])
    n, avgdl = len(tokens), sum(len(t) for t in tokens) / len(tokens)
    df = sum(1 for t in tokens if "quokka" in t)
    idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
    doc = tokens[4]
    tf = doc.count("quokka")
    expected = idf * tf / (tf + 1.2 * (1 - 0.75 + 0.75 * len(doc) / avgdl))
    run = r.search([Query("x", "quokka")], k=1)
    assert run.ranking["x"] == ["d4"] and run.scores["x"][0] == pytest.approx(expected, rel=1e-5)


def test_bm25_from_the_command_line(tmp_path, capsys):
    from genedit.cli import main
    from genedit.data import synthetic_collection, write_beir

    data = tmp_path / "synth"
    write_beir(synthetic_collection(30, seed=3), data)
    assert main(["baseline", "bm25", "--data", str(data)]) == 0
    assert "bm25" in capsys.readouterr().out
