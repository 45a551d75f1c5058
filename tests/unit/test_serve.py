"""genedit serve's API end to end on a tiny saved model (FastAPI test client): search, edits, errors, token, lock."""

from __future__ import annotations

import os
import shutil
import threading

import pytest
from folder_files import tiny_folder, tree

from genedit.model.genir import GenIRModel
from genedit.model.storage import FolderLock, FolderLocked
from genedit.serve import LiveIndex, create_app

fastapi_testclient = pytest.importorskip("fastapi.testclient")



@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    collection = tiny_folder(root)
    return root, collection


@pytest.fixture(params=["thread"])
def served(base, tmp_path, request):
    """A fresh copy of the tiny model served by a LiveIndex (edit worker: a thread unless parametrized); yields (folder, index, client, collection)."""
    root, collection = base
    folder = tmp_path / "model"
    shutil.copytree(root / "model", folder)
    index = LiveIndex(folder, corpus=collection, worker=request.param)
    client = fastapi_testclient.TestClient(create_app(index))
    yield folder, index, client, collection
    index.close()


def _doc(d, **change) -> dict:
    return {"_id": d.id, "title": d.title, "text": d.text} | change


def _all_ids(client) -> list[str]:
    result = client.post("/search", json={"queries": ["anything at all"], "k": 1000}).json()
    return [hit["id"] for hit in result["results"][0]]


def test_health_and_search(served):
    folder, index, client, collection = served
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["n_docs"] == 20 and health["fingerprint"] == GenIRModel.load(folder).fingerprint()
    body = client.post("/search", json={"queries": [collection.documents[0].text, "second query"], "k": 3}).json()
    assert len(body["results"]) == 2 and all(len(r) == 3 for r in body["results"])
    assert all(set(hit) == {"id", "score"} for r in body["results"] for hit in r)
    direct = GenIRModel.load(folder).rank([collection.documents[0].text], k=3).ranking["0"]
    assert [h["id"] for h in body["results"][0]] == direct  # the same ranking as the model itself


@pytest.mark.parametrize("served", ["thread", "process"], indirect=True)
def test_add_update_delete_are_durable_when_acknowledged_and_rollback_restores(served):
    folder, index, client, collection = served
    base_fp = client.get("/health").json()["fingerprint"]
    new = collection.documents[20]
    r = client.post("/documents", json={"documents": [_doc(new)], "queries": {new.id: ["a query for it"]}, "method": "row"})
    assert r.status_code == 200 and r.json()["entry"] == 1
    version = r.json()["version"]
    assert (folder / "HEAD").read_text().strip() == version  # durable before the answer: HEAD names it
    assert new.id in GenIRModel.load(folder).docids and new.id in _all_ids(client)
    r = client.put("/documents", json={"documents": [_doc(collection.documents[1], text="zebras and lattices")], "method": "row"})
    assert r.status_code == 200 and r.json()["entry"] == 2
    r = client.request("DELETE", "/documents", json={"ids": ["d000"], "method": "mask"})
    assert r.status_code == 200 and r.json()["entry"] == 3
    assert "d000" not in _all_ids(client)  # a query after the ack never returns it
    on_disk = GenIRModel.load(folder)
    health = client.get("/health").json()
    assert health["n_docs"] == 20 and health["version"] == on_disk.version and health["fingerprint"] == on_disk.fingerprint()
    log = client.get("/log").json()
    assert [e["op"] for e in log["entries"]] == ["add", "update", "delete"] and log["base_fingerprint"] == base_fp
    r = client.post("/rollback", json={"to": 0})
    assert r.status_code == 200 and r.json()["undone"] == [3, 2, 1]
    assert client.get("/health").json()["fingerprint"] == base_fp == GenIRModel.load(folder).fingerprint()
    assert client.get("/log").json()["entries"] == []


def test_default_method_localizes_once_and_keeps_the_circuit(served):
    folder, index, client, collection = served
    r = client.post("/documents", json={"documents": [_doc(collection.documents[21])]})
    assert r.status_code == 200, r.text
    assert (folder / "circuit.json").is_file()
    assert client.get("/log").json()["entries"][0]["method"] == "rank-one"


