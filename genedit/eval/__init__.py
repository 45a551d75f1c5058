"""Evaluation: runs, measures (hits@k, mrr@k, recall@k), TREC run files, ranks of relevant docs in score tensors."""

from __future__ import annotations

from typing import Any

from genedit.eval.evaluate import DEFAULT_MEASURES, EvalResult, evaluate
from genedit.eval.measures import Measure, known_measures, parse_measure, parse_measures, register_measure
from genedit.eval.report import Row, format_table
from genedit.eval.trec import read_trec_run, write_trec_run
from genedit.eval.types import Run

_TENSOR_HELPERS = ("hits_at", "rank_of", "rr_at")  # need torch: imported on first use so genedit.eval stays light

__all__ = [
    "DEFAULT_MEASURES",
    "EvalResult",
    "Measure",
    "Row",
    "Run",
    "evaluate",
    "format_table",
    "hits_at",
    "known_measures",
    "parse_measure",
    "parse_measures",
    "rank_of",
    "read_trec_run",
    "register_measure",
    "rr_at",
    "write_trec_run",
]


def __getattr__(name: str) -> Any:
    """`rank_of`, `hits_at` and `rr_at` from genedit.eval.rank, imported on first use."""
    if name in _TENSOR_HELPERS:
        from genedit.eval import rank

        return getattr(rank, name)
    raise AttributeError(f"module 'genedit.eval' has no attribute {name!r}")
