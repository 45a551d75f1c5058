"""Read and write collections in the BEIR folder layout, with strict validation.

Layout::

    corpus.jsonl          {"_id": ..., "title": ..., "text": ...} per line
    queries.jsonl         {"_id": ..., "text": ...} per line
    qrels/train.tsv       "query-id\\tcorpus-id\\tscore" header, then one judgment per line
    qrels/dev.tsv         (each qrels file is optional, at least one must exist)
    qrels/test.tsv

Every malformed input raises :class:`DataError` whose message starts with
``<file path>, line <n>:`` (or just the path when the problem is a missing file).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genedit.data.types import Collection, DataError, Document, Qrels, Query

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "dev", "test")
QRELS_HEADER = "query-id\tcorpus-id\tscore"
_INT = re.compile(r"-?[0-9]+")
_BAD_ID_CHARS = re.compile(r"[\t\r\n]")
STDIN = "-"  # an input path that means standard input, as for Unix tools


@dataclass(frozen=True)
class _Line:
    """One non-blank physical line of an input file."""

    path: Path
    number: int
    text: str

    def error(self, message: str) -> DataError:
        """A DataError located at this line."""
        return DataError(f"{self.path}, line {self.number}: {message}")


def _label(path: Path) -> Path:
    """How errors name an input ('<stdin>' for '-')."""
    return Path("<stdin>") if str(path) == STDIN else path


def _check_input(path: Path, missing: str = "file not found") -> None:
    """Refuse an input that is absent or a directory; '-', pipes and process substitutions (`<(...)`) are inputs."""
    if str(path) == STDIN:
        return
    if not path.exists():
        raise DataError(f"{path}: {missing}")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not a file")


def _lines(path: Path) -> Iterator[_Line]:
    """Non-blank lines of a UTF-8 input with their 1-based numbers (split on '\\n' only), read once: '-' is standard input."""
    data = sys.stdin.buffer.read() if str(path) == STDIN else path.read_bytes()
    path = _label(path)
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}, line {number}: not valid UTF-8 ({exc.reason})") from exc
        if number == 1 and text.startswith("\ufeff"):
            text = text[1:]
        if text.strip():
            yield _Line(path, number, text)


def _json_objects(path: Path) -> Iterator[tuple[_Line, dict[str, Any]]]:
    """Parsed JSON objects of a JSONL file, one per non-blank line."""
    for line in _lines(path):
        try:
            value = json.loads(line.text)
        except json.JSONDecodeError as exc:
            raise line.error(f"invalid JSON ({exc.msg} at column {exc.colno})") from exc
        if not isinstance(value, dict):
            raise line.error(f"expected a JSON object, got {type(value).__name__}")
        yield line, value


def _string_field(line: _Line, obj: dict[str, Any], key: str, *, allow_empty: bool) -> str:
    """A required string field of a JSON object."""
    if key not in obj:
        raise line.error(f"missing field {key!r}")
    value = obj[key]
    if not isinstance(value, str):
        raise line.error(f"field {key!r} must be a string, got {type(value).__name__}")
    if not allow_empty and not value:
        raise line.error(f"field {key!r} is empty")
    if key == "_id" and _BAD_ID_CHARS.search(value):
        raise line.error(f"field '_id' contains a tab or newline: {value!r}")
    return value


def read_corpus(path: str | Path, *, require_text: bool = False) -> list[Document]:
    """Documents of a BEIR corpus JSONL input (`_id`, `title`, `text`; '-': standard input); require_text: refuse lines with neither."""
    return _read_corpus(Path(path), require_text=require_text)


def read_doc_queries(path: str | Path, doc_ids: Container[str]) -> dict[str, list[str]]:
    """Queries for documents from JSONL lines {"doc": <document id>, "text": <query>} ('-': standard input); ids must be in `doc_ids`."""
    path = Path(path)
    _check_input(path)
    out: dict[str, list[str]] = {}
    for line, obj in _json_objects(path):
        doc = _string_field(line, obj, "doc", allow_empty=False)
        text = _string_field(line, obj, "text", allow_empty=False)
        if doc not in doc_ids:
            raise line.error(f"query for document {doc!r}, which is not among the documents of this edit")
        out.setdefault(doc, []).append(text)
    return out


def read_ids(path: str | Path) -> list[str]:
    """Document ids, one per non-blank line of a UTF-8 input ('-': standard input), surrounding spaces stripped."""
    path = Path(path)
    _check_input(path)
    return [line.text.strip() for line in _lines(path)]


def _read_corpus(path: Path, *, require_text: bool = False) -> list[Document]:
    """Documents of corpus.jsonl; the corpus must not be empty."""
    _check_input(path, "file not found (the corpus is empty)")
    documents: list[Document] = []
    seen: dict[str, int] = {}
    for line, obj in _json_objects(path):
        doc_id = _string_field(line, obj, "_id", allow_empty=False)
        text = _string_field(line, obj, "text", allow_empty=True)
        title = obj.get("title")
        if title is None:
            title = ""
        if not isinstance(title, str):
            raise line.error(f"field 'title' must be a string, got {type(title).__name__}")
        if doc_id in seen:
            raise line.error(f"duplicate document id {doc_id!r} (first on line {seen[doc_id]})")
        seen[doc_id] = line.number
        if require_text and not (title.strip() or text.strip()):
            raise line.error(f"document {doc_id!r} has empty text")
        documents.append(Document(id=doc_id, title=title, text=text))
    if not documents:
        raise DataError(f"{_label(path)}, line 1: the corpus is empty (no documents)")
    return documents


def _read_queries(path: Path) -> dict[str, Query]:
    """Queries of queries.jsonl, in file order."""
    if not path.is_file():
        raise DataError(f"{path}: file not found (queries.jsonl is required)")
    queries: dict[str, Query] = {}
    seen: dict[str, int] = {}
    for line, obj in _json_objects(path):
        query_id = _string_field(line, obj, "_id", allow_empty=False)
        text = _string_field(line, obj, "text", allow_empty=True)
        if query_id in seen:
            raise line.error(f"duplicate query id {query_id!r} (first on line {seen[query_id]})")
        seen[query_id] = line.number
        queries[query_id] = Query(id=query_id, text=text)
    return queries


def _read_qrels(path: Path, query_ids: Container[str], doc_ids: Container[str]) -> Qrels:
    """Judgments of one qrels TSV file, checked against the known query and document ids."""
    judgments: dict[str, dict[str, int]] = {}
    lines = _lines(path)
    header = next(lines, None)
    if header is None:
        raise DataError(f"{path}, line 1: missing header {QRELS_HEADER!r}")
    if header.text != QRELS_HEADER:
        raise header.error(f"header must be exactly {QRELS_HEADER!r}, got {header.text!r}")
    for line in lines:
        columns = line.text.split("\t")
        if len(columns) != 3:
            raise line.error(f"expected 3 tab-separated columns, got {len(columns)}")
        query_id, doc_id, score = columns
        if not _INT.fullmatch(score):
            raise line.error(f"score must be an integer, got {score!r}")
        if query_id not in query_ids:
            raise line.error(f"unknown query id {query_id!r} (not in queries.jsonl)")
        if doc_id not in doc_ids:
            raise line.error(f"unknown document id {doc_id!r} (not in corpus.jsonl)")
        per_query = judgments.setdefault(query_id, {})
        if doc_id in per_query:
            raise line.error(f"duplicate judgment for query {query_id!r} and document {doc_id!r}")
        per_query[doc_id] = int(score)
    return Qrels(judgments=judgments)


def load_beir(path: str | Path, name: str | None = None) -> Collection:
    """Load a BEIR folder (corpus.jsonl, queries.jsonl, qrels/{train,dev,test}.tsv), strictly validated."""
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory (expected a BEIR folder)")
    documents = _read_corpus(root / "corpus.jsonl")
    queries = _read_queries(root / "queries.jsonl")
    doc_ids = {d.id for d in documents}
    qrels: dict[str, Qrels] = {}
    for split in SPLITS:
        qrels_path = root / "qrels" / f"{split}.tsv"
        if qrels_path.is_file():
            qrels[split] = _read_qrels(qrels_path, queries, doc_ids)
    if not qrels:
        raise DataError(f"{root / 'qrels'}: no qrels file (expected at least one of {', '.join(s + '.tsv' for s in SPLITS)})")
    collection = Collection(name=name if name is not None else root.resolve().name, documents=documents,
                            queries=queries, qrels=qrels)
    logger.info("loaded %s: %d documents, %d queries, splits %s", root, len(documents), len(queries),
                {s: len(q.judgments) for s, q in qrels.items()})
    return collection


def _check_writable(collection: Collection) -> None:
    """Refuse collections that load_beir could not read back identically."""
    if not collection.documents:
        raise DataError(f"collection {collection.name!r}: the corpus is empty")
    if not collection.qrels:
        raise DataError(f"collection {collection.name!r}: no qrels split")
    doc_ids: set[str] = set()
    for doc in collection.documents:
        if not doc.id or _BAD_ID_CHARS.search(doc.id):
            raise DataError(f"collection {collection.name!r}: invalid document id {doc.id!r}")
        if doc.id in doc_ids:
            raise DataError(f"collection {collection.name!r}: duplicate document id {doc.id!r}")
        doc_ids.add(doc.id)
    for key, query in collection.queries.items():
        if key != query.id:
            raise DataError(f"collection {collection.name!r}: query stored under {key!r} has id {query.id!r}")
        if not key or _BAD_ID_CHARS.search(key):
            raise DataError(f"collection {collection.name!r}: invalid query id {key!r}")
    for split, qrels in collection.qrels.items():
        if split not in SPLITS:
            raise DataError(f"collection {collection.name!r}: split {split!r} is not one of {SPLITS}")
        for query_id, docs in qrels.judgments.items():
            if query_id not in collection.queries:
                raise DataError(f"collection {collection.name!r}: split {split!r} judges unknown query {query_id!r}")
            for doc_id, grade in docs.items():
                if doc_id not in doc_ids:
                    raise DataError(f"collection {collection.name!r}: split {split!r} judges unknown document {doc_id!r}")
                if isinstance(grade, bool) or not isinstance(grade, int):
                    raise DataError(f"collection {collection.name!r}: split {split!r} grade {grade!r} is not an int")


def _write_text(path: Path, lines: Iterable[str]) -> None:
    """Write lines (each without its newline) as UTF-8, flushed to disk."""
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for line in lines:
            handle.write(line)
            handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())


def _jsonl(objects: Iterable[dict[str, str]]) -> Iterator[str]:
    """JSON lines of objects (non-ASCII kept readable)."""
    for obj in objects:
        yield json.dumps(obj, ensure_ascii=False)


def write_beir(collection: Collection, path: str | Path) -> Path:
    """Write a collection as a BEIR folder atomically; refuse if `path` exists and is not an empty directory."""
    target = Path(path)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise DataError(f"{target}: already exists and is not an empty directory; refusing to overwrite")
    _check_writable(collection)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        _write_text(tmp / "corpus.jsonl", _jsonl(
            {"_id": d.id, "title": d.title, "text": d.text} for d in collection.documents))
        _write_text(tmp / "queries.jsonl", _jsonl(
            {"_id": q.id, "text": q.text} for q in collection.queries.values()))
        (tmp / "qrels").mkdir()
        for split in SPLITS:
            if split in collection.qrels:
                rows = (f"{q}\t{d}\t{g}" for q, docs in collection.qrels[split].judgments.items()
                        for d, g in docs.items())
                _write_text(tmp / "qrels" / f"{split}.tsv", itertools.chain([QRELS_HEADER], rows))
        tmp.chmod(0o755)
        if target.exists():
            target.rmdir()  # empty directory checked above; rmdir fails if it was filled meanwhile
        os.rename(tmp, target)
    except UnicodeEncodeError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(f"collection {collection.name!r}: text is not encodable as UTF-8 ({exc.reason})") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("wrote %s (%d documents, %d queries)", target, len(collection.documents), len(collection.queries))
    return target
