"""The live index behind `genedit serve`: queries read one immutable snapshot, edits are computed elsewhere.

Writer mode (the default): the process holds the model folder's writer lock for its whole life. Edits run in an
edit worker (genedit.serve.worker: a child process at the lowest CPU priority by default, so the edit's Python work
never holds the server's GIL; or a thread) that owns the working model: a write is validated, applied there and saved
durably into the folder (new version fsynced, HEAD renamed). The server keeps two copies of the served model (double
buffering, as faiss users do to search while adding): the tensors the write changed are read from the new version's
files into the idle copy, which is then published by one reference assignment; the copy it replaced is retired
(queries still on it finish first) and brought up to date the same way. A query captures the snapshot current when
it starts and is answered entirely by it, so an edit becomes visible all at once, right after it is acknowledged,
and a failed or refused edit is never seen. Read-only mode (replicas): no lock, no worker; a thread polls the
folder's HEAD and swaps in each new version it names.
"""

from __future__ import annotations

import concurrent.futures
import copy
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import torch
from safetensors import safe_open

from genedit.data.types import Document
from genedit.model.genir import GenIRModel
from genedit.model.storage import HEAD_FILE, FolderLock, WriteConflict
from genedit.serve.engine import Corpus, EditOutcome, RequestError, WriteRequest, resolve_corpus
from genedit.serve.worker import ProcessWorker, ThreadWorker, WorkerDied

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_QUERIES = 1024  # per search request
MAX_K = 1000
WRITER_NICE = 10  # the writer thread (and the torch threads it starts) yields the CPU to queries
WORKERS = ("process", "thread")

__all__ = ["EditResult", "LiveIndex", "ReadOnlyIndex", "RequestError", "Snapshot"]


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
    retired: bool = False  # replaced by a newer snapshot: its model is being brought up to date, not to be read

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


def _snapshot(model: GenIRModel) -> Snapshot:
    """A snapshot of a model as loaded (its fingerprint from the journal where it records it)."""
    journal = model.journal
    fp = journal.fingerprint or model.fingerprint()
    return Snapshot(model, model.version, fp, journal.base_fingerprint or fp, [e.to_json() for e in journal.entries])


def _copy_model(model: GenIRModel) -> GenIRModel:
    """A copy of a served model that shares no tensor or tokenizer with it (the second buffer)."""
    twin = GenIRModel(copy.deepcopy(model.hf), copy.deepcopy(model.tokenizer), model.docids, model.tokens,
                      max_query_length=model.max_query_length, meta=copy.deepcopy(model.meta))
    twin.hf.eval()
    twin.source, twin.version = model.source, model.version
    return twin


class _VersionTensors:
    """Reads named tensors of one saved version (safetensors, sharded or not) without loading the rest."""

    def __init__(self, folder: Path) -> None:
        index = folder / "model.safetensors.index.json"
        if index.is_file():
            self.files = {name: folder / file for name, file in json.loads(index.read_text())["weight_map"].items()}
        else:
            single = folder / "model.safetensors"
            with safe_open(str(single), framework="pt") as f:
                self.files = {name: single for name in f.keys()}

    def read(self, names: Sequence[str]) -> dict[str, torch.Tensor]:
        """The tensors of `names` (all present in the version's files)."""
        out: dict[str, torch.Tensor] = {}
        by_file: dict[Path, list[str]] = {}
        for name in names:
            by_file.setdefault(self.files[name], []).append(name)
        for path, group in by_file.items():
            with safe_open(str(path), framework="pt") as f:
                for name in group:
                    out[name] = f.get_tensor(name)
        return out


