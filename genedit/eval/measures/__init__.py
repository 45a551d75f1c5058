"""IR measures in the style of ir_measures: one module per measure, parsed from strings like "mrr@10"."""

from genedit.eval.measures.base import Measure, known_measures, parse_measure, parse_measures, register_measure
from genedit.eval.measures.hits import Hits
from genedit.eval.measures.mrr import MRR
from genedit.eval.measures.recall import Recall

__all__ = ["Measure", "Hits", "MRR", "Recall", "known_measures", "parse_measure", "parse_measures", "register_measure"]
