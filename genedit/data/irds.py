"""Load a collection through the optional `ir_datasets` package (pip install ir_datasets)."""

from __future__ import annotations

import importlib
import logging
from types import ModuleType
from typing import Any

from genedit.data.types import Collection, DataError, Document, Qrels, Query

logger = logging.getLogger(__name__)

_SPLITS = ("train", "dev", "test")


def _import_ir_datasets() -> ModuleType:
    """The ir_datasets module, or a RuntimeError explaining how to install it."""
    try:
        return importlib.import_module("ir_datasets")
    except ImportError as exc:
        raise RuntimeError(
            "loading 'irds:<id>' collections needs the optional ir_datasets package; "
            "install it with `pip install ir_datasets` (or `pip install genedit[datasets]`)"
        ) from exc


def split_name(dataset_id: str) -> str:
    """The qrels split a dataset id denotes: its last '/' component if train/dev/test, else 'test'."""
    last = dataset_id.rstrip("/").rsplit("/", 1)[-1]
    return last if last in _SPLITS else "test"


def _text(record: Any, fields: tuple[str, ...], what: str, dataset_id: str) -> str:
    """The first string field present on an ir_datasets record, else its default_text()."""
    for name in fields:
        value = getattr(record, name, None)
        if isinstance(value, str):
            return value
    default_text = getattr(record, "default_text", None)
    if callable(default_text):
        return str(default_text())
    raise DataError(f"ir_datasets {dataset_id!r}: {what} record has none of the fields {fields}: {record!r}")


def _has(dataset: Any, kind: str) -> bool:
    """Whether the dataset provides docs/queries/qrels (assume yes when it cannot say)."""
    probe = getattr(dataset, f"has_{kind}", None)
    return bool(probe()) if callable(probe) else True


def load_ir_datasets(dataset_id: str) -> Collection:
    """Load `dataset_id` (e.g. 'beir/scifact/test') via ir_datasets; judgments of unknown ids are dropped with a warning."""
    ir_datasets = _import_ir_datasets()
    dataset = ir_datasets.load(dataset_id)
    for kind in ("docs", "queries", "qrels"):
        if not _has(dataset, kind):
            raise DataError(f"ir_datasets {dataset_id!r}: the dataset provides no {kind}")

    documents: list[Document] = []
    seen_docs: set[str] = set()
    for doc in dataset.docs_iter():
        doc_id = str(doc.doc_id)
        if doc_id in seen_docs:
            raise DataError(f"ir_datasets {dataset_id!r}: duplicate document id {doc_id!r}")
        seen_docs.add(doc_id)
        title = getattr(doc, "title", "")
        documents.append(Document(id=doc_id, title=title if isinstance(title, str) else "",
                                  text=_text(doc, ("text", "body"), "document", dataset_id)))
    if not documents:
        raise DataError(f"ir_datasets {dataset_id!r}: the corpus is empty")

    queries: dict[str, Query] = {}
    for query in dataset.queries_iter():
        query_id = str(query.query_id)
        if query_id in queries:
            raise DataError(f"ir_datasets {dataset_id!r}: duplicate query id {query_id!r}")
        queries[query_id] = Query(id=query_id, text=_text(query, ("text", "title"), "query", dataset_id))

    judgments: dict[str, dict[str, int]] = {}
    dropped = 0
    for qrel in dataset.qrels_iter():
        query_id, doc_id = str(qrel.query_id), str(qrel.doc_id)
        if query_id not in queries or doc_id not in seen_docs:
            dropped += 1
            continue
        judgments.setdefault(query_id, {})[doc_id] = int(qrel.relevance)
    if dropped:
        logger.warning("ir_datasets %r: dropped %d judgments naming unknown queries or documents", dataset_id, dropped)
    if not judgments:
        raise DataError(f"ir_datasets {dataset_id!r}: no usable relevance judgments")

    split = split_name(dataset_id)
    logger.info("loaded ir_datasets %r: %d documents, %d queries, %d judged queries (split %r)",
                dataset_id, len(documents), len(queries), len(judgments), split)
    return Collection(name=dataset_id, documents=documents, queries=queries,
                      qrels={split: Qrels(judgments=judgments)})
