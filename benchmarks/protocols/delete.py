"""delete: base = corpus; D_del = `fraction` (10%) of the documents, drawn at random; final = corpus minus D_del."""

from __future__ import annotations

import random

from benchmarks.protocols.base import HELD_OUT, Column, EditOp, Protocol, Split, SplitSpec, count, derive, pairs_for, pick
from genedit.data.types import Collection


class Delete(Protocol):
    """The edit deletes documents; judged on what their queries still find and on what the weights still know."""

    name = "delete"
    default_fraction = 0.1
    labels = ("full", "delete-oracle")
    description = "base = whole corpus; the edit deletes D_del; oracle = retrained without D_del."
    columns = (Column("returned", "deleted_returned"), Column("agree@1 oracle", "oracle_agreement"),
               Column("agree@1 oracle (old)", "oracle_agreement_old"), Column("resurrect H@10", "resurrection"),
               Column("old H@1", "retained", "hits@1"), Column("old H@10", "retained", "hits@10"), Column("old MRR@10", "retained", "mrr@10"),
               Column("lost@1", "lost_top1"))
    panels = (("retained", "hits@10"), ("retained", "hits@1"), ("oracle_agreement", None))

    def carve(self, collection: Collection, spec: SplitSpec, rng: random.Random) -> Split:
        """Train the base on everything; the oracle without D_del; D_del's queries (train and test) are `deleted`."""
        n = count(collection, spec.fraction or 0.0)
        gone = set(pick(rng, collection.doc_ids, n, "documents"))
        base = derive(collection, f"{collection.name}-full", list(collection.documents))
        final = derive(collection, f"{collection.name}-delete-final", [d for d in collection.documents if d.id not in gone])
        kept = [d for d in collection.doc_ids if d not in gone]
        sets = {
            "retained": pairs_for(base, HELD_OUT, kept),
            "retained_train": pairs_for(base, "train", kept),
            "deleted": pairs_for(base, "train", gone) + pairs_for(base, HELD_OUT, gone),
        }
        ids = tuple(d for d in collection.doc_ids if d in gone)
        return Split(spec, base, final, [EditOp("delete", ids=ids)], sets)
