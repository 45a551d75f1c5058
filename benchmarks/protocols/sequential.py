"""sequential: a stream of `n_edits` single-document edits (adds 40%, deletes 30%, updates 30%, seeded order).

A pool of held-out documents (for adds and update texts) is kept out of the base; each document is edited at most
once; final = the corpus after the whole stream. Added documents and update texts come from any document (not only
those with test queries), so that a 1,000-edit stream fits the corpus. By default the stream is 1,000 edits, or as
many as the corpus can take (`max_edits`).
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
    derive,
    held_out_queries,
    pairs_for,
    with_test_queries,
)
from genedit.data.types import Collection, DataError, Document

MIX: tuple[tuple[str, float], ...] = (("add", 0.4), ("delete", 0.3), ("update", 0.3))


def op_counts(n: int) -> dict[str, int]:
    """How many adds, deletes and updates a stream of n edits holds."""
    counts = {op: int(n * share) for op, share in MIX}
    counts["add"] += n - sum(counts.values())
    return counts


def documents_needed(n: int) -> int:
    """Distinct documents a stream of n edits touches (adds and update texts come from a held-out pool)."""
    counts = op_counts(n)
    return counts["add"] + counts["delete"] + 2 * counts["update"]


def max_edits(n_docs: int, limit: int) -> int:
    """The longest stream, at most `limit` edits, that leaves at least one document of n_docs untouched (at least 1)."""
    n = limit
    while n > 1 and documents_needed(n) > n_docs - 1:
        n -= 1
    return n


class Sequential(Protocol):
    """Single-document edits one at a time; measured every `every` edits (retention, forgetting, learning accuracy)."""

    name = "sequential"
    default_fraction = 0.0
    labels = ("sequential-base", "sequential-oracle")
    description = ("single-document edits one at a time (adds, deletes, updates mixed); measured every `every` edits; "
                   "oracle = retrained on the final corpus.")
    columns = (*NEW_COLUMNS, Column("AP", "ap"), Column("forgetting", "forgetting"), Column("LA", "la"),
               Column("returned", "deleted_returned"), *OLD_COLUMNS)
    panels = NEW_PANELS
    stream = True

    def validate(self, spec: SplitSpec) -> None:
        """ValueError for a stream without edits or a measuring step below 1."""
        if (spec.n_edits or 0) < 1 or (spec.every or 0) < 1:
            raise ValueError(f"sequential needs n_edits >= 1 and every >= 1, got {spec.n_edits} and {spec.every}")

    def methods(self, wanted: list[str] | None, available: dict[str, list[str]], anchor: str) -> tuple[list[str], dict[str, str]]:
        """The anchor and the default add method unless told; a stream runs methods that add or update."""
        wanted = wanted or [anchor, available["add"][0]]
        chosen = [m for m in dict.fromkeys([anchor, *wanted]) if m.partition("@")[0] in available["add"] + available["update"]]
        return chosen, {m: "adds and updates only in a stream" for m in wanted if m not in chosen}

    def carve(self, collection: Collection, spec: SplitSpec, rng: random.Random) -> Split:
        """The stream, its base (without the pool), its final corpus, and one held-out query set per chunk."""
        n = spec.n_edits or 0
        every = spec.every or 1
        counts = op_counts(n)
        n_pool = counts["add"] + counts["update"]
        if documents_needed(n) > len(collection.documents) - 1:
            raise DataError(f"a stream of {n} edits needs {documents_needed(n)} distinct documents "
                            f"and leaves none untouched; the collection has {len(collection.documents)}: use fewer edits")
        # the pool of held-out texts takes documents with test queries first only as far as half of them go,
        # so that untouched documents keep test queries for retention
        with_test = with_test_queries(collection)
        rng.shuffle(with_test)
        test_share = min(len(with_test) // 2, n_pool * len(with_test) // max(len(collection.documents), 1) + 1)
        others = [d for d in collection.doc_ids if d not in set(with_test)]
        rng.shuffle(others)
        pool = with_test[:test_share] + others[: n_pool - test_share]
        if len(pool) < n_pool:
            pool += with_test[test_share : test_share + n_pool - len(pool)]
        rng.shuffle(pool)
        pool_set = set(pool)
        held = held_out_queries(collection, pool_set)
        base_docs = [d for d in collection.documents if d.id not in pool_set]
        base_ids = [d.id for d in base_docs]
        touched = rng.sample(base_ids, counts["delete"] + counts["update"])
        deletes, updates = touched[: counts["delete"]], touched[counts["delete"] :]
        adds, texts = pool[: counts["add"]], pool[counts["add"] :]
        kinds = ["add"] * counts["add"] + ["delete"] * counts["delete"] + ["update"] * counts["update"]
        rng.shuffle(kinds)
        add_it, del_it, upd_it, txt_it = iter(adds), iter(deletes), iter(updates), iter(texts)
        ops: list[EditOp] = []
        repoint: dict[str, str] = {}
        stale: list[str] = []
        for kind in kinds:
            if kind == "add":
                ops.append(EditOp("add", docs=(collection.document(next(add_it)),)))
            elif kind == "delete":
                ops.append(EditOp("delete", ids=(next(del_it),)))
            else:
                target, source = next(upd_it), collection.document(next(txt_it))
                ops.append(EditOp("update", docs=(Document(id=target, title=source.title, text=source.text),)))
                repoint[source.id] = target
                stale.append(target)
        base = derive(collection, f"{collection.name}-sequential-base", base_docs, hold_out=held)
        new_text = {op.docs[0].id: op.docs[0] for op in ops if op.op == "update"}
        gone = set(deletes)
        final_docs = [new_text.get(d.id, d) for d in base_docs if d.id not in gone]
        final_docs += [op.docs[0] for op in ops if op.op == "add"]
        stale_queries = held_out_queries(collection, stale)
        final = derive(collection, f"{collection.name}-sequential-final", final_docs, hold_out=held, drop=stale_queries, repoint=repoint)
        untouched = [d for d in base_ids if d not in set(touched)]
        chunks = []
        for start in range(0, len(ops), every):
            docs = [d for op in ops[start : start + every] if op.op != "delete" for d in op.doc_ids]
            chunks.append(pairs_for(final, HELD_OUT, docs))
        edited = [d for op in ops if op.op != "delete" for d in op.doc_ids]
        sets = {
            "edited": pairs_for(final, HELD_OUT, edited),
            "retained": pairs_for(base, HELD_OUT, untouched),
            "retained_train": pairs_for(base, "train", untouched),
            "deleted": pairs_for(base, "train", gone) + pairs_for(base, HELD_OUT, gone),
            "stale": pairs_for(base, HELD_OUT, stale) + pairs_for(base, "train", stale),
        }
        return Split(spec, base, final, ops, sets, chunks)
