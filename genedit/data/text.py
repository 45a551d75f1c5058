"""Text helpers shared by training and editing: splitting a document into sentence-like pseudo-queries."""

from __future__ import annotations

import re

_SENTENCE = re.compile(r"(?<=[.!?:])\s+(?=[A-Z(`'\"])")


def sentences(text: str, limit: int) -> list[str]:
    """Up to `limit` sentences of a text with at least four words each (the trainer's pseudo-queries)."""
    parts = [p.strip() for p in _SENTENCE.split(text) if len(p.split()) >= 4]
    return parts[:limit]
