"""`Editor`: add, delete and update documents of a GenIR model in place, journalled, with undo and rollback."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from genedit.data.types import Collection, Document
from genedit.edit.context import EditContext, EditRequest, EditSettings, Recorder, get_tensor, tensor_name
from genedit.edit.methods import make_method, methods_for
from genedit.model.components import Site
from genedit.model.genir import GenIRModel
from genedit.model.journal import JournalEntry

log = logging.getLogger(__name__)

CIRCUIT_FILE = "circuit.json"


class Editor:
    """Edits one model: every edit is validated first, applied by a registered method and journalled in the model.

    `corpus` is the collection the model indexes (documents and training queries): methods that preserve what the
    model knows (rank-one, row-solve, replay) read its texts. `circuit` says where the model retrieves; by default
    the circuit saved beside the model folder (`circuit.json`), else the shipped circuit when it is this model's,
    else one localized on demand from the corpus's training queries. `history=False` keeps no undo data in memory
    (long benchmark streams); `fingerprints=False` skips hashing the weights around each edit (the journal's
    fingerprints stay empty; about 0.3 s an edit on the default model). `targets` (e.g. ["L5.cross_attn"]) overrides the circuit's editing targets.

    Saving the edited model in place (`model.save(model.source)`) raises StaleVersion if another writer saved the
    folder since the model was loaded (no lost update); to exclude other writers from load to save, hold the lock:
    `with FolderLock(dir) as lk: m = genedit.load(dir); Editor(m, ...).add(...); m.save(dir, lock=lk)`.
    """

    def __init__(
        self,
        model: GenIRModel,
        corpus: Collection | None = None,
        circuit=None,
        *,
        targets: Sequence[Site | str] | None = None,
        settings: EditSettings | None = None,
        history: bool = True,
        fingerprints: bool = True,
    ) -> None:
        self.model = model
        self.history = history
        self.fingerprints = fingerprints
        self._circuit = circuit
        self.localized = False  # True when the circuit was localized here (callers may save it beside the model)
        if circuit is not None:
            circuit.check_model(model)
        self.ctx = EditContext(model, [], corpus, settings)
        for entry in model.journal.entries:  # documents earlier edits (other processes) added or updated: preserved too
            self.ctx.remember([Document(**d) for d in entry.documents])
        self._targets: list[Site] | None = [s if isinstance(s, Site) else Site.parse(s) for s in targets] if targets is not None else None
        for site in self._targets or []:
            model.cmap.path(site.component, site.layer)  # IndexError for a layer the model lacks
        self._fingerprint: str | None = None
        self._key_marks: dict[int, dict[Site, int]] = {}

    # --- where to edit ----------------------------------------------------------------------------
    @property
    def circuit(self):
        """The model's circuit (resolved on first use; see the class doc)."""
        if self._circuit is None:
            self._circuit = self._find_circuit()
        return self._circuit

    def _find_circuit(self):
        from circuits import Circuit, CircuitMismatchError, LocalizeConfig, localize, shipped_circuit_path

        candidates = [self.model.source / CIRCUIT_FILE] if self.model.source is not None else []
        candidates.append(shipped_circuit_path())
        for path in candidates:
            if path.exists():
                circuit = Circuit.load(path)
                try:
                    circuit.check_model(self.model)
                except CircuitMismatchError:
                    if path != shipped_circuit_path():
                        raise
                    continue
                log.info("editing targets from %s", path)
                return circuit
        if self.ctx.corpus is None or "train" not in self.ctx.corpus.qrels:
            raise ValueError("no circuit for this model: run `genedit localize --model DIR --data DATA --out DIR/circuit.json`, or pass the corpus so it can be localized")
        log.info("no circuit saved for this model: localizing it on 300 training queries")
        self.localized = True
        return localize(self.model, self.ctx.corpus, LocalizeConfig(split="train", n_queries=300, heads=False, attribution=False, lens=False, circuit=False))

    @property
    def targets(self) -> list[Site]:
        """The linears circuit methods edit (the circuit's editing targets under the settings' selection)."""
        if self._targets is None:
            self._targets = self.circuit.editing_targets(self.ctx.settings.targets)
        return self._targets

    # --- operations -------------------------------------------------------------------------------
    def add(self, docs: Sequence[Document], queries: Mapping[str, Sequence[str]] | None = None, method: str | None = None, **params: object) -> JournalEntry:
        """Index new documents (queries: optional doc id -> query texts to learn them from)."""
        docs = list(docs)
        self._check_docs(docs, queries)
        self.model.check_new_docids([d.id for d in docs])
        return self._run(EditRequest("add", [d.id for d in docs], docs, _queries(queries)), method, params)

    def delete(self, ids: Sequence[str], method: str | None = None, **params: object) -> JournalEntry:
        """Remove documents: never returned again, and (method permitting) their knowledge leaves the weights."""
        ids = list(ids)
        if not ids:
            raise ValueError("no document ids to delete")
        self._check_indexed(ids)
        if len(ids) >= self.model.n_docs:
            raise ValueError("refusing to delete every indexed document")
        return self._run(EditRequest("delete", ids), method, params)

    def update(self, docs: Sequence[Document], queries: Mapping[str, Sequence[str]] | None = None, method: str | None = None, **params: object) -> JournalEntry:
        """Give indexed documents new text (same ids)."""
        docs = list(docs)
        self._check_docs(docs, queries)
        self._check_indexed([d.id for d in docs])
        return self._run(EditRequest("update", [d.id for d in docs], docs, _queries(queries)), method, params)

    def pseudo_queries(self, docs: Sequence[Document]) -> list[list[str]]:
        """The queries an edit of these documents would train on when none are given (per document, in order)."""
        return self.ctx.queries_for(docs)

    def log(self) -> list[JournalEntry]:
        """The journal: every edit since the base model, oldest first."""
        return list(self.model.journal.entries)

    def undo(self) -> JournalEntry:
        """Revert the last edit exactly (weights, docids, tokenizer); returns its entry."""
        entry = undo_last(self.model)
        self.ctx.decoder_version += 1
        for site, n in self._key_marks.pop(entry.index, {}).items():
            del self.ctx.edit_keys[site][n:]
        for doc in entry.previous:
            self.ctx.remember([Document(**doc)])
        self._fingerprint = entry.fingerprint_before
        return entry

    def rollback(self, to: int = 0) -> list[JournalEntry]:
        """Undo every edit after journal entry `to` (0: back to the base model); returns the undone entries."""
        _check_entry(self.model, to)
        return [self.undo() for _ in range(len(self.model.journal.entries) - to)]

    def save(self, path: str | Path, *, overwrite: bool = False, lock=None) -> Path:
        """Save the model (as `GenIRModel.save`, `lock` alike) with the preservation statistics valid for it, for the next process."""
        from genedit.edit.statistics import STATS_FILE

        return self.model.save(path, overwrite=overwrite, lock=lock, extra={STATS_FILE: self.ctx.write_statistics})

    # --- internals --------------------------------------------------------------------------------
    def _run(self, req: EditRequest, method: str | None, params: Mapping[str, object]) -> JournalEntry:
        name = method or methods_for(req.op)[0]
        impl = make_method(name, req.op, **params)
        ctx = self.ctx
        if impl.uses_circuit:
            ctx.targets = self.targets
        journal = self.model.journal
        if self._fingerprint is None:
            self._fingerprint = self.model.fingerprint() if self.fingerprints else ""
        if not journal.base_fingerprint:
            journal.base_fingerprint = self._fingerprint
        previous = [dataclasses.asdict(ctx.documents[d]) for d in req.ids if req.op == "update" and d in ctx.documents]
        docids, tokens_before, vocab_before = list(self.model.docids), len(self.model.tokenizer), self.model.vocab_rows
        marks = {s: len(v) for s, v in ctx.edit_keys.items()}
        t_prepare = time.perf_counter()
        impl.prepare(ctx, req)  # cached per model: reported apart from the edit's own cost
        prepare_seconds = time.perf_counter() - t_prepare
        ctx.recorder = Recorder(self.model)
        t0 = time.perf_counter()
        try:
            impl.apply(ctx, req)
        except BaseException:
            changes = ctx.recorder.changes()
            ctx.recorder = None
            entry = JournalEntry(0, req.op, name, [], vocab_before=vocab_before, tokens_before=tokens_before, **_docid_diff(docids, self.model.docids))
            undo_entry(self.model, entry, changes)  # a failed edit leaves the model as it was
            raise
        seconds = time.perf_counter() - t0
        changes = ctx.recorder.changes()
        ctx.recorder = None
        fingerprint = self.model.fingerprint() if self.fingerprints else ""
        entry = JournalEntry(
            index=len(journal.entries) + 1,
            op=req.op,
            method=name,
            doc_ids=list(req.ids),
            params=impl.params() | ({"targets": [str(s) for s in ctx.targets]} if impl.uses_circuit else {}) | {"prepare_seconds": round(prepare_seconds, 3)},
            seconds=seconds,
            fingerprint_before=self._fingerprint,
            fingerprint_after=fingerprint,
            changed_params=sum(c.numel for c in changes),
            weight_norm=_weight_norm(changes, {tensor_name(self.model.hf, t) for t in ctx.unembedding_tensors()}),
            vocab_before=vocab_before,
            tokens_before=tokens_before,
            documents=[dataclasses.asdict(d) for d in req.docs],
            previous=previous,
            changes=changes if self.history else [],
            **_docid_diff(docids, self.model.docids),
        )
        journal.entries.append(entry)
        self._key_marks[entry.index] = marks
        self._fingerprint = fingerprint
        log.info("edit %d: %s %d docs with %s in %.1f ms", entry.index, req.op, len(req.ids), name, seconds * 1000)
        return entry

    def _check_docs(self, docs: list[Document], queries: Mapping[str, Sequence[str]] | None) -> None:
        if not docs:
            raise ValueError("no documents given")
        ids = [d.id for d in docs]
        if len(set(ids)) != len(ids):
            raise ValueError(f"document ids repeated: {sorted({i for i in ids if ids.count(i) > 1})[:5]}")
        empty = [d.id for d in docs if not (d.title.strip() or d.text.strip())]
        if empty:
            raise ValueError(f"documents with empty text: {empty[:5]}")
        unknown = sorted(set(queries or {}) - set(ids))
        if unknown:
            raise ValueError(f"queries given for documents not in this request: {unknown[:5]}")

    def _check_indexed(self, ids: list[str]) -> None:
        if len(set(ids)) != len(ids):
            raise ValueError(f"document ids repeated: {sorted({i for i in ids if ids.count(i) > 1})[:5]}")
        missing = [d for d in ids if d not in self.model]
        if missing:
            raise KeyError(f"document ids not indexed by this model: {missing[:5]}")


