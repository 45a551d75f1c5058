"""Build the bundled 'pydocs' corpus from the Python standard library's docstrings.

Run: ``python -m genedit.data.default.build [--out DIR] [--force]``.

Each public module, function, class and class method of the standard library whose
docstring has a summary paragraph and a body yields one query (the summary, written by the
docstring's author) and one document (the body, titled with the qualified name).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import json
import logging
import os
import pkgutil
import random
import re
import shutil
import sys
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from genedit.data.beir import write_beir
from genedit.data.types import Collection, DataError, Document, Qrels, Query

logger = logging.getLogger(__name__)

SKIP_TOP_LEVEL: frozenset[str] = frozenset({
    "idlelib", "tkinter", "antigravity", "this", "lib2to3", "ensurepip", "venv", "pydoc_data", "test",
})
SKIP_COMPONENTS: frozenset[str] = frozenset({"test", "tests", "idle_test"})
_SIGNATURE_LINE = re.compile(r"^[A-Za-z_][\w.]*\(.*\)\s*(->.*)?$")


@dataclass(frozen=True)
class BuildConfig:
    """Parameters of the corpus build."""

    min_summary_words: int = 4
    min_body_words: int = 10
    max_doc_chars: int = 1500
    min_documents: int = 2000
    test_fraction: float = 0.2
    seed: int = 13


@dataclass(frozen=True)
class Item:
    """One docstring split into a query (summary) and a document (body)."""

    qualname: str
    summary: str
    body: str


@dataclass
class BuildStats:
    """Counts reported in meta.json."""

    modules_imported: int = 0
    modules_failed: int = 0
    objects_with_docstring: int = 0
    candidates: int = 0
    dropped_duplicate_summary_or_body: int = 0
    relaxations: list[str] = field(default_factory=list)


def _skip_module(name: str) -> bool:
    """Whether a (sub)module name is private, a test package, or excluded."""
    parts = name.split(".")
    if parts[0] in SKIP_TOP_LEVEL or parts[0].startswith("turtle"):
        return True
    return any(p.startswith("_") or p in SKIP_COMPONENTS or p.startswith("test_") for p in parts)


@contextlib.contextmanager
def _silenced() -> Iterator[None]:
    """Silence stdout/stderr (at the file-descriptor level too) and warnings."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def _try_import(name: str) -> ModuleType | None:
    """Import a module, swallowing every exception (some stdlib modules are platform-specific)."""
    try:
        return importlib.import_module(name)
    except BaseException:  # noqa: BLE001 - SystemExit/ImportError/anything from a module's import side effects
        return None


def stdlib_modules(stats: BuildStats) -> dict[str, ModuleType]:
    """Public stdlib modules and subpackages, imported, by name."""
    modules: dict[str, ModuleType] = {}
    with _silenced():
        for top in sorted(sys.stdlib_module_names):
            if _skip_module(top):
                continue
            module = _try_import(top)
            if module is None:
                stats.modules_failed += 1
                continue
            modules[top] = module
            path = getattr(module, "__path__", None)
            if path is None:
                continue
            try:
                infos = list(pkgutil.walk_packages(path, prefix=f"{top}.", onerror=lambda _name: None))
            except BaseException:  # noqa: BLE001
                infos = []
            for info in infos:
                if _skip_module(info.name) or info.name in modules:
                    continue
                sub = _try_import(info.name)
                if sub is None:
                    stats.modules_failed += 1
                    continue
                modules[info.name] = sub
    stats.modules_imported = len(modules)
    return dict(sorted(modules.items()))


def _own_doc(obj: Any) -> str | None:
    """The object's own docstring, cleaned like inspect.getdoc but never inherited from a base class."""
    try:
        doc = obj.__doc__
    except Exception:  # noqa: BLE001
        return None
    if not isinstance(doc, str) or not doc.strip():
        return None
    return inspect.cleandoc(doc)


