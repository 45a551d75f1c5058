"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest

from genedit.data import synthetic_collection
from genedit.data.types import Collection


@pytest.fixture(scope="module")
def collection() -> Collection:
    """A synthetic collection of 24 documents with 2 queries each (train and test)."""
    return synthetic_collection(24, queries_per_doc=2, seed=3)