def _queries(queries: Mapping[str, Sequence[str]] | None) -> dict[str, list[str]]:
    return {k: [q for q in v if q.strip()] for k, v in (queries or {}).items()}


def _docid_diff(before: list[str], after: list[str]) -> dict:
    """How an edit changed the docid list: removed (position, id, token) and the count appended at the end."""
    kept = set(after)
    removed_pos = [i for i, d in enumerate(before) if d not in kept]
    remaining = [d for d in before if d in kept]
    if after[: len(remaining)] != remaining:
        raise RuntimeError("an edit reordered the docid list; only removal and appending are supported")
    from genedit.model.genir import docid_token

    return {"docids_removed": [[i, before[i], docid_token(before[i])] for i in removed_pos], "docids_added": len(after) - len(remaining)}


def _weight_norm(changes, vocabulary: set[str]) -> float:
    """Frobenius norm of the change of whole decoder weights (the output matrix and vocabulary biases excluded)."""
    total = 0.0
    for c in changes:
        if c.rows is None and c.before is not None and c.name not in vocabulary:
            total += float((c.after.double() - c.before.double()).pow(2).sum())
    return total**0.5


def undo_entry(model: GenIRModel, entry: JournalEntry, changes) -> None:
    """Restore the model to its state before `entry`: tensors, vocabulary size, tokenizer and docid list."""
    hf = model.hf
    if model.vocab_rows > entry.vocab_before:  # first: whole vocabulary-sized tensors get their old shape back
        model.resize_vocab(entry.vocab_before)
    with torch.no_grad():
        for c in changes:
            if c.before is None:
                continue
            tensor = get_tensor(hf, c.name)
            if c.rows is None:
                tensor.copy_(c.before.to(tensor.device))
            else:
                keep = [i for i, r in enumerate(c.rows) if r < tensor.shape[0]]
                tensor[[c.rows[i] for i in keep]] = c.before[keep].to(tensor.device, tensor.dtype)
    if len(model.tokenizer) > entry.tokens_before:
        model.truncate_tokens(entry.tokens_before)
    docids, tokens = list(model.docids), list(model.tokens)
    if entry.docids_added:
        del docids[-entry.docids_added :], tokens[-entry.docids_added :]
    for pos, doc, token in entry.docids_removed:
        docids.insert(pos, doc)
        tokens.insert(pos, token)
    model.restore_docids(docids, tokens)


def _check_entry(model: GenIRModel, to: int) -> None:
    n = len(model.journal.entries)
    if not 0 <= to <= n:
        raise ValueError(f"no journal entry {to}: the journal has entries 1..{n} (0 = before the first edit)")


def undo_last(model: GenIRModel) -> JournalEntry:
    """Undo the model's last journalled edit (from memory or from the journal saved with it); returns its entry."""
    if not model.journal.entries:
        raise ValueError("nothing to undo: the journal is empty")
    entry = model.journal.entries[-1]
    undo_entry(model, entry, model.journal.changes(entry))
    return model.journal.entries.pop()


def rollback_model(model: GenIRModel, to: int) -> list[JournalEntry]:
    """Undo a model's journalled edits after entry `to` (0 = the base model); returns the undone entries."""
    _check_entry(model, to)
    return [undo_last(model) for _ in range(len(model.journal.entries) - to)]


