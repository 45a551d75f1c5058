"""Evaluation: runs, measures (hits@k, mrr@k, recall@k), TREC run files."""

from genedit.eval.evaluate import DEFAULT_MEASURES, EvalResult, evaluate
from genedit.eval.measures import Measure, known_measures, parse_measure, parse_measures, register_measure
from genedit.eval.report import Row, format_table
from genedit.eval.trec import read_trec_run, write_trec_run
from genedit.eval.types import Run

__all__ = [
    "DEFAULT_MEASURES",
    "EvalResult",
    "Measure",
    "Row",
    "Run",
    "evaluate",
    "format_table",
    "known_measures",
    "parse_measure",
    "parse_measures",
    "read_trec_run",
    "register_measure",
    "write_trec_run",
]
