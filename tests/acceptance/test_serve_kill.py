"""`genedit serve` killed with SIGKILL at random moments of an edit stream loses no acknowledged edit (bounded, loopback)."""

from __future__ import annotations

import random
import shutil
import signal
import threading
import time

import httpx
import pytest
from folder_files import tiny_folder

from benchmarks.bench_serve import free_port, start_server
from genedit.model.genir import GenIRModel
from genedit.model.storage import FolderLock

pytestmark = pytest.mark.acceptance

ROUNDS = 3  # kills
MAX_EDITS_PER_ROUND = 40


def _stream(base: str, round_: int, acked: list[tuple[str, str]], pending: list[tuple[str, str]], errors: list[str], stop: threading.Event) -> None:
    """Send edits one after another (add a document, every third edit delete the last added one) until the server dies."""
    last: str | None = None
    with httpx.Client(base_url=base, timeout=30.0) as client:
        for i in range(MAX_EDITS_PER_ROUND):
            if stop.is_set():
                return
            if i % 3 == 2 and last is not None:
                op, doc, request = "delete", last, {"method": "DELETE", "url": "/documents", "json": {"ids": [last], "method": "mask"}}
            else:
                doc = f"k{round_}-{i}"
                op, request = "add", {"method": "POST", "url": "/documents", "json": {"documents": [{"_id": doc, "title": "", "text": f"kill test document {doc} about topic {i}"}], "method": "row"}}
            pending.append((op, doc))
            try:
                r = client.request(**request)
            except httpx.HTTPError:
                return  # the server died mid-request: this edit is not acknowledged
            if r.status_code != 200:
                errors.append(r.text)
                return
            pending.pop()
            acked.append((op, doc))
            last = doc if op == "add" else None


def _check_folder(folder, acked: list[tuple[str, str]], unacked: list[tuple[str, str]]) -> None:
    model = GenIRModel.load(folder)
    entries = model.journal.entries
    assert [e.index for e in entries] == list(range(1, len(entries) + 1))
    assert all(a.fingerprint_after == b.fingerprint_before for a, b in zip(entries, entries[1:]))
    assert (entries[-1].fingerprint_after if entries else model.journal.base_fingerprint) == model.fingerprint()  # nothing half-applied
    journalled = [(e.op, d) for e in entries for d in e.doc_ids]
    position = 0
    for edit in acked:  # every acknowledged edit is in the journal, in order
        assert edit in journalled[position:], f"acknowledged {edit} missing from the journal"
        position = journalled.index(edit, position) + 1
    indexed = set(model.docids)
    state: dict[str, bool] = {}
    for op, doc in journalled:
        state[doc] = op == "add"
    assert all(indexed.__contains__(d) == present for d, present in state.items())  # journal and model agree
    for op, doc in unacked:  # wholly there (journalled, and applied: checked above) or wholly absent
        if (op, doc) not in journalled:
            assert (doc in indexed) == (op == "delete"), f"unacknowledged {op} of {doc} half there"


def test_kill_9_during_an_edit_stream_loses_no_acknowledged_edit(tmp_path):
    tiny_folder(tmp_path)
    folder = tmp_path / "model"
    rng = random.Random(23)
    acked: list[tuple[str, str]] = []
    unacked: list[tuple[str, str]] = []
    t0 = time.monotonic()
    for round_ in range(ROUNDS):
        port = free_port()
        proc = start_server(folder, str(tmp_path / "data"), port, timeout=60)
        pending: list[tuple[str, str]] = []
        errors: list[str] = []
        stop = threading.Event()
        sender = threading.Thread(target=_stream, args=(f"http://127.0.0.1:{port}", round_, acked, pending, errors, stop))
        sender.start()
        time.sleep(rng.uniform(0.5, 2.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        stop.set()
        sender.join(timeout=40)
        unacked += pending
        assert not errors
        FolderLock(folder, wait=10).acquire().release()  # the writer lock dies with the server (its edit worker is killed with it)
        _check_folder(folder, acked, unacked)
    assert sum(op == "add" for op, _ in acked) >= ROUNDS  # the stream did land edits between the kills
    port = free_port()
    proc = start_server(folder, str(tmp_path / "data"), port, timeout=60)
    try:  # the restarted server serves the state on disk and takes edits again
        health = httpx.get(f"http://127.0.0.1:{port}/health").json()
        assert health["fingerprint"] == GenIRModel.load(folder).fingerprint()
        r = httpx.post(f"http://127.0.0.1:{port}/documents", json={"documents": [{"_id": "after", "text": "after the kills"}], "method": "row"}, timeout=30)
        assert r.status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert time.monotonic() - t0 < 120
    shutil.rmtree(folder, ignore_errors=True)
