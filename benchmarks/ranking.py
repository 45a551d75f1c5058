"""Ranking query sets with many models that share one frozen encoder: the encoder states are computed once."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from benchmarks.protocols import Pairs
from genedit.data.types import Query
from genedit.eval.types import Run

log = logging.getLogger(__name__)


def query_universe(sets: dict[str, Pairs]) -> list[Query]:
    """Every distinct query of the sets (first occurrence kept)."""
    seen: dict[str, Query] = {}
    for pairs in sets.values():
        for q, _ in pairs:
            seen.setdefault(q.id, q)
    return list(seen.values())


def all_pairs(sets: dict[str, Pairs]) -> Pairs:
    """Every distinct (query, relevant ids) pair of the sets (last occurrence kept)."""
    return list({q.id: (q, r) for pairs in sets.values() for q, r in pairs}.values())


class Ranker:
    """Ranks query sets with many models that share one frozen encoder: encoder states are computed once.

    The trainer never changes the encoder and edits work on the decoder and the docid rows, so the base, the
    oracle and every edited model usually have the same encoder; a hash of its weights decides (a method that
    touched it gets its own states). Scoring over the cached states is one decoder step per query.
    """

    def __init__(self, k: int, keep: int = 2) -> None:
        self.k = k
        self.keep = keep
        self._states: dict[tuple[str, str], Any] = {}

    def rank(self, model: Any, sets: dict[str, Pairs], desc: str) -> Run:
        """Top-k documents for every query of the sets."""
        queries = sorted(query_universe(sets), key=lambda q: (len(q.text), q.id))  # similar lengths side by side: less padding
        if not queries:
            return Run({}, {})
        log.info("%s: ranking %d queries", desc, len(queries))
        ids = hashlib.sha256("\n".join(f"{q.id}\t{q.text}" for q in queries).encode()).hexdigest()
        key = (model.encoder_fingerprint(), ids)
        enc = self._states.get(key)
        if enc is None:
            enc = model.encode([q.text for q in queries], progress=True)
            self._states[key] = enc
            while len(self._states) > self.keep:
                self._states.pop(next(iter(self._states)))
        ranking: dict[str, list[str]] = {}
        scores: dict[str, list[float]] = {}
        for start in range(0, len(queries), 256):
            model.top_k(enc.select(slice(start, start + 256)), queries[start : start + 256], self.k, ranking, scores)
        return Run(ranking, scores, name=model.meta.get("name", "genir"))
