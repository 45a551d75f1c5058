"""genedit: edit the corpus of a generative retrieval model without retraining it."""

__version__ = "0.1.0"
