"""The edit engine behind `genedit serve`: the working model, its Editor, and durable saves; served models never touch it.

The engine validates a write (`RequestError` with an HTTP status when refused, the model untouched), applies it to
its own working model, saves the new version durably into the folder (under the folder's writer lock), and returns
an `EditOutcome`: what a served copy of the model must change to equal the new version (docids, tokenizer growth,
the names of the tensors the edit wrote). It runs in a worker process (`genedit serve`) or a thread (tests, API).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from genedit.data import load_indexed
from genedit.data.types import Collection, Document
from genedit.edit import Editor, methods_for
from genedit.model.genir import DocumentExists, GenIRModel
from genedit.model.journal import JournalEntry
from genedit.model.storage import FolderLock

log = logging.getLogger(__name__)


class RequestError(Exception):
    """A request the index refuses before touching the model; `status` is its HTTP status (404, 409, 422)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status

    def __reduce__(self):
        return (RequestError, (self.status, str(self)))


@dataclass
class WriteRequest:
    """One write sent to the engine: add / update (docs, queries), delete (ids), rollback (to)."""

    op: str
    docs: list[Document] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    queries: dict[str, list[str]] | None = None
    method: str | None = None
    to: int = 0


@dataclass
class EditOutcome:
    """A durable write, and what a copy of the model before it must change to equal the new version."""

    entry: int  # the journal entry made (or, for a rollback, returned to)
    version: str | None
    fingerprint: str
    base_fingerprint: str
    entries: list[dict]  # journal metadata, oldest first
    undone: list[int]
    docids: list[str]
    tokens: list[str]
    meta: dict
    tokenizer_length: int
    new_tokens: list[str]  # tokens appended to the tokenizer by this write ([] if none)
    vocab_rows: int  # rows of the output matrix after the write
    changed: list[str] | None  # state-dict names of the tensors written; None: any may have changed (reload all)


Corpus = Collection | str | None  # a collection, a data spec ('default', a BEIR folder), or None: what the model was trained on


def resolve_corpus(corpus: Corpus, model: GenIRModel) -> Collection | None:
    """The collection an engine preserves: given, loaded from a spec, or the data the model records (None if none)."""
    if isinstance(corpus, Collection):
        return corpus
    spec = corpus if corpus is not None else model.meta.get("data")
    return load_indexed(spec, model.docids) if spec is not None else None


class EditEngine:
    """Applies writes to its own working model of a folder and saves each one durably under the folder's lock."""

    def __init__(self, folder: str | Path, corpus: Corpus, device: torch.device | str, lock: FolderLock) -> None:
        self.folder = Path(folder)
        self.device = torch.device(device)
        self.lock = lock
        self._corpus = corpus
        self.model, self.editor = self._open()

    def _open(self) -> tuple[GenIRModel, Editor]:
        model = GenIRModel.load(self.folder, device=self.device)
        return model, Editor(model, corpus=resolve_corpus(self._corpus, model))

    @property
    def version(self) -> str | None:
        """The version the working model equals (the folder's HEAD while this engine holds the lock)."""
        return self.model.version

    def run(self, request: WriteRequest) -> EditOutcome:
        """Apply one write durably; RequestError (model untouched) when refused."""
        if request.op == "rollback":
            return self._rollback(request.to)
        model, ed = self.model, self.editor
        op = request.op
        if op not in ("add", "update", "delete"):
            raise RequestError(422, f"unknown operation {op!r}")
        if request.method is not None and request.method not in methods_for(op):
            raise RequestError(422, f"method {request.method!r} cannot {op}; choose from {', '.join(methods_for(op))}")
        before = _shapes(model)
        tokens_before = len(model.tokenizer)
        try:
            if op == "add":
                entry = ed.add(request.docs, request.queries, method=request.method)
            elif op == "update":
                entry = ed.update(request.docs, request.queries, method=request.method)
            else:
                entry = ed.delete(request.ids, method=request.method)
        except (ValueError, KeyError) as exc:  # refused by the editor's checks, or a failed edit it undid: the model is as it was
            status = 409 if isinstance(exc, DocumentExists) else 404 if isinstance(exc, KeyError) else 422
            raise RequestError(status, str(exc.args[0] if exc.args else exc)) from None
        self._save(revert=ed.undo)
        return self._outcome(entry.index, entry.fingerprint_after, [], _written([entry], before, model), tokens_before)

    def _rollback(self, to: int) -> EditOutcome:
        model, ed = self.model, self.editor
        n = len(model.journal.entries)
        if not 0 <= to <= n:
            raise RequestError(422, f"no journal entry {to}: the journal has entries 1..{n} (0 = before the first edit)")
        tokens_before = len(model.tokenizer)
        if to == n:
            return self._outcome(to, model.journal.fingerprint or model.fingerprint(), [], [], tokens_before)
        try:
            undone = ed.rollback(to)
            fingerprint = model.fingerprint()
            if fingerprint != undone[-1].fingerprint_before:
                raise RuntimeError(f"rollback produced model {fingerprint}, but the journal says {undone[-1].fingerprint_before}")
        except BaseException:
            self.reopen()
            raise
        self._save(revert=self.reopen)
        return self._outcome(to, fingerprint, [e.index for e in undone], None, tokens_before)

    def _save(self, revert) -> None:
        """Save the working model durably; on a failed save, revert it (or reload it from the folder)."""
        try:
            self.model.save(self.folder, lock=self.lock)
        except BaseException:
            try:
                revert()
            except Exception:  # noqa: BLE001 (the durable folder is the truth: start again from it)
                self.reopen()
            raise
        ed = self.editor
        if ed.localized:  # a circuit localized for this edit serves the next ones too (and after a restart)
            ed.localized = False
            try:
                ed.circuit.save(self.folder / "circuit.json")
            except OSError as exc:
                log.warning("could not keep the localized circuit beside the model: %s", exc)

    def reopen(self) -> None:
        """Reload the working model from the durable folder (after a failure that may have left it half-changed)."""
        log.warning("reloading the working model from %s", self.folder)
        self.model, self.editor = self._open()

    def _outcome(self, entry: int, fingerprint: str, undone: list[int], changed: list[str] | None, tokens_before: int) -> EditOutcome:
        model = self.model
        journal = model.journal
        n_tokens = len(model.tokenizer)
        new_tokens = model.tokenizer.convert_ids_to_tokens(list(range(tokens_before, n_tokens))) if n_tokens > tokens_before else []
        return EditOutcome(entry, model.version, fingerprint, journal.base_fingerprint or fingerprint, [e.to_json() for e in journal.entries], undone,
                           list(model.docids), list(model.tokens), dict(model.meta), n_tokens, new_tokens, model.vocab_rows, changed)


def _shapes(model: GenIRModel) -> dict[str, tuple[int, ...]]:
    return {name: tuple(t.shape) for name, t in model.hf.state_dict(keep_vars=True).items()}


def _written(entries: Sequence[JournalEntry], before: Mapping[str, tuple[int, ...]], model: GenIRModel) -> list[str] | None:
    """State-dict names an edit wrote: its journal changes plus every tensor whose shape changed (None: unknown)."""
    names: set[str] = set()
    for entry in entries:
        if entry.changed_params and not entry.changes:  # an editor that keeps no undo data: the changes are unknown
            return None
        names |= {c.name for c in entry.changes}
    names |= {name for name, shape in _shapes(model).items() if before.get(name) != shape}
    return sorted(names)
