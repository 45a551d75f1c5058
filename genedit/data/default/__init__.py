"""The bundled default corpus (pydocs), the script that builds it, and the documents `genedit demo` adds."""

from __future__ import annotations

import json
from pathlib import Path

from genedit.data.types import Document

DEMO_EDITS = Path(__file__).with_name("demo_edits.jsonl")


def demo_edits() -> tuple[list[Document], dict[str, list[str]]]:
    """Documents `genedit demo` adds to the default model (none of them is in the bundled corpus), with one query each."""
    docs: list[Document] = []
    queries: dict[str, list[str]] = {}
    for line in DEMO_EDITS.read_text().splitlines():
        row = json.loads(line)
        docs.append(Document(id=row["_id"], title=row["title"], text=row["text"]))
        queries[row["_id"]] = [row["query"]]
    return docs, queries
