"""Results tables (genedit.eval) and the relevance mask analyses use (circuits.queries)."""

from __future__ import annotations

from circuits.queries import relevance_mask
from genedit.eval import Row, format_table
from genedit.model.build import tiny_model


def test_format_table_aligns_systems_measures_and_seconds() -> None:
    table = format_table([Row("genir", {"hits@1": 0.5, "mrr@10": 0.25}, 3.4), Row("a much longer system name here", {"hits@1": 1.0, "mrr@10": 1.0}, 10.0)])
    head, rule, *rows = table.splitlines()
    assert head.split() == ["system", "hits@1", "mrr@10", "seconds"] and set(rule) == {"-"}
    assert rows[0].split() == ["genir", "0.500", "0.250", "3"]
    assert len({len(line) for line in (head, rule, *rows)}) == 1
    assert format_table([]).splitlines()[0].split() == ["system", "seconds"]


def test_relevance_mask_ignores_unknown_documents() -> None:
    model = tiny_model("t5", ["a", "b", "c"])
    mask = relevance_mask(model, [{"b"}, {"a", "c", "zzz"}, set()])
    assert mask.tolist() == [[False, True, False], [True, False, True], [False, False, False]]
