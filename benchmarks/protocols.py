"""Seeded, documented splits of a collection for the editing protocols (add, delete, update, sequential).

Every protocol turns one collection into
- `base`: the corpus the unedited model is trained on,
- `final`: the corpus after the edits, which the oracle is retrained on,
- `ops`: the edits, in order (one batch for add/delete/update, one document each for sequential),
- `sets`: the query sets the harness measures every system on.

Rules shared by all protocols (the edit never sees a query it is judged on):
- documents that are added or whose new text comes in an update are taken from documents with test queries
  (sequential: from any document, so that a 1,000-edit stream fits the corpus), and *every* query of theirs
  is held out: it is a test query in `base` and `final`, so neither the base, the oracle nor the edit trains on it;
- the edit sees only the new documents themselves (the editor derives pseudo-queries from their text);
- retention is measured on the queries of documents no edit touches.

Protocols (fractions are of the corpus's document count):
- add: D_new = `fraction` (default 10%) of the documents, all with test queries; base = corpus minus D_new;
  final = corpus.
- delete: base = corpus; D_del = `fraction` (10%) of the documents, drawn at random; final = corpus minus D_del.
- update: K = `fraction` (5%) of the documents, with test queries, are kept out of training; base = corpus
  minus K; D_upd = as many base documents, drawn at random, each gets the text (and the held-out queries) of
  one document of K under its own id; final = base with those texts replaced. The old queries of D_upd
  (`stale`) lose their document: they are not trained on by the oracle.
- sequential: a pool of held-out documents (for adds and update texts) is kept out of the base; a stream of
  `n_edits` single-document edits mixes adds (40%), deletes (30%) and updates (30%) in a seeded random order,
  each document edited at most once; final = the corpus after the whole stream.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from genedit.data.types import Collection, DataError, Document, Qrels, Query

PROTOCOLS: tuple[str, ...] = ("add", "delete", "update", "sequential")
DEFAULT_FRACTION: dict[str, float] = {"add": 0.1, "delete": 0.1, "update": 0.05, "sequential": 0.0}
SEQUENTIAL_MIX: tuple[tuple[str, float], ...] = (("add", 0.4), ("delete", 0.3), ("update", 0.3))
HELD_OUT = "test"

Pairs = list[tuple[Query, set[str]]]


@dataclass(frozen=True)
class SplitSpec:
    """What defines a split: protocol, seed, fraction of documents, and for sequential the stream length."""

    protocol: str
    seed: int = 0
    fraction: float | None = None  # None: the protocol's default (DEFAULT_FRACTION)
    n_edits: int = 1000  # sequential only
    every: int = 100  # sequential only: measure after every `every` edits

    def resolved_fraction(self) -> float:
        """The fraction in force for this protocol."""
        return DEFAULT_FRACTION[self.protocol] if self.fraction is None else self.fraction

    def validate(self) -> None:
        """ValueError for an unknown protocol, a fraction outside (0, 0.5] or a bad stream shape."""
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {self.protocol!r}; choose from {', '.join(PROTOCOLS)} or all")
        if self.protocol != "sequential" and not 0.0 < self.resolved_fraction() <= 0.5:
            raise ValueError(f"fraction must be in (0, 0.5], got {self.resolved_fraction()}")
        if self.protocol == "sequential" and (self.n_edits < 1 or self.every < 1):
            raise ValueError(f"sequential needs n_edits >= 1 and every >= 1, got {self.n_edits} and {self.every}")

    def to_dict(self) -> dict:
        """JSON form, with the fraction resolved (so the cache key changes when a default does)."""
        out = asdict(self)
        out["fraction"] = self.resolved_fraction()
        if self.protocol != "sequential":
            out.pop("n_edits")
            out.pop("every")
        return out


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
    # sequential: per chunk of `every` edits, the held-out query set of the documents it added or updated
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


def _queries_by_doc(collection: Collection) -> dict[str, dict[str, list[str]]]:
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


def _check_test_queries(collection: Collection) -> None:
    if HELD_OUT not in collection.qrels or not collection.qrels[HELD_OUT].query_ids():
        raise DataError(f"collection {collection.name!r} has no {HELD_OUT} queries: the protocols judge edits on held-out test queries")


def _pick(rng: random.Random, candidates: list[str], n: int, what: str) -> list[str]:
    if n > len(candidates):
        raise DataError(f"need {n} {what} but the collection has only {len(candidates)}")
    return rng.sample(candidates, n)


def _count(collection: Collection, fraction: float) -> int:
    return max(1, round(len(collection.documents) * fraction))


def _with_test_queries(collection: Collection) -> list[str]:
    """Documents with test queries, those whose every query is a test query first (order: corpus order)."""
    by_doc = _queries_by_doc(collection)
    only = [d for d in collection.doc_ids if set(by_doc.get(d, {})) == {HELD_OUT}]
    mixed = [d for d in collection.doc_ids if HELD_OUT in by_doc.get(d, {}) and d not in set(only)]
    return only + mixed


def _held_out_queries(collection: Collection, docs: Iterable[str]) -> set[str]:
    by_doc = _queries_by_doc(collection)
    return {q for d in docs for qs in by_doc.get(d, {}).values() for q in qs}


# --- protocols -------------------------------------------------------------------------------------
def make_split(collection: Collection, spec: SplitSpec) -> Split:
    """The split of `collection` described by `spec` (deterministic in the spec's seed)."""
    spec.validate()
    _check_test_queries(collection)
    rng = random.Random(f"{spec.protocol}:{spec.seed}")
    return {"add": _add, "delete": _delete, "update": _update, "sequential": _sequential}[spec.protocol](collection, spec, rng)


def _add(collection: Collection, spec: SplitSpec, rng: random.Random) -> Split:
    new = set(_pick_with_test(collection, rng, _count(collection, spec.resolved_fraction())))
    held = _held_out_queries(collection, new)
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


def _n_only(collection: Collection) -> int:
    by_doc = _queries_by_doc(collection)
    return sum(1 for d in collection.doc_ids if set(by_doc.get(d, {})) == {HELD_OUT})


def _pick_with_test(collection: Collection, rng: random.Random, n: int) -> list[str]:
    """n documents with test queries, drawn among those whose every query is a test query when enough exist."""
    candidates = _with_test_queries(collection)
    n_only = _n_only(collection)
    pool = candidates[:n_only] if n_only >= n else candidates
    return _pick(rng, pool, n, "documents with test queries")


def _delete(collection: Collection, spec: SplitSpec, rng: random.Random) -> Split:
    n = _count(collection, spec.resolved_fraction())
    gone = set(_pick(rng, collection.doc_ids, n, "documents"))
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


def _update(collection: Collection, spec: SplitSpec, rng: random.Random) -> Split:
    n = _count(collection, spec.resolved_fraction())
    kept_out = _pick_with_test(collection, rng, n)
    out_set = set(kept_out)
    held = _held_out_queries(collection, out_set)
    base_docs = [d for d in collection.documents if d.id not in out_set]
    targets = _pick(rng, [d.id for d in base_docs], n, "documents to update")
    source_of = dict(zip(targets, kept_out))  # target id -> kept-out document whose text it gets
    stale_queries = _held_out_queries(collection, targets)
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


def _sequential(collection: Collection, spec: SplitSpec, rng: random.Random) -> Split:
    n = spec.n_edits
    counts = {op: int(n * share) for op, share in SEQUENTIAL_MIX}
    counts["add"] += n - sum(counts.values())
    n_pool = counts["add"] + counts["update"]
    if n_pool + counts["delete"] + counts["update"] > len(collection.documents) - 1:
        raise DataError(f"a stream of {n} edits needs {n_pool + counts['delete'] + counts['update']} distinct documents "
                        f"and leaves none untouched; the collection has {len(collection.documents)}: use fewer edits")
    # the pool of held-out texts takes documents with test queries first only as far as half of them go,
    # so that untouched documents keep test queries for retention
    with_test = _with_test_queries(collection)
    rng.shuffle(with_test)
    test_share = min(len(with_test) // 2, n_pool * len(with_test) // max(len(collection.documents), 1) + 1)
    others = [d for d in collection.doc_ids if d not in set(with_test)]
    rng.shuffle(others)
    pool = with_test[:test_share] + others[: n_pool - test_share]
    if len(pool) < n_pool:
        pool += with_test[test_share : test_share + n_pool - len(pool)]
    rng.shuffle(pool)
    pool_set = set(pool)
    held = _held_out_queries(collection, pool_set)
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
    stale_queries = _held_out_queries(collection, stale)
    final = derive(collection, f"{collection.name}-sequential-final", final_docs, hold_out=held, drop=stale_queries, repoint=repoint)
    untouched = [d for d in base_ids if d not in set(touched)]
    chunks = []
    for start in range(0, len(ops), spec.every):
        docs = [d for op in ops[start : start + spec.every] if op.op != "delete" for d in op.doc_ids]
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


# --- pseudo-queries ----------------------------------------------------------------------------------
_SENTENCE = re.compile(r"(?<=[.!?:])\s+(?=[A-Z(`'\"])")


def pseudo_queries(doc: Document, limit: int = 3) -> list[str]:
    """Texts an edit may use for a new document: its title and up to `limit` sentences of its text (as the trainer)."""
    sentences = [p.strip() for p in _SENTENCE.split(doc.text) if len(p.split()) >= 4][:limit]
    out = ([doc.title] if doc.title else []) + sentences
    return out or [doc.text[:200]]


def efficacy_pairs(docs: Iterable[Document], limit: int = 3) -> Pairs:
    """(pseudo-query, {doc id}) pairs: the queries an edit of these documents may have used."""
    return [(Query(f"pq:{d.id}:{i}", text), {d.id}) for d in docs for i, text in enumerate(pseudo_queries(d, limit))]