def _owned_by(obj: Any, module_name: str) -> bool:
    """Whether obj is defined in this module or in its C accelerator (e.g. '_json' for 'json')."""
    owner = getattr(obj, "__module__", None)
    if not isinstance(owner, str):
        return False
    return owner == module_name or (owner.startswith("_") and owner.lstrip("_") == module_name)


def _is_method(raw: Any) -> bool:
    """Whether a class attribute (from the class __dict__) is a method."""
    if isinstance(raw, (classmethod, staticmethod)):
        return True
    return inspect.isfunction(raw) or inspect.ismethoddescriptor(raw) or inspect.isbuiltin(raw)


def documented_objects(modules: dict[str, ModuleType]) -> Iterator[tuple[str, str]]:
    """(qualified name, docstring) of every public module, function, class and class method."""
    seen: set[int] = set()
    for module_name, module in modules.items():
        doc = _own_doc(module)
        if doc:
            yield module_name, doc
        try:
            members = sorted(vars(module).items())
        except TypeError:
            continue
        for name, obj in members:
            if name.startswith("_") or not (inspect.isclass(obj) or inspect.isroutine(obj)):
                continue
            if not _owned_by(obj, module_name) or getattr(obj, "__name__", name) != name or id(obj) in seen:
                continue  # re-exported from another module, or an alias
            seen.add(id(obj))
            qualname = f"{module_name}.{name}"
            doc = _own_doc(obj)
            if doc:
                yield qualname, doc
            if not inspect.isclass(obj):
                continue
            for meth_name, raw in sorted(vars(obj).items()):
                if meth_name.startswith("_") or not _is_method(raw):
                    continue
                func = raw.__func__ if isinstance(raw, (classmethod, staticmethod)) else raw
                if id(func) in seen:
                    continue
                seen.add(id(func))
                doc = _own_doc(func)
                if doc:
                    yield f"{qualname}.{meth_name}", doc


def _normalise(text: str) -> str:
    """Collapse all whitespace runs to single spaces."""
    return " ".join(text.split())


def split_docstring(doc: str, first_line_only: bool = False) -> tuple[str, str]:
    """(summary, body): the first paragraph (or first line) and the rest, whitespace-normalised.

    A leading call-signature line such as ``dumps(obj, protocol=None) -> bytes`` (old-style C
    docstrings) is not prose and is removed first.
    """
    lines = doc.strip().splitlines()
    while lines and _SIGNATURE_LINE.match(lines[0].strip()):
        lines.pop(0)
        while lines and not lines[0].strip():
            lines.pop(0)
    if not lines:
        return "", ""
    end = 1
    if not first_line_only:
        while end < len(lines) and lines[end].strip():
            end += 1
    return _normalise(" ".join(lines[:end])), _normalise("\n".join(lines[end:]))


