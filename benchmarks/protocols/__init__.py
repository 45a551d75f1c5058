"""Seeded, documented splits of a collection for the editing protocols, one file per protocol, listed here.

Every protocol turns one collection into
- `base`: the corpus the unedited model is trained on,
- `final`: the corpus after the edits, which the oracle is retrained on,
- `ops`: the edits, in order (one batch for add/delete/update, one document each for a stream),
- `sets`: the query sets the harness measures every system on.

Rules shared by all protocols (the edit never sees a query it is judged on):
- documents that are added or whose new text comes in an update are taken from documents with test queries
  (sequential: from any document, so that a 1,000-edit stream fits the corpus), and *every* query of theirs
  is held out: it is a test query in `base` and `final`, so neither the base, the oracle nor the edit trains on it;
- the edit sees only the new documents themselves (the editor derives pseudo-queries from their text);
- retention is measured on the queries of documents no edit touches.

Each protocol's module says how it carves the corpus (fractions are of the corpus's document count). A new
protocol is a subclass of `Protocol` in its own module and one entry in PROTOCOLS.
"""

from __future__ import annotations

import random

from benchmarks.protocols.add import Add
from benchmarks.protocols.base import HELD_OUT, Column, EditOp, Pairs, Protocol, Split, SplitSpec, check_test_queries, collection_hash
from benchmarks.protocols.delete import Delete
from benchmarks.protocols.sequential import Sequential
from benchmarks.protocols.update import Update
from genedit.data.types import Collection

PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (Add(), Delete(), Update(), Sequential())}

__all__ = ["HELD_OUT", "PROTOCOLS", "Column", "EditOp", "Pairs", "Protocol", "Split", "SplitSpec", "collection_hash", "make_split",
           "protocol", "resolve"]


def protocol(name: str) -> Protocol:
    """The protocol called `name`; ValueError names the known ones."""
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; choose from {', '.join(PROTOCOLS)} or all")
    return PROTOCOLS[name]


def resolve(spec: SplitSpec) -> SplitSpec:
    """The spec validated, with its protocol's defaults in force (ValueError for a bad protocol, fraction or stream)."""
    p = protocol(spec.protocol)
    p.validate(spec)
    return p.resolve(spec)


def make_split(collection: Collection, spec: SplitSpec) -> Split:
    """The split of `collection` described by `spec` (deterministic in the spec's seed)."""
    spec = resolve(spec)
    check_test_queries(collection)
    rng = random.Random(f"{spec.protocol}:{spec.seed}")
    return PROTOCOLS[spec.protocol].carve(collection, spec, rng)
