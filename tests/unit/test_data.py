"""BEIR reading/writing with strict validation, ir_datasets adapter, load_collection, bundled corpus."""

from __future__ import annotations

import json
import sys
import types
from collections import namedtuple
from pathlib import Path

import pytest

from genedit.data import (
    Collection,
    DataError,
    Document,
    Qrels,
    Query,
    default_collection_path,
    load_beir,
    load_collection,
    load_ir_datasets,
    read_corpus,
    read_doc_queries,
    read_ids,
    synthetic_collection,
    write_beir,
)

HEADER = "query-id\tcorpus-id\tscore"


def sample_collection() -> Collection:
    return Collection(
        name="sample",
        documents=[
            Document("d1", "First", "alpha beta"),
            Document("d2", "", "no title, unicode é ü — \u2028 and a\nnewline"),
            Document("d3", "Quotes \"x\"", "tab\there"),
        ],
        queries={"q1": Query("q1", "alpha?"), "q2": Query("q2", "unicode"), "q3": Query("q3", "unjudged")},
        qrels={
            "train": Qrels({"q1": {"d1": 1, "d3": 0}}),
            "dev": Qrels({"q2": {"d2": 2}}),
            "test": Qrels({"q2": {"d2": 1}, "q1": {"d1": -1}}),
        },
    )


def write_folder(root: Path, corpus: str | None = None, queries: str | None = None,
                 qrels: dict[str, str] | None = None) -> Path:
    """A BEIR folder with valid defaults; pass text to replace one file (None keeps the default)."""
    root.mkdir(parents=True, exist_ok=True)
    if corpus is None:
        corpus = '{"_id": "d1", "title": "T", "text": "one"}\n{"_id": "d2", "text": "two"}\n'
    if queries is None:
        queries = '{"_id": "q1", "text": "query one"}\n{"_id": "q2", "text": "query two"}\n'
    if qrels is None:
        qrels = {"test": f"{HEADER}\nq1\td1\t1\nq2\td2\t1\n"}
    (root / "corpus.jsonl").write_text(corpus, encoding="utf-8")
    (root / "queries.jsonl").write_text(queries, encoding="utf-8")
    (root / "qrels").mkdir(exist_ok=True)
    for split, text in qrels.items():
        (root / "qrels" / f"{split}.tsv").write_text(text, encoding="utf-8")
    return root


def assert_error(root: Path, file: str, line: int | None) -> DataError:
    with pytest.raises(DataError) as info:
        load_beir(root)
    message = str(info.value)
    assert str(root / file) in message, message
    if line is not None:
        assert f"line {line}" in message, message
    return info.value


# --- round trip and writing ----------------------------------------------------------------


def test_round_trip_is_exact(tmp_path: Path) -> None:
    original = sample_collection()
    out = write_beir(original, tmp_path / "out")
    loaded = load_beir(out, name="sample")
    assert loaded == original
    assert loaded.documents == original.documents
    assert list(loaded.queries) == list(original.queries)
    for split in original.qrels:
        assert loaded.qrels[split].judgments == original.qrels[split].judgments
        assert list(loaded.qrels[split].judgments) == list(original.qrels[split].judgments)
    assert load_beir(out).name == "out"
    assert not [p for p in tmp_path.iterdir() if p.name != "out"], "temporary directory left behind"


def test_round_trip_synthetic(tmp_path: Path) -> None:
    original = synthetic_collection(20, seed=3)
    assert load_beir(write_beir(original, tmp_path / "s"), name=original.name) == original


