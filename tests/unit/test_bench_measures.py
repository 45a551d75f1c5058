"""Edit measures on hand-built examples with known answers: continual AP/forgetting/LA, rank-1 losses, deletion checks."""

from __future__ import annotations

import pytest
import torch

from benchmarks import judge as M
from genedit.data.types import Query
from genedit.eval.types import Run


def test_continual_from_a_given_matrix():
    P = [[0.9], [0.8, 0.6], [0.7, 0.5, 0.9]]
    c = M.continual(P)
    assert c.ap == pytest.approx([0.9, 0.7, 0.7])
    # t=1: task 0 fell 0.9 -> 0.8; t=2: task 0 max(0.9, 0.8) - 0.7 = 0.2, task 1 0.6 - 0.5 = 0.1
    assert c.forgetting == pytest.approx([0.0, 0.1, 0.15])
    assert c.la == pytest.approx([0.9, 0.75, 0.8])


def test_continual_skips_tasks_without_queries_and_rejects_a_short_row():
    c = M.continual([[0.5], [0.4, None], [0.5, None, 1.0]])
    assert c.ap == pytest.approx([0.5, 0.4, 0.75]) and c.forgetting == pytest.approx([0.0, 0.1, 0.0]) and c.la == pytest.approx([0.5, 0.5, 0.75])
    with pytest.raises(ValueError, match="P\\[1\\]"):
        M.continual([[0.5], [0.4]])


def _run(rankings: dict[str, list[str]]) -> Run:
    return Run(rankings, {q: [1.0 / (i + 1) for i in range(len(r))] for q, r in rankings.items()})


def test_rank1_losses_returned_and_agreement():
    pairs = [(Query("q1", "one"), {"a"}), (Query("q2", "two"), {"b"}), (Query("q3", "three"), {"c"})]
    before = _run({"q1": ["a", "b"], "q2": ["b", "a"], "q3": ["a", "c"]})
    after = _run({"q1": ["x", "a"], "q2": ["b", "x"], "q3": ["c", "a"]})
    lost = M.lost_top1(before, after, pairs)
    assert [(x.query_id, x.was, x.now) for x in lost] == [("q1", "a", "x")]
    assert M.gained_top1(before, after, pairs) == 1  # q3
    assert M.returned(after, pairs, {"x"}) == 2 and M.returned(after, pairs, {"x"}, k=1) == 1 and M.returned(after, pairs, {"zzz"}) == 0
    assert M.top1_agreement(before, after, pairs) == pytest.approx(1 / 3)
    assert M.top1_agreement(before, after, []) is None
    m = M.set_measures(after, pairs)
    assert m == {"hits@1": pytest.approx(2 / 3), "hits@5": 1.0, "hits@10": 1.0, "mrr@10": pytest.approx((0.5 + 1 + 1) / 3, abs=1e-6)}
    assert M.set_measures(after, []) is None


def test_resurrection_puts_old_rows_back_into_a_copy():
    from genedit.model.build import tiny_model

    model = tiny_model("t5", ["a", "b", "c", "d"])
    queries = ["alpha query", "beta words", "gamma", "delta text here"]
    before = model.rank(queries, k=4)
    rows = model.docid_rows().detach().clone()
    model.remove_documents(["b", "d"])
    assert model.docids == ["a", "c"]
    probe = M.restore_rows(model, ["b", "d"], rows[[1, 3]])
    assert sorted(probe.docids) == ["a", "b", "c", "d"] and model.docids == ["a", "c"]  # the edited model is untouched
    after = probe.rank(queries, k=4)
    for q in before.ranking:  # the same rows: the same ranking and scores
        assert after.ranking[q] == before.ranking[q]
        assert after.scores[q] == pytest.approx(before.scores[q], abs=1e-5)
    # a method that kept the token gets its row overwritten with the old one
    with torch.no_grad():
        model.cmap.unembedding(model.hf).weight[model.docid_token_ids[model.doc_index("a")]] = 0.0
    again = M.restore_rows(model, ["a", "b", "d"], rows[[0, 1, 3]]).rank(queries, k=4)
    assert {q: set(r) for q, r in again.ranking.items()} == {q: set(r) for q, r in before.ranking.items()}
    assert all(again.scores[q] == pytest.approx(before.scores[q], abs=1e-5) for q in before.ranking)


def test_peak_memory_sees_an_allocation():
    import mmap
    import time

    with M.PeakMemory(interval=0.001) as mem:
        block = mmap.mmap(-1, 64 * 2**20)  # fresh pages: a malloc could reuse memory an earlier test freed
        block.write(b"\x01" * (64 * 2**20))
        time.sleep(0.05)
        block.close()
    assert mem.growth_mb > 40 and mem.peak_mb >= mem.start_mb + 40