def apply_outcome(model: GenIRModel, outcome: EditOutcome, folder: Path, values: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Bring a served copy of the model (equal to the version before the write) to the saved version `outcome` names.

    The tokenizer grows by the write's tokens (or is reloaded when a rollback dropped some), the output matrix takes
    the new number of rows, and every tensor the write changed is copied in place from the version's files, so the
    copy equals what a fresh load of the folder would give (the tests compare fingerprints). Returns the tensors it
    read: pass them as `values` to bring the other served copy up without reading the files again.
    """
    if outcome.version is None:
        raise RuntimeError("a served write must name the version it saved")
    version_dir = folder / outcome.version
    if outcome.tokenizer_length < len(model.tokenizer):  # a rollback of an add: tokens dropped
        model.truncate_tokens(outcome.tokenizer_length)
    elif outcome.new_tokens:
        model.tokenizer.add_tokens(outcome.new_tokens, special_tokens=False)
    if len(model.tokenizer) != outcome.tokenizer_length:
        raise RuntimeError(f"tokenizer has {len(model.tokenizer)} tokens after the write, the saved version {outcome.tokenizer_length}")
    if model.vocab_rows != outcome.vocab_rows:
        model.resize_vocab(outcome.vocab_rows)
    state = model.hf.state_dict(keep_vars=True)
    if values is None:
        files = _VersionTensors(version_dir)
        aliases: dict[int, list[str]] = {}
        for name, tensor in state.items():
            aliases.setdefault(id(tensor), []).append(name)
        wanted: dict[int, str] = {}  # one stored name per tensor object (tied weights are stored once)
        for name in (outcome.changed if outcome.changed is not None else list(state)):
            tensor = state[name]
            stored = [n for n in aliases[id(tensor)] if n in files.files]
            if not stored:
                raise RuntimeError(f"{name} is not in the saved version {outcome.version}")
            wanted.setdefault(id(tensor), stored[0])
        values = files.read(list(wanted.values()))
    with torch.no_grad():
        for name in values:
            target = state[name]
            if tuple(target.shape) != tuple(values[name].shape):
                raise RuntimeError(f"{name}: served shape {tuple(target.shape)}, saved {tuple(values[name].shape)}")
            target.copy_(values[name])
    model.restore_docids(outcome.docids, outcome.tokens)
    model.meta = dict(outcome.meta)
    model.version = outcome.version
    return values


def _lower_priority() -> None:
    """Lower this thread's CPU priority (Linux: per thread; threads and processes it starts inherit it)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WRITER_NICE)
    except (AttributeError, OSError) as exc:  # not Linux, or not permitted: edits simply compete with queries
        log.info("could not lower the writer thread's priority: %s", exc)


class LiveIndex:
    """A model folder served live: `search` from the current snapshot, edits through one edit worker.

    `corpus`: the collection the model indexes (a Collection, a data spec such as 'default' or a BEIR folder, or
    None: the data the model was trained on). `worker`: "process" (default: edits never hold this process's GIL) or
    "thread" (no second process; quicker to start, for tests and small models).
    """

    def __init__(self, folder: str | Path, *, corpus: Corpus = None, device: torch.device | str = "cpu", read_only: bool = False,
                 poll_seconds: float = 1.0, lock_wait: float = 0.0, worker: str = "process") -> None:
        if worker not in WORKERS:
            raise ValueError(f"worker must be one of {', '.join(WORKERS)}, got {worker!r}")
        self.folder = Path(folder)
        self.device = torch.device(device)
        self.read_only = read_only
        self.poll_seconds = poll_seconds
        self.worker_kind = worker
        self._lock: FolderLock | None = None
        self._worker: ProcessWorker | ThreadWorker | None = None
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
                self._corpus = resolve_corpus(corpus, model)  # refused here (DataError) before any worker starts
                self._shadow = _copy_model(model)
                self._writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="genedit-writer", initializer=_lower_priority)
                self._submit(self._start_worker).result()
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
        for _ in range(100):  # a snapshot is retired at most once per edit, and the next one is already published
            snap = self._snapshot  # the version that answers this query, whatever lands meanwhile
            with snap.lock:
                if snap.retired:
                    continue
                run = snap.model.rank(list(queries), k=k)
            results = [list(zip(run.ranking[str(i)], run.scores[str(i)])) for i in range(len(queries))]
            return snap, results
        raise RuntimeError("no snapshot stayed current long enough to answer")

    # --- writing ----------------------------------------------------------------------------------
    def add(self, docs: Sequence[Document], queries: Mapping[str, Sequence[str]] | None = None, method: str | None = None) -> concurrent.futures.Future[EditResult]:
        """Index new documents; the future resolves once the new version is durable and served."""
        return self._submit(lambda: self._write(WriteRequest("add", docs=list(docs), queries=_plain(queries), method=method)))

    def update(self, docs: Sequence[Document], queries: Mapping[str, Sequence[str]] | None = None, method: str | None = None) -> concurrent.futures.Future[EditResult]:
        """Give indexed documents new text; the future resolves once the new version is durable and served."""
        return self._submit(lambda: self._write(WriteRequest("update", docs=list(docs), queries=_plain(queries), method=method)))

    def delete(self, ids: Sequence[str], method: str | None = None) -> concurrent.futures.Future[EditResult]:
        """Remove documents; the future resolves once the new version is durable and served (no later query returns them)."""
        return self._submit(lambda: self._write(WriteRequest("delete", ids=list(ids), method=method)))

    def rollback(self, to: int) -> concurrent.futures.Future[EditResult]:
        """Undo every edit after journal entry `to` (0: the base model), bit for bit, durably (a future, as the edits)."""
        return self._submit(lambda: self._write(WriteRequest("rollback", to=to)))

    def _submit(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        """Queue fn on the writer thread (writes are serialised there); the future carries its result or error."""
        if self.read_only or self._writer is None:
            raise ReadOnlyIndex(f"{self.folder} is served read-only here; send writes to the server that holds its writer lock")
        return self._writer.submit(fn)

    def _start_worker(self) -> None:
        """Start the edit worker (on the writer thread: a process worker dies with it); serve the folder's HEAD if it moved."""
        assert self._lock is not None
        kind = ProcessWorker if self.worker_kind == "process" else ThreadWorker
        self._worker = kind(self.folder, self._corpus, self.device, self._lock)
        if self._worker.version != self._snapshot.version:  # a worker that died had saved a write it never acknowledged
            log.warning("the folder is at %s, the server at %s: reloading", self._worker.version, self._snapshot.version)
            self._reload()

    def _stop_worker(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.close()

    def _reload(self) -> None:
        """Serve the folder's current version from a fresh load (both buffers)."""
        model = GenIRModel.load(self.folder, device=self.device)
        self._shadow = _copy_model(model)
        self._snapshot = _snapshot(model)

    def _write(self, request: WriteRequest) -> EditResult:
        """Run one write in the worker, then publish the version it saved."""
        if self._worker is None or not self._worker.alive:  # gone while idle (e.g. killed for memory): a new one first
            self._worker = None
            self._start_worker()
        assert self._worker is not None
        try:
            outcome = self._worker.call(request)
        except WorkerDied as exc:
            log.error("%s; starting a new one", exc)
            self._worker = None
            self._start_worker()  # serves whatever the dead worker made durable
            raise WorkerDied(f"{exc}: this write may or may not have landed (GET /log says); the server goes on with a new worker") from None
        self._publish(outcome)
        return EditResult(outcome.entry, outcome.version, outcome.undone)

    def _publish(self, outcome: EditOutcome) -> None:
        """Make the saved version the served one: update the idle buffer, swap, then bring the retired one up to date."""
        if outcome.version == self._snapshot.version:
            return  # nothing written (a rollback to the current entry)
        try:
            values = apply_outcome(self._shadow, outcome, self.folder)
        except Exception:  # noqa: BLE001 (the write is durable: serve it from a fresh load)
            log.exception("could not apply %s to the served copy; reloading it", outcome.version)
            self._reload()
            return
        old = self._snapshot
        self._snapshot = Snapshot(self._shadow, outcome.version, outcome.fingerprint, outcome.base_fingerprint, outcome.entries)  # the swap
        with old.lock:  # waits for the query running on the old version, if any; later ones see `retired` and move on
            old.retired = True
        try:
            apply_outcome(old.model, outcome, self.folder, values)  # the same tensors, not read again
            self._shadow = old.model
        except Exception:  # noqa: BLE001
            log.exception("could not bring the second buffer to %s; copying the served one", outcome.version)
            self._shadow = _copy_model(self._snapshot.model)

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
        """Finish the edit in progress, stop the worker and the threads, release the folder's writer lock."""
        self._stop.set()
        if self._writer is not None:
            self._writer.submit(self._stop_worker).result()  # after the writes queued before; from the thread that started it
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


def _plain(queries: Mapping[str, Sequence[str]] | None) -> dict[str, list[str]] | None:
    """Queries per document as plain lists (what crosses to a worker process)."""
    return None if queries is None else {d: list(q) for d, q in queries.items()}