def test_write_into_empty_existing_dir(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    write_beir(sample_collection(), tmp_path / "empty")
    assert load_beir(tmp_path / "empty", name="sample") == sample_collection()


def test_write_refuses_non_empty_dir_and_leaves_it_untouched(tmp_path: Path) -> None:
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("precious", encoding="utf-8")
    (target / "corpus.jsonl").write_text("user data\n", encoding="utf-8")
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    with pytest.raises(DataError, match="refusing to overwrite"):
        write_beir(sample_collection(), target)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_write_refuses_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x", encoding="utf-8")
    with pytest.raises(DataError):
        write_beir(sample_collection(), target)
    assert target.read_text(encoding="utf-8") == "x"


def test_write_rejects_unreadable_collections(tmp_path: Path) -> None:
    bad_split = Collection("c", [Document("d", "", "t")], {"q": Query("q", "t")}, {"validation": Qrels({"q": {"d": 1}})})
    with pytest.raises(DataError, match="validation"):
        write_beir(bad_split, tmp_path / "a")
    unknown_doc = Collection("c", [Document("d", "", "t")], {"q": Query("q", "t")}, {"test": Qrels({"q": {"x": 1}})})
    with pytest.raises(DataError, match="unknown document"):
        write_beir(unknown_doc, tmp_path / "b")
    tab_id = Collection("c", [Document("d\t1", "", "t")], {"q": Query("q", "t")}, {"test": Qrels({})})
    with pytest.raises(DataError, match="invalid document id"):
        write_beir(tab_id, tmp_path / "c")
    assert list(tmp_path.iterdir()) == []


# --- loading: valid variants ---------------------------------------------------------------


def test_blank_lines_and_missing_title_are_allowed(tmp_path: Path) -> None:
    root = write_folder(
        tmp_path / "c",
        corpus='\n{"_id": "d1", "text": "one"}\n   \n{"_id": "d2", "title": null, "text": "two"}\n\n',
        queries='{"_id": "q1", "text": "query one"}\n\n{"_id": "q2", "text": "q2"}\n',
        qrels={"train": f"{HEADER}\n\nq1\td1\t1\n", "test": f"{HEADER}\nq2\td2\t0\r\n"},
    )
    c = load_beir(root)
    assert [d.title for d in c.documents] == ["", ""]
    assert c.qrels["train"].judgments == {"q1": {"d1": 1}}
    assert c.qrels["test"].judgments == {"q2": {"d2": 0}}
    assert c.split("train")[0] == (Query("q1", "query one"), {"d1"})


# --- loading: every malformed case names the file and the line ------------------------------


@pytest.mark.parametrize("corpus, line", [
    ('{"_id": "d1", "text": "ok"}\n{"_id": "d2", "text": "broken"\n', 2),  # bad JSON
    ('{"_id": "d1", "text": "ok"}\n\n["d2", "text"]\n', 3),  # not an object
    ('{"title": "t", "text": "no id"}\n', 1),  # missing _id
    ('{"_id": 7, "text": "int id"}\n', 1),  # non-string _id
    ('{"_id": "d1", "text": "ok"}\n{"_id": "d2", "title": "t"}\n', 2),  # missing text
    ('{"_id": "d1", "text": ["not", "a", "string"]}\n', 1),  # non-string text
    ('{"_id": "d1", "text": "a"}\n{"_id": "d2", "text": "b"}\n{"_id": "d1", "text": "c"}\n', 3),  # duplicate doc id
], ids=["bad-json", "not-object", "missing-id", "non-string-id", "missing-text", "non-string-text", "duplicate-doc"])
def test_malformed_corpus(tmp_path: Path, corpus: str, line: int) -> None:
    root = write_folder(tmp_path / "c", corpus=corpus, qrels={"test": f"{HEADER}\n"})
    assert_error(root, "corpus.jsonl", line)


def test_duplicate_document_id_message(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "c", corpus='{"_id": "d1", "text": "a"}\n{"_id": "d1", "text": "b"}\n')
    assert "duplicate document id 'd1'" in str(assert_error(root, "corpus.jsonl", 2))


@pytest.mark.parametrize("corpus", ["", "\n\n  \n"], ids=["empty", "blank-lines-only"])
def test_empty_corpus(tmp_path: Path, corpus: str) -> None:
    root = write_folder(tmp_path / "c", corpus=corpus, qrels={"test": f"{HEADER}\n"})
    assert "empty" in str(assert_error(root, "corpus.jsonl", 1))


def test_missing_corpus(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "c")
    (root / "corpus.jsonl").unlink()
    assert "empty" in str(assert_error(root, "corpus.jsonl", None))


@pytest.mark.parametrize("queries, line", [
    ('{"_id": "q1", "text": "ok"}\n{"_id": "q2", text: "x"}\n', 2),  # bad JSON
    ('"just a string"\n', 1),  # not an object
    ('{"_id": "q1", "text": "ok"}\n{"text": "no id"}\n', 2),  # missing _id
    ('{"_id": null, "text": "x"}\n', 1),  # non-string _id
    ('{"_id": "q1"}\n', 1),  # missing text
    ('{"_id": "q1", "text": 3}\n', 1),  # non-string text
    ('{"_id": "q1", "text": "a"}\n\n{"_id": "q1", "text": "b"}\n', 3),  # duplicate query id
], ids=["bad-json", "not-object", "missing-id", "non-string-id", "missing-text", "non-string-text", "duplicate-query"])
def test_malformed_queries(tmp_path: Path, queries: str, line: int) -> None:
    root = write_folder(tmp_path / "c", queries=queries, qrels={"test": f"{HEADER}\n"})
    assert_error(root, "queries.jsonl", line)


def test_missing_queries_file(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "c")
    (root / "queries.jsonl").unlink()
    assert_error(root, "queries.jsonl", None)


@pytest.mark.parametrize("qrels, line, words", [
    ("query-id corpus-id score\nq1\td1\t1\n", 1, "header"),  # spaces instead of tabs
    ("qid\tdocid\tscore\nq1\td1\t1\n", 1, "header"),  # wrong names
    ("q1\td1\t1\n", 1, "header"),  # no header at all
    ("", 1, "header"),  # empty file
    (f"{HEADER}\nq1\td1\t1\nq2\td2\n", 3, "3 tab-separated columns"),  # too few columns
    (f"{HEADER}\nq1\td1\t1\t0\n", 2, "3 tab-separated columns"),  # too many columns
    (f"{HEADER}\nq1\td1\t1.0\n", 2, "integer"),  # float score
    (f"{HEADER}\n\nq1\td1\thigh\n", 3, "integer"),  # text score
    (f"{HEADER}\nq1\td1\t1\nq9\td1\t1\n", 3, "unknown query id 'q9'"),
    (f"{HEADER}\nq1\td9\t1\n", 2, "unknown document id 'd9'"),
    (f"{HEADER}\nq1\td1\t1\nq1\td1\t2\n", 3, "duplicate judgment"),
], ids=["spaces-header", "wrong-header", "no-header", "empty", "few-columns", "many-columns", "float-score",
        "text-score", "unknown-query", "unknown-doc", "duplicate-judgment"])
def test_malformed_qrels(tmp_path: Path, qrels: str, line: int, words: str) -> None:
    root = write_folder(tmp_path / "c", qrels={"train": f"{HEADER}\nq1\td1\t1\n", "dev": qrels})
    assert words in str(assert_error(root, "qrels/dev.tsv", line))


def test_no_qrels_file(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "c", qrels={})
    message = str(assert_error(root, "qrels", None))
    assert "train.tsv" in message and "test.tsv" in message
    (root / "qrels").rmdir()
    assert_error(root, "qrels", None)


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a directory"):
        load_beir(tmp_path / "nope")


def test_invalid_utf8(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "c")
    (root / "corpus.jsonl").write_bytes(b'{"_id": "d1", "text": "one"}\n{"_id": "d2", "text": "\xff"}\n')
    assert_error(root, "corpus.jsonl", 2)


# --- load_collection -----------------------------------------------------------------------


def test_load_collection_beir_folder(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "mycoll")
    for spec in (root, str(root)):
        c = load_collection(spec)
        assert c.name == "mycoll" and c.doc_ids == ["d1", "d2"]


def test_load_collection_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist") as info:
        load_collection(tmp_path / "missing")
    assert str(tmp_path / "missing") in str(info.value)


# --- ir_datasets adapter -------------------------------------------------------------------


def test_irds_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ir_datasets", None)  # makes `import ir_datasets` fail
    with pytest.raises(RuntimeError, match="pip install ir_datasets"):
        load_ir_datasets("beir/scifact/test")
    with pytest.raises(RuntimeError, match="pip install ir_datasets"):
        load_collection("irds:beir/scifact/test")


def fake_ir_datasets(calls: list[str]) -> types.ModuleType:
    """A module object mimicking the ir_datasets API (load -> docs_iter/queries_iter/qrels_iter)."""
    doc = namedtuple("GenericDoc", ["doc_id", "text", "title"])
    plain_doc = namedtuple("GenericDoc", ["doc_id", "text"])
    query = namedtuple("GenericQuery", ["query_id", "text"])
    qrel = namedtuple("TrecQrel", ["query_id", "doc_id", "relevance", "iteration"])

    class Dataset:
        def docs_iter(self):
            return iter([doc("a", "alpha text", "Alpha"), doc("b", "beta text", ""), plain_doc("c", "gamma")])

        def queries_iter(self):
            return iter([query("1", "what is alpha"), query("2", "gamma please")])

        def qrels_iter(self):
            return iter([qrel("1", "a", 1, "0"), qrel("2", "c", 2, "0"), qrel("2", "zzz", 1, "0")])

        def has_docs(self) -> bool:
            return True

        def has_queries(self) -> bool:
            return True

        def has_qrels(self) -> bool:
            return True

    module = types.ModuleType("ir_datasets")

    def load(dataset_id: str) -> Dataset:
        calls.append(dataset_id)
        return Dataset()

    module.load = load  # type: ignore[attr-defined]
    return module


@pytest.mark.parametrize("dataset_id, split", [
    ("beir/scifact/test", "test"), ("beir/scifact/train", "train"), ("msmarco-passage/dev", "dev"),
    ("cranfield", "test"), ("msmarco-passage/dev/small", "test"),
])
def test_irds_with_fake_module(monkeypatch: pytest.MonkeyPatch, dataset_id: str, split: str) -> None:
    calls: list[str] = []
    monkeypatch.setitem(sys.modules, "ir_datasets", fake_ir_datasets(calls))
    c = load_collection(f"irds:{dataset_id}")
    assert calls == [dataset_id]
    assert c.name == dataset_id
    assert c.documents == [Document("a", "Alpha", "alpha text"), Document("b", "", "beta text"),
                           Document("c", "", "gamma")]
    assert c.queries == {"1": Query("1", "what is alpha"), "2": Query("2", "gamma please")}
    assert list(c.qrels) == [split]
    assert c.qrels[split].judgments == {"1": {"a": 1}, "2": {"c": 2}}  # judgment of unknown doc dropped


# --- the bundled corpus --------------------------------------------------------------------


@pytest.fixture(scope="module")
def pydocs() -> Collection:
    return load_collection("default")


def test_default_path_is_inside_package() -> None:
    path = default_collection_path()
    assert path.is_dir() and (path / "corpus.jsonl").is_file()
    assert path.parent.name == "default" and path.parent.parent.name == "data"


def test_bundled_corpus_shape(pydocs: Collection) -> None:
    assert pydocs.name == "pydocs"
    assert len(pydocs.documents) >= 2000
    assert set(pydocs.qrels) == {"train", "test"}
    train, test = pydocs.split("train"), pydocs.split("test")
    assert train and test
    assert len(train) + len(test) == len(pydocs.queries) == len(pydocs.documents)
    assert 0.15 < len(test) / (len(train) + len(test)) < 0.25
    for split in ("train", "test"):
        for query_id, judged in pydocs.qrels[split].judgments.items():
            assert len(judged) == 1 and list(judged.values()) == [1], query_id
    assert {q.id for q, _ in train}.isdisjoint({q.id for q, _ in test})
    train_texts = {q.text for q, _ in train}
    assert not [q.text for q, _ in test if q.text in train_texts]
    assert all(len(d.text) <= 1500 and d.title for d in pydocs.documents)
    assert len({d.title for d in pydocs.documents}) == len(pydocs.documents)


def test_bundled_corpus_meta() -> None:
    meta = json.loads((default_collection_path() / "meta.json").read_text(encoding="utf-8"))
    assert meta["python_version"].startswith("3.")
    assert meta["documents"] >= 2000
    assert "PSF" in meta["license"]


# --- inputs that are not regular files: '-' and pipes (`genedit add --docs <(...)`) ------------------------------
def test_pipe_and_stdin_inputs_are_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import os
    import threading

    corpus = '{"_id": "a", "title": "T", "text": "alpha"}\n{"_id": "b", "text": "beta"}\n'
    fifo = tmp_path / "docs.fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text(corpus))
    writer.start()
    assert [d.id for d in read_corpus(fifo)] == ["a", "b"]  # a regular-file check called a pipe "not found"
    writer.join()
    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(buffer=io.BytesIO(b'{"doc": "a", "text": "first"}\n')))
    assert read_doc_queries("-", {"a", "b"}) == {"a": ["first"]}
    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(buffer=io.BytesIO(b" a \n\nb\n")))
    assert read_ids("-") == ["a", "b"]
    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(buffer=io.BytesIO(b'{"_id": "a"}\n')))
    with pytest.raises(DataError, match=r"^<stdin>, line 1: missing field 'text'"):
        read_corpus("-")
    with pytest.raises(DataError, match="is a directory"):
        read_ids(tmp_path)
    with pytest.raises(DataError, match="file not found"):
        read_ids(tmp_path / "absent.txt")
