"""Measures: hand-computed values, parsing, evaluate(), and parity with the ir-measures package."""

from __future__ import annotations

import math
import random

import pytest

from genedit.data.types import Qrels
from genedit.eval import EvalResult, Run, evaluate, known_measures, parse_measure, parse_measures
from genedit.eval.measures import MRR, Hits, Recall


def make_run(ranking: dict[str, list[str]], name: str = "test") -> Run:
    return Run(ranking=ranking, scores={q: [float(len(docs) - i) for i in range(len(docs))] for q, docs in ranking.items()}, name=name)


# ---------------------------------------------------------------- hand-computed


@pytest.mark.parametrize(
    ("measure", "ranking", "relevant", "expected"),
    [
        (Hits(1), ["a", "b", "c"], {"a"}, 1.0),
        (Hits(1), ["b", "a", "c"], {"a"}, 0.0),
        (Hits(2), ["b", "a", "c"], {"a"}, 1.0),
        (Hits(10), [], {"a"}, 0.0),
        (MRR(10), ["b", "c", "a"], {"a"}, 1 / 3),
        (MRR(10), ["b", "c", "a"], {"a", "c"}, 1 / 2),
        (MRR(2), ["b", "c", "a"], {"a"}, 0.0),
        (MRR(3), ["a"], {"a"}, 1.0),
        (Recall(2), ["a", "x", "b"], {"a", "b"}, 0.5),
        (Recall(3), ["a", "x", "b"], {"a", "b"}, 1.0),
        (Recall(3), ["a", "x", "b"], {"a", "b", "c", "d"}, 0.5),
        (Recall(5), ["x"], {"a"}, 0.0),
        (Recall(5), ["a", "a"], {"a", "b"}, 0.5),  # a duplicated id counts once
    ],
)
def test_hand_computed(measure, ranking, relevant, expected):
    assert measure.compute(ranking, relevant) == pytest.approx(expected, abs=1e-12)


def test_evaluate_hand_computed_with_missing_query():
    qrels = Qrels({"q1": {"d1": 1}, "q2": {"d2": 2, "d3": 1}, "q3": {"d4": 1}, "q4": {"d5": 0}})
    run = make_run({"q1": ["d9", "d1"], "q2": ["d3", "d7", "d2"], "extra": ["d1"]})
    result = evaluate(run, qrels, ["hits@1", "hits@2", "MRR@10", "recall@2"])
    assert isinstance(result, EvalResult)
    # q4 has no relevant document: not judged; q3 is missing from the run: counts as 0.
    assert result.n_queries == 3
    assert result.n_missing == 1
    assert set(result.per_query) == {"q1", "q2", "q3"}
    assert result.per_query["q1"] == {"hits@1": 0.0, "hits@2": 1.0, "mrr@10": 0.5, "recall@2": 1.0}
    assert result.per_query["q2"] == {"hits@1": 1.0, "hits@2": 1.0, "mrr@10": 1.0, "recall@2": 0.5}
    assert result.per_query["q3"] == {"hits@1": 0.0, "hits@2": 0.0, "mrr@10": 0.0, "recall@2": 0.0}
    assert list(result.aggregate) == ["hits@1", "hits@2", "mrr@10", "recall@2"]
    assert result.aggregate["hits@1"] == pytest.approx(1 / 3)
    assert result.aggregate["hits@2"] == pytest.approx(2 / 3)
    assert result.aggregate["mrr@10"] == pytest.approx(1.5 / 3)
    assert result.aggregate["recall@2"] == pytest.approx(1.5 / 3)
    row = result.as_row()
    assert "hits@1=0.3333" in row and "n=3" in row and "\n" not in row
    assert "mrr@10" in result.format() and str(result) == row


def test_evaluate_default_measures():
    result = evaluate(make_run({"q": ["a", "b"]}), Qrels({"q": {"b": 1}}))
    assert list(result.aggregate) == ["hits@1", "hits@5", "hits@10", "mrr@10"]
    assert result.aggregate == {"hits@1": 0.0, "hits@5": 1.0, "hits@10": 1.0, "mrr@10": 0.5}


def test_evaluate_empty_qrels_gives_nan():
    result = evaluate(make_run({"q": ["a"]}), Qrels({}), ["hits@1"])
    assert result.n_queries == 0 and math.isnan(result.aggregate["hits@1"])


# ---------------------------------------------------------------- parsing


def test_parse_case_insensitive_and_aliases():
    assert parse_measure("hits@10") == Hits(10)
    assert parse_measure("HITS@10") == Hits(10)
    assert parse_measure(" Mrr @ 10 ") == MRR(10)
    assert parse_measure("success@3") == Hits(3)
    assert parse_measure("RR@10") == MRR(10)
    assert parse_measure("R@100") == Recall(100)
    assert str(parse_measure("Recall@100")) == "recall@100"
    assert parse_measures(["hits@1", "HITS@1", "mrr@10"]) == [Hits(1), MRR(10)]
    assert parse_measures("hits@5") == [Hits(5)]
    assert {"hits", "mrr", "recall"} <= set(known_measures())