@pytest.mark.parametrize(
    "method, path, body, status, message",
    [
        ("post", "/documents", b'{"documents": [', 422, "malformed JSON"),
        ("post", "/documents", {"documents": [{"_id": "n1", "title": "", "text": "  "}]}, 422, "empty text"),
        ("post", "/documents", {"documents": [{"_id": "d001", "title": "", "text": "x"}]}, 409, "already indexed"),
        ("post", "/documents", {"documents": [{"_id": "a b", "title": "", "text": "x"}]}, 422, "invalid document id"),
        ("post", "/documents", {"documents": [{"_id": "n1", "text": "x"}, {"_id": "n1", "text": "y"}]}, 422, "repeated"),
        ("post", "/documents", {"documents": [{"_id": "n1", "text": "x"}], "method": "mask"}, 422, "cannot add"),
        ("post", "/documents", {"documents": [{"_id": "n1", "text": "x"}], "queries": {"n2": ["q"]}}, 422, "not in this request"),
        ("post", "/documents", {"documents": []}, 422, "documents"),
        ("put", "/documents", {"documents": [{"_id": "nope", "text": "x"}]}, 404, "not indexed"),
        ("delete", "/documents", {"ids": ["nope"]}, 404, "not indexed"),
        ("delete", "/documents", {"ids": "d001"}, 422, "ids"),
        ("post", "/rollback", {"to": 5}, 422, "no journal entry 5"),
        ("post", "/search", {"queries": [""]}, 422, "empty"),
        ("post", "/search", {"queries": ["x"], "k": 0}, 422, "k must be"),
    ],
)
def test_bad_input_gets_one_clear_4xx_and_leaves_the_model_untouched(served, method, path, body, status, message):
    folder, index, client, _ = served
    before, health = tree(folder), client.get("/health").json()
    kwargs = {"content": body, "headers": {"content-type": "application/json"}} if isinstance(body, bytes) else {"json": body}
    r = client.request(method.upper(), path, **kwargs)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and message in detail and "\n" not in detail
    assert tree(folder) == before and client.get("/health").json() == health


