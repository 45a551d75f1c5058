"""Collections: BEIR folders, ir_datasets, the bundled default corpus, synthetic corpora for tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from genedit.data.beir import load_beir, read_corpus, read_doc_queries, read_ids, write_beir
from genedit.data.irds import load_ir_datasets
from genedit.data.synthetic import synthetic_collection
from genedit.data.types import Collection, DataError, Document, Qrels, Query

__all__ = [
    "Collection",
    "DataError",
    "Document",
    "Qrels",
    "Query",
    "default_collection_path",
    "load_beir",
    "load_collection",
    "load_indexed",
    "load_ir_datasets",
    "read_corpus",
    "read_doc_queries",
    "read_ids",
    "synthetic_collection",
    "write_beir",
]

DEFAULT_NAME = "pydocs"
IRDS_PREFIX = "irds:"


def default_collection_path() -> Path:
    """Folder of the bundled 'pydocs' corpus (BEIR layout), inside the installed package."""
    return Path(__file__).resolve().parent / "default" / DEFAULT_NAME


def load_collection(spec: str | Path) -> Collection:
    """Load 'default' (bundled pydocs), 'irds:<dataset id>' (ir_datasets), or a BEIR folder path."""
    if isinstance(spec, str) and spec == "default":
        return load_beir(default_collection_path(), name=DEFAULT_NAME)
    if isinstance(spec, str) and spec.startswith(IRDS_PREFIX):
        dataset_id = spec[len(IRDS_PREFIX):]
        if not dataset_id:
            raise DataError(f"{spec!r}: missing dataset id after {IRDS_PREFIX!r}")
        return load_ir_datasets(dataset_id)
    path = Path(spec).expanduser()
    if not path.exists():
        raise DataError(f"{path}: collection folder does not exist (expected 'default', 'irds:<id>' or a BEIR folder)")
    if not path.is_dir():
        raise DataError(f"{path}: not a directory (expected a BEIR folder with corpus.jsonl, queries.jsonl, qrels/)")
    return load_beir(path)


def load_indexed(spec: str | Path, indexed: Sequence[str]) -> Collection:
    """The collection a model indexes: `spec` loaded, refused (DataError) when it shares no document with `indexed`."""
    collection = load_collection(spec)
    if not set(indexed) & set(collection.doc_ids):
        raise DataError(f"{spec}: none of its documents is indexed by the model; give the corpus the model indexes")
    return collection
