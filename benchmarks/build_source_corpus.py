"""Long, noisy documents that open with boilerplate: source files of installed third-party Python packages.

python -m benchmarks.build_source_corpus OUT_DIR [--force]   (about 800 documents; 80/20 train/test, seeded)

Each module whose first 1,000 characters carry a copyright or licence notice and whose module docstring opens
with a prose summary paragraph (4-40 words) yields one query (that summary, written by the module's author) and
one document (the file's text from its first line with the summary removed: licence header, the rest of the
docstring, imports, code), whitespace-normalised and capped at 6,000 characters, titled with the module name.
Items whose summary or text is not unique, or whose summary still occurs in the document, are dropped; at most
200 modules per package are kept (a seeded sample). Files are read as text, never imported.
"""

from __future__ import annotations

import ast
import io
import logging
import re
import sys
import tokenize
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from benchmarks.corpus_common import (
    Item,
    SplitConfig,
    builder_main,
    cap,
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
    "transformers", "pygments", "docutils", "torch", "hypothesis", "awscli", "botocore", "numpy", "werkzeug",
    "sklearn", "boto3", "s3transfer", "matplotlib", "IPython",
)
_BOILERPLATE = re.compile(r"copyright|licen[cs]e|spdx", re.IGNORECASE)
_UNDERLINE = re.compile(r"^[-=~^*#`'\"+]{3,}$")
_HEADING = re.compile(r"^(\w+(\.\w+)+|[-=~^*#`'\"+]{3,}|\$\w+.*\$|.*-\*-.*-\*-.*)$")  # module name, underline, $Id$, coding
_NOT_PROSE = re.compile(r"^(:\w+|copyright|licen[cs]ed?\b|author|spdx|\.\. |>>>|https?://)", re.IGNORECASE)


@dataclass(frozen=True)
class SourceConfig:
    """Parameters of the source-file corpus."""

    packages: tuple[str, ...] = PACKAGES
    min_summary_words: int = 4
    max_summary_words: int = 40
    boilerplate_chars: int = 1000  # the notice must occur this early in the file
    max_doc_chars: int = 6000
    per_package: int = 200
    split: SplitConfig = field(default_factory=SplitConfig)


@dataclass
class SourceStats:
    """Counts reported in meta.json."""

    files: int = 0
    with_docstring: int = 0
    with_boilerplate: int = 0
    candidates: int = 0
    dropped_duplicates: int = 0
    dropped_leaking: int = 0
    kept: int = 0


def module_docstring_token(source: str) -> tuple[int, int, str] | None:
    """(start offset, end offset, value) of the module docstring literal, if the file has one."""
    offsets = [0]
    for line in source.splitlines(keepends=True):
        offsets.append(offsets[-1] + len(line))
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.ENCODING):
                continue
            if tok.type != tokenize.STRING:
                return None
            value = ast.literal_eval(tok.string)
            if not isinstance(value, str):
                return None
            start = offsets[tok.start[0] - 1] + tok.start[1]
            end = offsets[tok.end[0] - 1] + tok.end[1]
            return start, end, value
    except (tokenize.TokenError, SyntaxError, ValueError, IndentationError):
        return None
    return None


def split_summary(docstring: str) -> tuple[str, str] | None:
    """(summary paragraph, rest of the docstring) after leading name/underline lines; None if it opens without prose."""
    lines = docstring.expandtabs().splitlines()
    lines = [line.strip() for line in lines]
    i = 0
    while i < len(lines) and (not lines[i] or _HEADING.match(lines[i])):
        i += 1
    end = i
    while end < len(lines) and lines[end]:
        end += 1
    paragraph = lines[i:end]
    if not paragraph or _NOT_PROSE.match(paragraph[0]) or any(_UNDERLINE.match(line) for line in paragraph[1:]):
        return None
    rest = "\n".join(lines[:i] + lines[end:])
    return normalise(" ".join(paragraph)), rest


def source_item(package: str, module: str, source: str, config: SourceConfig, stats: SourceStats) -> Item | None:
    """The (summary, file text without it) item of one module, or None if it does not qualify."""
    token = module_docstring_token(source)
    if token is None:
        return None
    stats.with_docstring += 1
    if not _BOILERPLATE.search(source[: config.boilerplate_chars]):
        return None
    stats.with_boilerplate += 1
    start, end, value = token
    split = split_summary(value)
    if split is None:
        return None
    summary, rest = split
    if not config.min_summary_words <= len(summary.split()) <= config.max_summary_words:
        return None
    kept_doc = f'"""{rest.strip()}"""' if rest.strip() else ""
    text = cap(normalise(source[:start] + kept_doc + source[end:]), config.max_doc_chars)
    return Item(package=package, title=module, query=summary, text=text)


def build_items(config: SourceConfig, stats: SourceStats) -> list[Item]:
    """Qualifying, unique, non-leaking items of every package, at most `per_package` each."""
    candidates: list[Item] = []
    for package in config.packages:
        for module, path in module_files(package, skip_private=False):
            source = read_source(path)
            if source is None:
                continue
            stats.files += 1
            item = source_item(package, module, source, config, stats)
            if item is not None:
                candidates.append(item)
    stats.candidates = len(candidates)
    items, stats.dropped_duplicates = unique(candidates)
    clean = [i for i in items if not query_leaks(i.query, Document("", i.title, i.text))]
    stats.dropped_leaking = len(items) - len(clean)
    kept = sample_per_package(clean, config.per_package, config.split.seed)
    stats.kept = len(kept)
    logger.info("source corpus: %d files, %d with a docstring, %d with boilerplate, %d candidates, %d duplicates and %d "
                "leaking summaries dropped, %d kept", stats.files, stats.with_docstring, stats.with_boilerplate,
                stats.candidates, stats.dropped_duplicates, stats.dropped_leaking, stats.kept)
    return kept


def build(config: SourceConfig | None = None) -> tuple[Collection, dict[str, Any]]:
    """The 'pysource' collection and its meta.json content."""
    config = config or SourceConfig()
    stats = SourceStats()
    items = build_items(config, stats)
    if not items:
        raise DataError(f"no module of {', '.join(config.packages)} qualified")
    collection = make_collection("pysource", items, "f", config.split)
    meta = collection_meta(collection, config.packages)
    meta.update(description=__doc__.split("\n\n", 2)[2].replace("\n", " ").strip(),
                build_command="python -m benchmarks.build_source_corpus OUT_DIR", config=asdict(config),
                stats=asdict(stats), per_package={p: sum(i.package == p for i in items) for p in config.packages})
    return collection, meta


def main(argv: Sequence[str] | None = None) -> int:
    """Build the corpus into OUT_DIR; returns the exit code."""
    return builder_main(argv, __doc__.splitlines()[0], build)


if __name__ == "__main__":
    sys.exit(main())
