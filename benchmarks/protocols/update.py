"""update: K = `fraction` (5%) of the documents, with test queries, are kept out of training; base = corpus minus K;
D_upd = as many base documents, drawn at random, each gets the text (and the held-out queries) of one document of K
under its own id; final = base with those texts replaced. The old queries of D_upd (`stale`) lose their document:
they are not trained on by the oracle.
"""

from __future__ import annotations

import random

from benchmarks.protocols.add import NEW_COLUMNS, NEW_PANELS, OLD_COLUMNS
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
    pick,
    pick_with_test,
)
from genedit.data.types import Collection, Document


class Update(Protocol):
    """The edit gives documents new texts under their own ids."""

    name = "update"
    default_fraction = 0.05
    labels = ("update-base", "update-oracle")
    description = "base = corpus minus K (kept out); D_upd get the texts of K under their own ids; oracle = retrained on the updated corpus."
    columns = (*NEW_COLUMNS, Column("stale H@10", "stale", "hits@10"), *OLD_COLUMNS)
    panels = NEW_PANELS

    def carve(self, collection: Collection, spec: SplitSpec, rng: random.Random) -> Split:
        """Keep K out of the base; D_upd take K's texts; the stale queries of D_upd are dropped from the final corpus."""
        n = count(collection, spec.fraction or 0.0)
        kept_out = pick_with_test(collection, rng, n)
        out_set = set(kept_out)
        held = held_out_queries(collection, out_set)
        base_docs = [d for d in collection.documents if d.id not in out_set]
        targets = pick(rng, [d.id for d in base_docs], n, "documents to update")
        source_of = dict(zip(targets, kept_out))  # target id -> kept-out document whose text it gets
        stale_queries = held_out_queries(collection, targets)
        base = derive(collection, f"{collection.name}-update-base", base_docs, hold_out=held)
        new_docs = {t: Document(id=t, title=collection.document(s).title, text=collection.document(s).text) for t, s in source_of.items()}
        final_docs = [new_docs.get(d.id, d) for d in base_docs]
        final = derive(collection, f"{collection.name}-update-final", final_docs, hold_out=held, drop=stale_queries,
                       repoint={s: t for t, s in source_of.items()})
        old = [d.id for d in base_docs if d.id not in source_of]
        sets = {
            "edited": pairs_for(final, HELD_OUT, targets),
            "stale": pairs_for(base, HELD_OUT, targets) + pairs_for(base, "train", targets),
            "retained": pairs_for(base, HELD_OUT, old),
            "retained_train": pairs_for(base, "train", old),
        }
        ops = [EditOp("update", docs=tuple(new_docs[t] for t in targets))]
        return Split(spec, base, final, ops, sets)
