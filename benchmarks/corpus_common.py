"""Shared parts of the benchmark corpus builders: installed-package discovery, seeded sampling, split, write.

The builders read Python source files of installed third-party packages as text (ast/tokenize, never importing
them), so a build needs no torch and has no import side effects. Output is deterministic for a given set of
installed package versions (recorded in meta.json).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import logging
import random
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genedit.data.default.build import write_corpus
from genedit.data.types import Collection, DataError, Document, Qrels, Query

logger = logging.getLogger(__name__)

TEST_COMPONENTS: frozenset[str] = frozenset({"test", "tests", "testing", "_testing", "conftest"})


@dataclass(frozen=True)
class Item:
    """One (query, document) pair before ids are assigned."""

    package: str
    title: str
    query: str
    text: str


@dataclass(frozen=True)
class SplitConfig:
    """Seeded train/test split of the queries (one query per document)."""

    test_fraction: float = 0.2
    seed: int = 13


def normalise(text: str) -> str:
    """Collapse all whitespace runs to single spaces."""
    return " ".join(text.split())


def cap(text: str, limit: int) -> str:
    """Cut text to at most `limit` characters, at a word boundary."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return cut[:space] if space > limit // 2 else cut


def package_root(name: str) -> Path | None:
    """Folder of an installed top-level package, found without importing it (None if not installed)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def package_version(name: str) -> str:
    """Installed version of the distribution that provides a package ('unknown' if not found)."""
    for dist in importlib.metadata.packages_distributions().get(name, [name]):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


def module_files(name: str, *, skip_private: bool) -> Iterator[tuple[str, Path]]:
    """(dotted module name, path) of a package's .py files in sorted order, test modules skipped."""
    root = package_root(name)
    if root is None:
        logger.warning("package %s is not installed: skipped", name)
        return
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if any(p in TEST_COMPONENTS or p.startswith("test_") or p.endswith("_test") for p in parts):
            continue
        if skip_private and any(p.startswith("_") and p != "__init__" for p in parts):
            continue
        dotted = ".".join([name, *parts[:-1]] + ([] if parts[-1] == "__init__" else [parts[-1]]))
        yield dotted, path


def read_source(path: Path) -> str | None:
    """A source file's text, or None if it is not UTF-8."""
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None


def query_leaks(query: str, document: Document) -> bool:
    """Whether the query (or it without its final punctuation) occurs in the document's indexing text."""
    haystack = normalise(document.indexing_text()).casefold()
    needle = normalise(query).casefold()
    return needle in haystack or needle.rstrip(".!?:;") in haystack


def unique(items: Sequence[Item]) -> tuple[list[Item], int]:
    """Drop every item whose query or whose text (case-insensitively) occurs more than once; also the drop count."""
    queries = Counter(i.query.casefold() for i in items)
    texts = Counter(i.text.casefold() for i in items)
    kept = [i for i in items if queries[i.query.casefold()] == 1 and texts[i.text.casefold()] == 1]
    return kept, len(items) - len(kept)


def sample_per_package(items: Sequence[Item], cap_per_package: int, seed: int) -> list[Item]:
    """At most `cap_per_package` items of each package (a seeded sample), sorted by title."""
    by_package: dict[str, list[Item]] = {}
    for item in sorted(items, key=lambda i: i.title):
        by_package.setdefault(item.package, []).append(item)
    kept: list[Item] = []
    for package, group in sorted(by_package.items()):
        if len(group) > cap_per_package:
            group = random.Random(f"{seed}:{package}").sample(group, cap_per_package)
        kept += group
    return sorted(kept, key=lambda i: i.title)


def make_collection(name: str, items: Sequence[Item], doc_prefix: str, split: SplitConfig) -> Collection:
    """Documents `<prefix>NNNN` and queries `qNNNN` in item order; a seeded share of the queries is the test split."""
    width = max(4, len(str(len(items) - 1)))
    documents = [Document(id=f"{doc_prefix}{i:0{width}d}", title=it.title, text=it.text) for i, it in enumerate(items)]
    queries = {f"q{i:0{width}d}": Query(id=f"q{i:0{width}d}", text=it.query) for i, it in enumerate(items)}
    query_ids = list(queries)
    shuffled = list(query_ids)
    random.Random(split.seed).shuffle(shuffled)
    test_ids = set(shuffled[: round(len(shuffled) * split.test_fraction)])
    judgments: dict[str, dict[str, dict[str, int]]] = {"train": {}, "test": {}}
    for i, query_id in enumerate(query_ids):
        judgments["test" if query_id in test_ids else "train"][query_id] = {documents[i].id: 1}
    return Collection(name=name, documents=documents, queries=queries,
                      qrels={s: Qrels(judgments=j) for s, j in judgments.items()})


def collection_meta(collection: Collection, packages: Sequence[str]) -> dict[str, Any]:
    """Counts, mean document length and package versions for meta.json."""
    words = [len(d.indexing_text().split()) for d in collection.documents]
    return {
        "name": collection.name,
        "documents": len(collection.documents),
        "queries": len(collection.queries),
        "train_queries": len(collection.qrels["train"].judgments),
        "test_queries": len(collection.qrels["test"].judgments),
        "mean_document_words": round(sum(words) / max(len(words), 1), 1),
        "python_version": sys.version,
        "package_versions": {p: package_version(p) for p in packages},
    }


def builder_main(argv: Sequence[str] | None, description: str, build: Callable[[], tuple[Collection, dict[str, Any]]]) -> int:
    """Command line of a builder: OUT_DIR [--force]; writes the collection and meta.json, returns the exit code."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("out", type=Path, help="output folder (BEIR layout + meta.json)")
    parser.add_argument("--force", action="store_true", help="replace the output folder if it exists")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.out.exists() and any(args.out.iterdir()) and not args.force:
        logger.error("%s: already exists; pass --force to replace it", args.out)
        return 1
    try:
        collection, meta = build()
        write_corpus(collection, args.out, meta, args.force)
    except DataError as exc:
        logger.error("%s", exc)
        return 1
    logger.info("wrote %s: %d documents, %d train / %d test queries, %.1f words per document", args.out,
                meta["documents"], meta["train_queries"], meta["test_queries"], meta["mean_document_words"])
    return 0
