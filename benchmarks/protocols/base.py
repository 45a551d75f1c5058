"""What every protocol shares: the split types, the corpus-carving helpers and the Protocol base class.

A protocol is one idea in one file (benchmarks/protocols/<name>.py): how it carves a collection into a base
corpus, a final corpus, edits and query sets; the labels of its base and oracle models; which methods it runs;
the columns, plots and sentence results.md shows for it. benchmarks/protocols/__init__.py lists them.
"""

from __future__ import annotations

import hashlib
import json
import random
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import ClassVar

from genedit.data.types import Collection, DataError, Document, Qrels, Query

HELD_OUT = "test"

Pairs = list[tuple[Query, set[str]]]


@dataclass(frozen=True)
class SplitSpec:
    """What defines a split: protocol, seed, fraction of documents, and for a stream its length and measuring step."""

    protocol: str
    seed: int = 0
    fraction: float | None = None  # None: the protocol's default
    n_edits: int | None = 1000  # streams only (None once resolved for a batch protocol)
    every: int | None = 100  # streams only: measure after every `every` edits

    def to_dict(self) -> dict:
        """JSON form (a resolved spec: the fraction in force, stream fields only for a stream)."""
        return {k: v for k, v in asdict(self).items() if not (k in ("n_edits", "every") and v is None)}


@dataclass(frozen=True)
class EditOp:
    """One edit: add or update `docs` (new content under their ids), or delete `ids`."""

    op: str
    docs: tuple[Document, ...] = ()
    ids: tuple[str, ...] = ()

    @property
    def doc_ids(self) -> list[str]:
        """Ids of the documents this edit touches."""
        return list(self.ids) if self.op == "delete" else [d.id for d in self.docs]


@dataclass
class Split:
    """A protocol's base corpus, final corpus, edits and query sets (name -> (query, relevant ids) pairs)."""

    spec: SplitSpec
    base: Collection
    final: Collection
    ops: list[EditOp]
    sets: dict[str, Pairs] = field(default_factory=dict)
    # streams: per chunk of `every` edits, the held-out query set of the documents it added or updated
    chunks: list[Pairs] = field(default_factory=list)

    def summary(self) -> dict:
        """Counts that describe the split (for results.json)."""
        ops: dict[str, int] = {}
        for op in self.ops:
            ops[op.op] = ops.get(op.op, 0) + len(op.doc_ids)
        return {
            **self.spec.to_dict(),
            "base_docs": len(self.base.documents),
            "final_docs": len(self.final.documents),
            "edited_docs": ops,
            "n_ops": len(self.ops),
            "queries": {name: len(pairs) for name, pairs in self.sets.items()},
        }


@dataclass(frozen=True)
class Column:
    """One column of a protocol's results table: the row's `key`, or `measure` of the query-set block under it."""

    head: str
    key: str
    measure: str | None = None


class Protocol(ABC):
    """One editing protocol: its split, its models, its methods and how results.md shows it."""

    name: ClassVar[str]
    default_fraction: ClassVar[float]
    labels: ClassVar[tuple[str, str]]  # cache labels of the base and the oracle model
    description: ClassVar[str]  # results.md's sentence about the protocol
    columns: ClassVar[tuple[Column, ...]]  # the results table between the system and the cost columns
    panels: ClassVar[tuple[tuple[str, str | None], ...]]  # the bar plots: (row key, measure or None for a number)
    stream: ClassVar[bool] = False  # single-document edits one at a time, measured every `every` edits

    @abstractmethod
    def carve(self, collection: Collection, spec: SplitSpec, rng: random.Random) -> Split:
        """The split of `collection` under a resolved spec (deterministic in `rng`)."""

    def resolve(self, spec: SplitSpec) -> SplitSpec:
        """The spec with this protocol's defaults in force (and no stream fields for a batch protocol)."""
        fraction = self.default_fraction if spec.fraction is None else spec.fraction
        return replace(spec, fraction=fraction) if self.stream else replace(spec, fraction=fraction, n_edits=None, every=None)

    def validate(self, spec: SplitSpec) -> None:
        """ValueError for a fraction outside (0, 0.5]."""
        fraction = self.resolve(spec).fraction
        if not 0.0 < fraction <= 0.5:  # type: ignore[operator]
            raise ValueError(f"fraction must be in (0, 0.5], got {fraction}")

    def methods(self, wanted: list[str] | None, available: dict[str, list[str]], anchor: str) -> tuple[list[str], dict[str, str]]:
        """The methods this protocol runs (the anchor first) and why the others wanted are skipped."""
        wanted = wanted or available[self.name]
        chosen = [m for m in dict.fromkeys([anchor, *wanted]) if m.partition("@")[0] in available[self.name]]
        return chosen, {m: f"not available for {self.name}" for m in wanted if m not in chosen}