@pytest.mark.parametrize("spec", ["ndcg@10", "foo@1", "precision@5"])
def test_unknown_measure_lists_known(spec):
    with pytest.raises(ValueError, match="unknown measure") as info:
        parse_measure(spec)
    for name in ("hits", "mrr", "recall"):
        assert name in str(info.value)


@pytest.mark.parametrize("spec", ["hits@0", "hits@-1", "hits@x", "hits@1.5", "mrr@"])
def test_bad_cutoff(spec):
    with pytest.raises(ValueError, match="cutoff|cannot parse"):
        parse_measure(spec)


@pytest.mark.parametrize("spec", ["hits", "", "@10", "hits@@10"])
def test_malformed(spec):
    with pytest.raises(ValueError, match="hits"):
        parse_measure(spec)


def test_constructor_rejects_bad_cutoff():
    with pytest.raises(ValueError):
        Hits(0)
    with pytest.raises(ValueError):
        MRR(True)  # type: ignore[arg-type]


def test_evaluate_rejects_unknown_measure():
    with pytest.raises(ValueError, match="known measures"):
        evaluate(make_run({"q": ["a"]}), Qrels({"q": {"a": 1}}), ["ndcg@10"])


# ---------------------------------------------------------------- parity with ir-measures


def random_case(seed: int, n_queries: int = 60, n_docs: int = 40) -> tuple[Run, Qrels]:
    rng = random.Random(seed)
    docs = [f"d{i}" for i in range(n_docs)]
    judgments: dict[str, dict[str, int]] = {}
    ranking: dict[str, list[str]] = {}
    scores: dict[str, list[float]] = {}
    for q in range(n_queries):
        qid = f"q{q}"
        judged = rng.sample(docs, rng.randint(1, 8))
        grades = {d: rng.choice([0, 1, 1, 2]) for d in judged}
        grades[judged[0]] = max(grades[judged[0]], 1)  # at least one relevant
        judgments[qid] = grades
        retrieved = rng.sample(docs, rng.randint(0, 30))
        # distinct, strictly decreasing scores, so sorting by score (ir-measures) equals run order
        values = sorted(rng.sample(range(1, 10**6), len(retrieved)), reverse=True)
        ranking[qid] = retrieved
        scores[qid] = [v / 1000.0 for v in values]
    return Run(ranking=ranking, scores=scores), Qrels(judgments)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_parity_with_ir_measures(seed):
    ir_measures = pytest.importorskip("ir_measures")
    from ir_measures import RR, R, Success

    run, qrels = random_case(seed)
    ours = evaluate(run, qrels, ["hits@1", "hits@5", "hits@10", "mrr@10", "recall@5", "recall@20", "recall@100"])
    pairs = {
        "hits@1": Success @ 1,
        "hits@5": Success @ 5,
        "hits@10": Success @ 10,
        "mrr@10": RR @ 10,
        "recall@5": R @ 5,
        "recall@20": R @ 20,
        "recall@100": R @ 100,
    }
    ir_run = {q: dict(zip(docs, run.scores[q])) for q, docs in run.ranking.items() if docs}
    theirs: dict[str, dict[str, float]] = {}
    for metric in ir_measures.iter_calc(list(pairs.values()), qrels.judgments, ir_run):
        theirs.setdefault(metric.query_id, {})[str(metric.measure)] = metric.value
    for qid, values in ours.per_query.items():
        for name, measure in pairs.items():
            expected = theirs.get(qid, {}).get(str(measure), 0.0)  # a query with an empty run scores 0
            assert values[name] == pytest.approx(expected, abs=1e-9), (qid, name)
    # aggregate over all judged queries (ir-measures skips queries absent from the run, we count them as 0)
    for name, measure in pairs.items():
        expected = sum(theirs.get(q, {}).get(str(measure), 0.0) for q in qrels.query_ids()) / len(qrels.query_ids())
        assert ours.aggregate[name] == pytest.approx(expected, abs=1e-9)
    # and where every query is retrieved, the plain ir-measures aggregate agrees too
    full = {q: docs for q, docs in ir_run.items()}
    covered = Qrels({q: g for q, g in qrels.judgments.items() if q in full})
    agg = ir_measures.calc_aggregate(list(pairs.values()), covered.judgments, full)
    ours_covered = evaluate(run, covered, list(pairs))
    for name, measure in pairs.items():
        assert ours_covered.aggregate[name] == pytest.approx(agg[measure], abs=1e-9)
