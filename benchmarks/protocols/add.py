"""add: D_new = `fraction` (default 10%) of the documents, all with test queries; base = corpus minus D_new; final = corpus."""

from __future__ import annotations

import random

from benchmarks.protocols.base import (
    HELD_OUT,
    Column,
    EditOp,
    Protocol,
    Split,
    SplitSpec,
    count,
    derive,
    held_out_queries,
    pairs_for,
    pick_with_test,
)
from genedit.data.types import Collection

NEW_COLUMNS = (Column("new H@1", "edited", "hits@1"), Column("new H@5", "edited", "hits@5"), Column("new H@10", "edited", "hits@10"),
               Column("new MRR@10", "edited", "mrr@10"), Column("efficacy H@1", "efficacy", "hits@1"))
OLD_COLUMNS = (Column("old H@1", "retained", "hits@1"), Column("old H@10", "retained", "hits@10"), Column("lost@1", "lost_top1"))
NEW_PANELS: tuple[tuple[str, str | None], ...] = (("edited", "hits@10"), ("edited", "hits@1"), ("retained", "hits@10"))


class Add(Protocol):
    """The edit adds documents the base never saw, from their text alone."""

    name = "add"
    default_fraction = 0.1
    labels = ("add-base", "full")
    description = "base = corpus minus D_new; the edit adds D_new (pseudo-queries only); oracle = retrained on the whole corpus."
    columns = NEW_COLUMNS + OLD_COLUMNS
    panels = NEW_PANELS

    def carve(self, collection: Collection, spec: SplitSpec, rng: random.Random) -> Split:
        """Hold D_new (and every query of theirs) out of the base; the oracle trains on the whole corpus."""
        new = set(pick_with_test(collection, rng, count(collection, spec.fraction or 0.0)))
        held = held_out_queries(collection, new)
        docs_new = [d for d in collection.documents if d.id in new]
        base = derive(collection, f"{collection.name}-add-base", [d for d in collection.documents if d.id not in new], hold_out=held)
        final = derive(collection, f"{collection.name}-add-final", list(collection.documents), hold_out=held)
        old = base.doc_ids
        sets = {
            "edited": pairs_for(final, HELD_OUT, new),
            "retained": pairs_for(base, HELD_OUT, old),
            "retained_train": pairs_for(base, "train", old),
        }
        return Split(spec, base, final, [EditOp("add", docs=tuple(docs_new))], sets)