# --- helpers ---------------------------------------------------------------------------------------
def collection_hash(collection: Collection) -> str:
    """Hash of a collection's content (documents, the queries its qrels use, qrels): identifies training data."""
    h = hashlib.sha256()
    for d in collection.documents:
        h.update(json.dumps([d.id, d.title, d.text]).encode())
    for split in sorted(collection.qrels):
        for qid, docs in collection.qrels[split].judgments.items():
            q = collection.queries.get(qid)
            h.update(json.dumps([split, qid, q.text if q else None, sorted(docs.items())]).encode())
    return h.hexdigest()


def queries_by_doc(collection: Collection) -> dict[str, dict[str, list[str]]]:
    """doc id -> split -> query ids judged relevant to it."""
    out: dict[str, dict[str, list[str]]] = {}
    for split, qrels in collection.qrels.items():
        for qid in qrels.query_ids():
            for d in sorted(qrels.relevant(qid)):
                out.setdefault(d, {}).setdefault(split, []).append(qid)
    return out


def derive(
    collection: Collection,
    name: str,
    documents: list[Document],
    *,
    hold_out: Iterable[str] = (),
    drop: Iterable[str] = (),
    repoint: dict[str, str] | None = None,
) -> Collection:
    """A new collection over `documents` (never mutates the source).

    Judgments on documents not in `documents` are dropped; queries in `drop` are dropped; queries in `hold_out`
    move to the held-out ("test") split; `repoint` maps old doc id -> new doc id in judgments (update texts).
    """
    repoint = repoint or {}
    held, dropped = set(hold_out), set(drop)
    keep = {d.id for d in documents}
    judgments: dict[str, dict[str, dict[str, int]]] = {}
    for split, qrels in collection.qrels.items():
        for qid, docs in qrels.judgments.items():
            if qid in dropped:
                continue
            mapped = {repoint.get(d, d): g for d, g in docs.items()}
            mapped = {d: g for d, g in mapped.items() if d in keep}
            if not any(g > 0 for g in mapped.values()):
                continue
            target = HELD_OUT if qid in held else split
            judgments.setdefault(target, {}).setdefault(qid, {}).update(mapped)
    queries = {qid: collection.queries[qid] for js in judgments.values() for qid in js}
    return Collection(name=name, documents=documents, queries=queries, qrels={s: Qrels(j) for s, j in judgments.items()})


def pairs_for(collection: Collection, split: str, docs: Iterable[str]) -> Pairs:
    """(query, relevant ids) of `split` whose relevant documents intersect `docs` (relevance kept whole)."""
    wanted = set(docs)
    if split not in collection.qrels:
        return []
    return [(q, rel) for q, rel in collection.split(split) if rel & wanted]


def check_test_queries(collection: Collection) -> None:
    """DataError unless the collection has held-out test queries (every protocol judges edits on them)."""
    if HELD_OUT not in collection.qrels or not collection.qrels[HELD_OUT].query_ids():
        raise DataError(f"collection {collection.name!r} has no {HELD_OUT} queries: the protocols judge edits on held-out test queries")


def pick(rng: random.Random, candidates: list[str], n: int, what: str) -> list[str]:
    """n of the candidates at random; DataError when there are fewer."""
    if n > len(candidates):
        raise DataError(f"need {n} {what} but the collection has only {len(candidates)}")
    return rng.sample(candidates, n)


def count(collection: Collection, fraction: float) -> int:
    """How many documents a fraction of the collection is (at least one)."""
    return max(1, round(len(collection.documents) * fraction))


def with_test_queries(collection: Collection) -> list[str]:
    """Documents with test queries, those whose every query is a test query first (order: corpus order)."""
    by_doc = queries_by_doc(collection)
    only = [d for d in collection.doc_ids if set(by_doc.get(d, {})) == {HELD_OUT}]
    mixed = [d for d in collection.doc_ids if HELD_OUT in by_doc.get(d, {}) and d not in set(only)]
    return only + mixed


def held_out_queries(collection: Collection, docs: Iterable[str]) -> set[str]:
    """Every query (any split) judged relevant to one of `docs`."""
    by_doc = queries_by_doc(collection)
    return {q for d in docs for qs in by_doc.get(d, {}).values() for q in qs}


def _n_only(collection: Collection) -> int:
    by_doc = queries_by_doc(collection)
    return sum(1 for d in collection.doc_ids if set(by_doc.get(d, {})) == {HELD_OUT})


def pick_with_test(collection: Collection, rng: random.Random, n: int) -> list[str]:
    """n documents with test queries, drawn among those whose every query is a test query when enough exist."""
    candidates = with_test_queries(collection)
    n_only = _n_only(collection)
    pool = candidates[:n_only] if n_only >= n else candidates
    return pick(rng, pool, n, "documents with test queries")
