"""The live index behind `genedit serve`: queries read one immutable snapshot, edits land on a shadow copy.

Writer mode (the default): the process holds the model folder's writer lock for its whole life. One writer thread,
at a lower CPU priority, owns the *working* model and its `Editor`; an edit is validated, applied there, saved
durably into the folder (new version fsynced, HEAD renamed), and only then is a copy of the working model published
as the new snapshot by one reference assignment. Queries capture the snapshot current when they start and are
answered entirely by it, so an edit becomes visible all at once, right after it is acknowledged, and a failed or
refused edit is never seen. Read-only mode (replicas): no lock, no working model; a thread polls the folder's HEAD
and swaps in each new version it names.
"""

from __future__ import annotations

import concurrent.futures
import copy
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import torch

from genedit.data.types import Collection, Document
from genedit.edit import Editor, methods_for
from genedit.model.genir import GenIRModel
from genedit.model.storage import HEAD_FILE, FolderLock, WriteConflict

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_QUERIES = 1024  # per search request
MAX_K = 1000
WRITER_NICE = 10  # the writer thread (and the torch threads it starts) yields the CPU to queries


class RequestError(Exception):
    """A request the index refuses before touching the model; `status` is its HTTP status (404, 409, 422)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ReadOnlyIndex(WriteConflict):
    """A write sent to a read-only replica."""


@dataclass
class Snapshot:
    """One immutable served version: a model no thread edits, and what /health and /log say about it."""

    model: GenIRModel
    version: str | None
    fingerprint: str
    base_fingerprint: str
    entries: list[dict]  # journal metadata, oldest first
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # one query at a time per model

    @property
    def n_docs(self) -> int:
        """Documents this version indexes."""
        return self.model.n_docs


@dataclass
class EditResult:
    """An acknowledged edit: the journal entry it made (or returned to) and the durable version serving it."""

    entry: int
    version: str | None
    undone: list[int] = field(default_factory=list)


def _snapshot(model: GenIRModel, fingerprint: str | None = None) -> Snapshot:
    """A snapshot of a model as loaded or saved (its fingerprint from the journal where it records it)."""
    journal = model.journal
    fp = fingerprint or (journal.entries[-1].fingerprint_after if journal.entries else journal.base_fingerprint) or model.fingerprint()
    return Snapshot(model, model.version, fp, journal.base_fingerprint or fp, [e.to_json() for e in journal.entries])


def _copy_model(model: GenIRModel, reuse: GenIRModel | None = None) -> GenIRModel:
    """A copy of a model that shares no tensor or tokenizer with it (the journal's undo tensors are left behind).

    `reuse`: an earlier copy that nothing edits (the snapshot being served); each of its tensors equal to the
    model's (same name, shape, dtype, values) is shared instead of copied, so an edit copies only what it changed.
    """
    memo: dict[int, object] = {}
    if reuse is not None:
        old = dict(reuse.hf.named_parameters(remove_duplicate=False)) | dict(reuse.hf.named_buffers(remove_duplicate=False))
        mine = dict(model.hf.named_parameters(remove_duplicate=False)) | dict(model.hf.named_buffers(remove_duplicate=False))
        with torch.no_grad():
            for name, tensor in mine.items():
                prev = old.get(name)
                if prev is not None and prev.shape == tensor.shape and prev.dtype == tensor.dtype and prev.device == tensor.device and torch.equal(prev, tensor):
                    memo[id(tensor)] = prev
    twin = GenIRModel(copy.deepcopy(model.hf, memo), copy.deepcopy(model.tokenizer), model.docids, model.tokens,
                      max_query_length=model.max_query_length, meta=copy.deepcopy(model.meta))
    twin.hf.eval()
    twin.source = model.source
    twin.version = model.version  # the version it is a copy of
    twin.journal.base_fingerprint = model.journal.base_fingerprint
    twin.journal.entries = [copy.copy(e) for e in model.journal.entries]
    for e in twin.journal.entries:
        e.changes = []
    twin.journal.source = model.journal.source
    return twin


def _lower_priority() -> None:
    """Lower this thread's CPU priority (Linux: per thread; threads it starts inherit it)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WRITER_NICE)
    except (AttributeError, OSError) as exc:  # not Linux, or not permitted: edits simply compete with queries
        log.info("could not lower the writer thread's priority: %s", exc)




class LiveIndex:
    """A model folder served live: `search` from the current snapshot, edits through one writer thread."""

    def __init__(self, folder: str | Path, *, corpus: Collection | Callable[[GenIRModel], Collection | None] | None = None,
                 device: torch.device | str = "cpu", read_only: bool = False, poll_seconds: float = 1.0, lock_wait: float = 0.0) -> None:
        self.folder = Path(folder)
        self.device = torch.device(device)
        self.read_only = read_only
        self.poll_seconds = poll_seconds
        self._corpus = corpus
        self._lock: FolderLock | None = None
        self._working: GenIRModel | None = None
        self._editor: Editor | None = None
        self._writer: concurrent.futures.ThreadPoolExecutor | None = None
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        if not read_only:
            self._lock = FolderLock(self.folder, wait=lock_wait).acquire()  # FolderLocked: another writer has it
        try:
            model = GenIRModel.load(self.folder, device=self.device)
            self._snapshot = _snapshot(model)
            if read_only:
                self._poller = threading.Thread(target=self._follow_head, name="genedit-head-poller", daemon=True)
                self._poller.start()
            else:
                self._writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="genedit-writer", initializer=_lower_priority)
                self._submit(lambda: self._open_working(model)).result()
        except BaseException:
            self.close()
            raise

    # --- reading ----------------------------------------------------------------------------------
    @property
    def snapshot(self) -> Snapshot:
        """The version being served (capture it once per request: it is replaced, never changed)."""
        return self._snapshot

    def search(self, queries: Sequence[str], k: int = 10) -> tuple[Snapshot, list[list[tuple[str, float]]]]:
        """Top-k (id, score) per query, all from the one snapshot current when the call starts."""
        if not queries:
            raise RequestError(422, "no queries given")
        if len(queries) > MAX_QUERIES:
            raise RequestError(422, f"at most {MAX_QUERIES} queries per request, got {len(queries)}")
        if not 1 <= k <= MAX_K:
            raise RequestError(422, f"k must be between 1 and {MAX_K}, got {k}")
        empty = [i for i, q in enumerate(queries) if not q.strip()]
        if empty:
            raise RequestError(422, f"query {empty[0]} is empty")
        snap = self._snapshot  # the version that answers this query, whatever lands meanwhile
        with snap.lock:
            run = snap.model.rank(list(queries), k=k)
        results = [list(zip(run.ranking[str(i)], run.scores[str(i)])) for i in range(len(queries))]
        return snap, results

    # --- writing ----------------------------------------------------------------------------------
    def add(self, docs: Sequence[Document], queries: Mapping[str, Sequence[str]] | None = None, method: str | None = None) -> concurrent.futures.Future[EditResult]:
        """Index new documents; the future resolves once the new version is durable and served."""
        return self._submit(lambda: self._edit("add", list(docs), queries, method))

    def update(self, docs: Sequence[Document], queries: Mapping[str, Sequence[str]] | None = None, method: str | None = None) -> concurrent.futures.Future[EditResult]:
        """Give indexed documents new text; the future resolves once the new version is durable and served."""
        return self._submit(lambda: self._edit("update", list(docs), queries, method))

    def delete(self, ids: Sequence[str], method: str | None = None) -> concurrent.futures.Future[EditResult]:
        """Remove documents; the future resolves once the new version is durable and served (no later query returns them)."""
        return self._submit(lambda: self._edit("delete", list(ids), None, method))

    def rollback(self, to: int) -> concurrent.futures.Future[EditResult]:
        """Undo every edit after journal entry `to` (0: the base model), bit for bit, durably (a future, as the edits)."""
        return self._submit(lambda: self._rollback(to))

    def _submit(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        """Queue fn on the writer thread (edits are serialised there); the future carries its result or error."""
        if self.read_only or self._writer is None:
            raise ReadOnlyIndex(f"{self.folder} is served read-only here; send writes to the server that holds its writer lock")
        return self._writer.submit(fn)

    def _open_working(self, served: GenIRModel) -> None:
        self._working = _copy_model(served)  # the journal's undo tensors are read from the folder when needed
        corpus = self._corpus(self._working) if callable(self._corpus) else self._corpus
        self._editor = Editor(self._working, corpus=corpus)

    def _reopen(self) -> None:
        """After a failure that may have left the working model half-changed: reload it from the durable folder."""
        log.warning("reloading the working model from %s", self.folder)
        self._open_working(GenIRModel.load(self.folder, device=self.device))

    def _edit(self, op: str, items: list, queries: Mapping[str, Sequence[str]] | None, method: str | None) -> EditResult:
        model, ed = self._working, self._editor
        assert model is not None and ed is not None
        if method is not None and method not in methods_for(op):
            raise RequestError(422, f"method {method!r} cannot {op}; choose from {', '.join(methods_for(op))}")
        if op == "delete":
            self._check_ids(model, items)
        else:
            self._check_docs(model, op, items, queries)
        try:
            if op == "add":
                entry = ed.add(items, queries, method=method)
            elif op == "update":
                entry = ed.update(items, queries, method=method)
            else:
                entry = ed.delete(items, method=method)
        except (ValueError, KeyError) as exc:  # refused by the editor before the model changed (it undoes a failed edit)
            raise RequestError(404 if isinstance(exc, KeyError) else 422, str(exc.args[0] if exc.args else exc)) from None
        self._commit(lambda: ed.undo(), entry.fingerprint_after)
        return EditResult(entry.index, self._snapshot.version)

    def _rollback(self, to: int) -> EditResult:
        model, ed = self._working, self._editor
        assert model is not None and ed is not None
        n = len(model.journal.entries)
        if not 0 <= to <= n:
            raise RequestError(422, f"no journal entry {to}: the journal has entries 1..{n} (0 = before the first edit)")
        if to == n:
            return EditResult(to, self._snapshot.version)
        try:
            undone = ed.rollback(to)
            fingerprint = model.fingerprint()
            if fingerprint != undone[-1].fingerprint_before:
                raise RuntimeError(f"rollback produced model {fingerprint}, but the journal says {undone[-1].fingerprint_before}")
        except BaseException:
            self._reopen()
            raise
        self._commit(self._reopen, fingerprint)
        return EditResult(to, self._snapshot.version, [e.index for e in undone])

    def _commit(self, revert: Callable[[], object], fingerprint: str) -> None:
        """Save the working model durably, then publish a copy of it; on a failed save, revert the working model."""
        model, ed = self._working, self._editor
        assert model is not None and ed is not None
        try:
            model.save(self.folder, lock=self._lock)
        except BaseException:
            try:
                revert()
            except Exception:  # noqa: BLE001 (the durable folder is the truth: start again from it)
                self._reopen()
            raise
        self._snapshot = _snapshot(_copy_model(model, reuse=self._snapshot.model), fingerprint)  # the swap: queries starting now see this version
        if ed.localized:  # a circuit localized for this edit serves the next ones too (and after a restart)
            ed.localized = False
            try:
                ed.circuit.save(self.folder / "circuit.json")
            except OSError as exc:
                log.warning("could not keep the localized circuit beside the model: %s", exc)

    @staticmethod
    def _check_docs(model: GenIRModel, op: str, docs: list[Document], queries: Mapping[str, Sequence[str]] | None) -> None:
        if not docs:
            raise RequestError(422, "no documents given")
        ids = [d.id for d in docs]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise RequestError(422, f"document ids repeated in the request: {repeated[:5]}")
        empty = [d.id for d in docs if not (d.title.strip() or d.text.strip())]
        if empty:
            raise RequestError(422, f"documents with empty text: {empty[:5]}")
        unknown = sorted(set(queries or {}) - set(ids))
        if unknown:
            raise RequestError(422, f"queries given for documents not in this request: {unknown[:5]}")
        if op == "add":
            clash = [i for i in ids if i in model.docids]
            if clash:
                raise RequestError(409, f"document ids already indexed: {clash[:5]}")
            try:
                model.check_new_docids(ids)
            except ValueError as exc:
                raise RequestError(422, str(exc)) from None
        else:
            LiveIndex._check_indexed(model, ids)

    @staticmethod
    def _check_ids(model: GenIRModel, ids: list[str]) -> None:
        if not ids:
            raise RequestError(422, "no document ids to delete")
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise RequestError(422, f"document ids repeated in the request: {repeated[:5]}")
        LiveIndex._check_indexed(model, ids)
        if len(ids) >= model.n_docs:
            raise RequestError(422, "refusing to delete every indexed document")

    @staticmethod
    def _check_indexed(model: GenIRModel, ids: list[str]) -> None:
        indexed = set(model.docids)
        missing = [i for i in ids if i not in indexed]
        if missing:
            raise RequestError(404, f"document ids not indexed: {missing[:5]}")

    # --- replicas ---------------------------------------------------------------------------------
    def _follow_head(self) -> None:
        """Read-only mode: swap in each version the folder's HEAD names (polled), loaded away from the served one."""
        _lower_priority()
        head = self.folder / HEAD_FILE
        while not self._stop.wait(self.poll_seconds):
            try:
                current = head.read_text().strip() if head.is_file() else None
            except OSError:
                continue
            if current == self._snapshot.version:
                continue
            try:
                model = GenIRModel.load(self.folder, device=self.device)
            except (OSError, ValueError) as exc:  # the version went away mid-load (pruned): the next poll retries
                log.info("could not load %s yet: %s", current, exc)
                continue
            self._snapshot = _snapshot(model)
            log.info("now serving %s (%s)", model.version, self._snapshot.fingerprint)

    def wait_for_version(self, version: str | None, timeout: float = 10.0) -> bool:
        """Wait until `version` is served (tests, replicas); False on timeout."""
        deadline = time.monotonic() + timeout
        while self._snapshot.version != version:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    # --- life -------------------------------------------------------------------------------------
    def close(self) -> None:
        """Finish the edit in progress, stop the threads, release the folder's writer lock."""
        self._stop.set()
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None
        if self._poller is not None:
            self._poller.join(timeout=5)
            self._poller = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> LiveIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