def test_writes_need_the_token_when_one_is_set(served):
    folder, index, _, collection = served
    client = fastapi_testclient.TestClient(create_app(index, token="s3cret"))
    body = {"ids": ["d002"], "method": "mask"}
    assert client.request("DELETE", "/documents", json=body).status_code == 401
    assert client.request("DELETE", "/documents", json=body, headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert client.post("/rollback", json={"to": 0}, headers={"Authorization": "Basic s3cret"}).status_code == 401
    assert client.post("/search", json={"queries": ["x"]}).status_code == 200  # reads need no token
    assert client.get("/health").json()["n_docs"] == 20  # nothing was written
    r = client.request("DELETE", "/documents", json=body, headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 200 and client.get("/health").json()["n_docs"] == 19


def test_the_server_holds_the_writer_lock_and_a_second_writer_is_refused(served, capsys):
    from genedit.cli import main

    folder, index, client, _ = served
    with pytest.raises(FolderLocked) as info:
        FolderLock(folder).acquire()
    assert info.value.holder is not None and info.value.holder.pid == os.getpid()
    before = tree(folder)
    assert main(["serve", "--model", str(folder), "--port", "1"]) == 4  # refused before binding anything
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "conflict" in err[0] and str(os.getpid()) in err[0]
    assert tree(folder) == before
    index.close()  # the lock dies with the server
    FolderLock(folder).acquire().release()


def test_serving_without_a_token_on_a_public_address_is_refused(served, capsys):
    from genedit.cli import main

    folder, *_ = served
    assert main(["serve", "--model", str(folder), "--host", "0.0.0.0"]) == 2
    assert "without a token" in capsys.readouterr().err


@pytest.mark.parametrize("served", ["thread", "process"], indirect=True)
def test_queries_during_edits_see_whole_versions(served):
    """Each answer comes from one version: a document is returned exactly by the versions that index it."""
    folder, index, client, collection = served
    new = collection.documents[22]
    indexed_in: dict[str | None, bool] = {index.snapshot.version: False}
    answers: list[tuple[str | None, bool]] = []
    stop = threading.Event()

    def query() -> None:
        for _ in range(400):  # bounded
            if stop.is_set():
                return
            snap, results = index.search(["anything"], k=1000)
            answers.append((snap.version, new.id in {d for d, _ in results[0]}))

    thread = threading.Thread(target=query)
    thread.start()
    for _ in range(3):
        indexed_in[index.add([new], method="row").result().version] = True
        assert new.id in {d for d, _ in index.search(["x"], k=1000)[1][0]}  # visible right after the ack
        indexed_in[index.delete([new.id], method="mask").result().version] = False
        assert new.id not in {d for d, _ in index.search(["x"], k=1000)[1][0]}  # gone right after the ack
    stop.set()
    thread.join(timeout=60)
    assert answers and all(present == indexed_in[version] for version, present in answers)


def test_a_read_only_replica_follows_head_and_refuses_writes(served):
    folder, index, client, collection = served
    replica = LiveIndex(folder, read_only=True, poll_seconds=0.05)
    try:
        rclient = fastapi_testclient.TestClient(create_app(replica))
        r = rclient.request("DELETE", "/documents", json={"ids": ["d003"]})
        assert r.status_code == 409 and "read-only" in r.json()["detail"]
        result = index.delete(["d003"], method="mask").result()
        assert replica.wait_for_version(result.version, timeout=20)
        assert "d003" not in _all_ids(rclient) and rclient.get("/health").json()["fingerprint"] == client.get("/health").json()["fingerprint"]
    finally:
        replica.close()


@pytest.mark.parametrize("served", ["thread", "process"], indirect=True)
def test_the_served_model_equals_a_fresh_load_after_every_kind_of_write(served):
    """Parity: the double-buffered served copy, updated from the tensors each write changed, is the saved version."""
    folder, index, client, collection = served
    new = collection.documents[21]
    writes = [
        lambda: index.add([new], method="row"),
        lambda: index.update([new], {new.id: ["what is it about"]}, method="rank-one"),
        lambda: index.delete([new.id], method="mask"),
        lambda: index.add([collection.documents[22]], method="row-solve"),
        lambda: index.update([collection.documents[3]], method="lora"),
        lambda: index.delete(["d004"], method="rank-one"),
        lambda: index.rollback(3),
        lambda: index.rollback(0),
    ]
    for write in writes:
        write().result()
        served_model, on_disk = index.snapshot.model, GenIRModel.load(folder)
        assert served_model.fingerprint() == on_disk.fingerprint() == index.snapshot.fingerprint
        assert served_model.version == on_disk.version == index.snapshot.version
        assert len(served_model.tokenizer) == len(on_disk.tokenizer) and served_model.docids == on_disk.docids
        query = [collection.documents[5].text]
        assert served_model.rank(query, k=5).ranking == on_disk.rank(query, k=5).ranking


def test_the_two_served_buffers_never_share_a_tensor_with_each_other_or_the_working_model(served):
    folder, index, client, collection = served
    assert client.post("/documents", json={"documents": [_doc(collection.documents[21])], "method": "row"}).status_code == 200
    ptrs = [{t.data_ptr() for t in m.hf.parameters()} for m in (index.snapshot.model, index._shadow, index._worker.engine.model)]
    assert not ptrs[0] & ptrs[1] and not ptrs[0] & ptrs[2] and not ptrs[1] & ptrs[2]
    assert index._shadow.fingerprint() == index.snapshot.model.fingerprint()  # the idle buffer is already up to date


def test_a_query_never_reads_a_retired_buffer(served, monkeypatch):
    """After a swap the old buffer is updated in place: a search that captured it moves on to the current snapshot."""
    folder, index, client, collection = served
    old = index.snapshot
    index.add([collection.documents[21]], method="row").result()
    current = index.snapshot
    assert old.retired and not current.retired and old.model is index._shadow
    monkeypatch.setattr(old.model, "rank", lambda *a, **k: pytest.fail("a retired buffer was read"))
    captured = iter([old, current])  # the search reads the snapshot just before the swap, then the current one
    monkeypatch.setattr(index, "__class__", type("Racing", (LiveIndex,), {"_snapshot": property(lambda self: next(captured))}))
    snap, results = index.search(["x"], k=1)
    assert snap is current and results[0]


@pytest.mark.parametrize("served", ["process"], indirect=True)
def test_a_dead_edit_worker_is_replaced_and_loses_nothing_acknowledged(served):
    folder, index, client, collection = served
    r = client.post("/documents", json={"documents": [_doc(collection.documents[21])], "method": "row"})
    assert r.status_code == 200
    index._worker.process.kill()  # e.g. the kernel's out-of-memory killer
    index._worker.process.wait(10)
    r = client.request("DELETE", "/documents", json={"ids": [collection.documents[21].id], "method": "mask"})
    assert r.status_code == 200, r.text  # a new worker took the write
    assert client.get("/health").json()["fingerprint"] == GenIRModel.load(folder).fingerprint()
    assert [e["op"] for e in client.get("/log").json()["entries"]] == ["add", "delete"]
