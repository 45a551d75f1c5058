"""Short documents of one idea each: the prose paragraph after the summary line of third-party docstrings.

python -m benchmarks.build_shortdoc_corpus OUT_DIR [--force]   (about 2,000 documents; 80/20 train/test, seeded)

Each public function, class or method (module level or in a module-level class) of the packages below whose
docstring has a summary paragraph (4-30 words) followed by 1-3 sentences of prose (8-60 words, up to the first
section heading, field list, example, list or literal block) yields one query (the summary, written by the
docstring's author) and one document (that prose), titled with the qualified name. Not used: the standard library
(the bundled corpus), networkx and scipy (the docstring corpus), and the packages of the source corpus whose module
files it indexes (transformers, pygments, docutils). Items whose summary or text is not unique, or whose summary
occurs in the document, are dropped; at most 400 per package are kept (a seeded sample). Files are parsed with ast,
never imported.
"""

from __future__ import annotations

import ast
import logging
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from benchmarks.corpus_common import (
    Item,
    SplitConfig,
    builder_main,
    collection_meta,
    make_collection,
    module_files,
    normalise,
    query_leaks,
    read_source,
    sample_per_package,
    unique,
)
from genedit.data.types import Collection, DataError, Document

logger = logging.getLogger(__name__)

PACKAGES: tuple[str, ...] = (
    "sympy", "matplotlib", "IPython", "prompt_toolkit", "numpy", "torch", "sklearn", "hypothesis", "rich", "jinja2",
    "werkzeug", "click", "flask", "botocore", "moto", "cfnlint", "awscli",
)
# a line that starts a section, field list, doctest, directive, list or table: the prose ends before it
_BREAK = re.compile(
    r"^(\.\. |>>>|\$ |:\w[^:]*:|[-=~^*+]{3,}$|[-*+•] |\d+[.)] |[A-Z][A-Za-z ]{0,30}:$|\|"
    r"|(Parameters|Returns?|Yields?|Raises|Examples?|Notes?|See [Aa]lso|Args|Arguments|Attributes|Warnings?|"
    r"References|Usage|Methods|Keyword [Aa]rguments|Other Parameters)\b)")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z(`'\"*])")


@dataclass(frozen=True)
class ShortConfig:
    """Parameters of the short-document corpus."""

    packages: tuple[str, ...] = PACKAGES
    min_summary_words: int = 4
    max_summary_words: int = 30
    min_doc_words: int = 8
    max_doc_words: int = 60
    max_sentences: int = 3
    per_package: int = 400
    split: SplitConfig = field(default_factory=SplitConfig)


@dataclass
class ShortStats:
    """Counts reported in meta.json."""

    files: int = 0
    unparsable_files: int = 0
    docstrings: int = 0
    candidates: int = 0
    dropped_duplicates: int = 0
    dropped_leaking: int = 0
    kept: int = 0


def documented_nodes(tree: ast.Module, module: str) -> Iterator[tuple[str, str]]:
    """(qualified name, docstring) of public module-level functions and classes and of their classes' methods."""
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) or node.name.startswith("_"):
            continue
        qualname = f"{module}.{node.name}"
        doc = ast.get_docstring(node)
        if doc:
            yield qualname, doc
        if isinstance(node, ast.ClassDef):
            for member in node.body:
                if isinstance(member, (ast.FunctionDef, ast.AsyncFunctionDef)) and not member.name.startswith("_"):
                    doc = ast.get_docstring(member)
                    if doc:
                        yield f"{qualname}.{member.name}", doc


def paragraphs(doc: str) -> list[list[str]]:
    """Blank-line separated paragraphs of a cleaned docstring, as lists of lines (indentation kept)."""
    out: list[list[str]] = []
    current: list[str] = []
    for line in doc.expandtabs().splitlines():
        if line.strip():
            current.append(line.rstrip())
        elif current:
            out.append(current)
            current = []
    if current:
        out.append(current)
    return out


def _is_prose(paragraph: list[str]) -> bool:
    """Whether a paragraph is plain running text: no indented line, no line that starts a section or list."""
    return not any(line.startswith(" ") or _BREAK.match(line.strip()) for line in paragraph)


def split_short(doc: str, config: ShortConfig) -> tuple[str, str] | None:
    """(summary, short prose body) of a docstring, or None if it has no such pair."""
    paras = paragraphs(doc)
    if len(paras) < 2 or not _is_prose(paras[0]):
        return None
    summary = normalise(" ".join(paras[0]))
    body: list[str] = []
    for para in paras[1:]:
        if not _is_prose(para) or para[-1].endswith("::"):
            break
        body.append(normalise(" ".join(para)))
    text = " ".join(body)
    n_words = len(text.split())
    if not config.min_summary_words <= len(summary.split()) <= config.max_summary_words:
        return None
    if not config.min_doc_words <= n_words <= config.max_doc_words or text.endswith(":"):
        return None
    if len(_SENTENCE.split(text)) > config.max_sentences:
        return None
    return summary, text


def build_items(config: ShortConfig, stats: ShortStats) -> list[Item]:
    """Qualifying, unique, non-leaking items of every package, at most `per_package` each."""
    candidates: list[Item] = []
    for package in config.packages:
        for module, path in module_files(package, skip_private=True):
            source = read_source(path)
            if source is None:
                continue
            stats.files += 1
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # invalid escape sequences in old docstrings
                    tree = ast.parse(source)
            except (SyntaxError, ValueError):
                stats.unparsable_files += 1
                continue
            for qualname, doc in documented_nodes(tree, module):
                stats.docstrings += 1
                pair = split_short(doc, config)
                if pair is not None:
                    candidates.append(Item(package=package, title=qualname, query=pair[0], text=pair[1]))
    stats.candidates = len(candidates)
    items, stats.dropped_duplicates = unique(candidates)
    clean = [i for i in items if not query_leaks(i.query, Document("", i.title, i.text))]
    stats.dropped_leaking = len(items) - len(clean)
    kept = sample_per_package(clean, config.per_package, config.split.seed)
    stats.kept = len(kept)
    logger.info("short-document corpus: %d files, %d docstrings, %d candidates, %d duplicates and %d leaking summaries "
                "dropped, %d kept", stats.files, stats.docstrings, stats.candidates, stats.dropped_duplicates,
                stats.dropped_leaking, stats.kept)
    return kept


def build(config: ShortConfig | None = None) -> tuple[Collection, dict[str, Any]]:
    """The 'shortdocs' collection and its meta.json content."""
    config = config or ShortConfig()
    stats = ShortStats()
    items = build_items(config, stats)
    if not items:
        raise DataError(f"no docstring of {', '.join(config.packages)} qualified")
    collection = make_collection("shortdocs", items, "s", config.split)
    meta = collection_meta(collection, config.packages)
    meta.update(description=" ".join(__doc__.split("\n\n", 2)[2].split()),
                build_command="python -m benchmarks.build_shortdoc_corpus OUT_DIR", config=asdict(config),
                stats=asdict(stats), per_package={p: sum(i.package == p for i in items) for p in config.packages})
    return collection, meta


def main(argv: Sequence[str] | None = None) -> int:
    """Build the corpus into OUT_DIR; returns the exit code."""
    return builder_main(argv, __doc__.splitlines()[0], build)


if __name__ == "__main__":
    sys.exit(main())