def _cap(text: str, limit: int) -> str:
    """Cut text to at most `limit` characters, at a word boundary."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return cut[:space] if space > limit // 2 else cut


def select_items(docs: list[tuple[str, str]], config: BuildConfig, *, first_line_fallback: bool,
                 min_body_words: int) -> tuple[list[Item], int, int]:
    """Filter by length, then drop every item whose summary or body is not unique; returns (items, candidates, dropped)."""
    candidates: list[Item] = []
    for qualname, doc in docs:
        summary, body = split_docstring(doc)
        if first_line_fallback and len(body.split()) < min_body_words and "\n" in doc.strip().split("\n\n", 1)[0]:
            summary, body = split_docstring(doc, first_line_only=True)
        if len(summary.split()) >= config.min_summary_words and len(body.split()) >= min_body_words:
            candidates.append(Item(qualname=qualname, summary=summary, body=body))
    summaries = Counter(i.summary.casefold() for i in candidates)
    bodies = Counter(i.body.casefold() for i in candidates)
    unique = [i for i in candidates if summaries[i.summary.casefold()] == 1 and bodies[i.body.casefold()] == 1]
    return sorted(unique, key=lambda i: i.qualname), len(candidates), len(candidates) - len(unique)


def build_collection(config: BuildConfig, stats: BuildStats) -> Collection:
    """Build the pydocs collection from the running interpreter's standard library."""
    docs = list(documented_objects(stdlib_modules(stats)))
    stats.objects_with_docstring = len(docs)
    attempts = [
        ("paragraph summary, body >= %d words" % config.min_body_words, False, config.min_body_words),
        ("also first-line summary when the first paragraph spans several lines", True, config.min_body_words),
        ("also body >= 8 words", True, 8),
    ]
    items: list[Item] = []
    for index, (label, first_line, min_body) in enumerate(attempts):
        items, stats.candidates, stats.dropped_duplicate_summary_or_body = select_items(
            docs, config, first_line_fallback=first_line, min_body_words=min_body)
        logger.info("%s: %d candidates, %d dropped as duplicates, %d kept", label, stats.candidates,
                    stats.dropped_duplicate_summary_or_body, len(items))
        if index:
            stats.relaxations.append(label)
        if len(items) >= config.min_documents:
            break
    if len(items) < config.min_documents:
        raise DataError(f"only {len(items)} documents after all relaxations (< {config.min_documents})")

    width = max(4, len(str(len(items) - 1)))
    documents = [Document(id=f"d{i:0{width}d}", title=item.qualname, text=_cap(item.body, config.max_doc_chars))
                 for i, item in enumerate(items)]
    queries = {f"q{i:0{width}d}": Query(id=f"q{i:0{width}d}", text=item.summary) for i, item in enumerate(items)}
    query_ids = list(queries)
    shuffled = list(query_ids)
    random.Random(config.seed).shuffle(shuffled)
    test_ids = set(shuffled[:round(len(shuffled) * config.test_fraction)])
    judgments: dict[str, dict[str, dict[str, int]]] = {"train": {}, "test": {}}
    for i, query_id in enumerate(query_ids):
        judgments["test" if query_id in test_ids else "train"][query_id] = {documents[i].id: 1}
    return Collection(name="pydocs", documents=documents, queries=queries,
                      qrels={split: Qrels(judgments=j) for split, j in judgments.items()})


def write_corpus(collection: Collection, out: Path, meta: dict[str, Any], force: bool) -> None:
    """Write the collection and meta.json into a temporary sibling, then move it into place."""
    out = out.resolve()
    if out.exists() and any(out.iterdir()) and not force:
        raise DataError(f"{out}: already exists; pass --force to replace it")
    staging = out.parent / f".{out.name}.build-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    write_beir(collection, staging)
    (staging / "meta.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    backup = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        os.rename(out, backup)
    os.rename(staging, out)
    if backup.exists():
        shutil.rmtree(backup)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m genedit.data.default.build", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "pydocs",
                        help="output folder (default: the shipped genedit/data/default/pydocs)")
    parser.add_argument("--force", action="store_true", help="replace the output folder if it exists")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Build the corpus and write it; returns the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = _parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()) and not args.force:
        logger.error("%s: already exists; pass --force to replace it", args.out)
        return 1
    config = BuildConfig()
    stats = BuildStats()
    collection = build_collection(config, stats)
    meta = {
        "name": "pydocs",
        "description": ("Python standard library docstrings: query = summary (first paragraph, or first line "
                        "under the relaxation listed in stats), document = the rest of the docstring"),
        "python_version": sys.version,
        "build_command": "python -m genedit.data.default.build --force",
        "license": "PSF-2.0 (docstrings are part of CPython)",
        "documents": len(collection.documents),
        "queries": len(collection.queries),
        "train_queries": len(collection.qrels["train"].judgments),
        "test_queries": len(collection.qrels["test"].judgments),
        "config": asdict(config),
        "stats": asdict(stats),
    }
    try:
        write_corpus(collection, args.out, meta, args.force)
    except DataError as exc:
        logger.error("%s", exc)
        return 1
    logger.info("wrote %s: %d documents, %d train / %d test queries", args.out, meta["documents"],
                meta["train_queries"], meta["test_queries"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
