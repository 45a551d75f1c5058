"""genedit: edit the corpus of a generative retrieval model without retraining it."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["GenIRModel", "load"]


def __getattr__(name: str) -> Any:
    """`genedit.load` and `genedit.GenIRModel`, imported on first use so that `import genedit` stays light."""
    if name in __all__:
        from genedit.model import genir

        return getattr(genir, name)
    raise AttributeError(f"module 'genedit' has no attribute {name!r}")
