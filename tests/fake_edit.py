"""A stand-in for genedit.edit with the same surface (Editor, methods_for) for harness tests.

`row` adds a document as the mean decoder step-0 state of its pseudo-queries (IncDSI's query mean, no solve);
`mask` deletes by dropping the row; `broken` raises, so that a failing method is recorded, not fatal.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from benchmarks.protocols import pseudo_queries

METHODS = {"add": ["row", "broken"], "update": ["row"], "delete": ["mask"]}


def methods_for(op: str) -> list[str]:
    """Methods of the fake editor for an op."""
    return list(METHODS[op])


@dataclass
class EditEntry:
    """What the harness reads of an edit."""

    index: int
    op: str
    method: str
    doc_ids: list[str]
    seconds: float
    changed_params: int
    weight_norm: float = 0.0
    params: dict = field(default_factory=dict)


def remove_documents(model, ids: list[str]) -> None:
    """Drop documents from a GenIRModel's docid list (their rows stay in the vocabulary, unused)."""
    gone = set(ids)
    keep = [i for i, d in enumerate(model.docids) if d not in gone]
    model.docids = [model.docids[i] for i in keep]
    model.tokens = [model.tokens[i] for i in keep]
    model._index = {d: i for i, d in enumerate(model.docids)}
    model.scorer.docid_ids = model.scorer.docid_ids[torch.tensor(keep, dtype=torch.long)]


class Editor:
    """Minimal editor: row adds/updates and mask deletes."""

    def __init__(self, model, corpus=None, history: bool = True) -> None:
        self.model = model
        self.entries: list[EditEntry] = []

    def _rows(self, docs) -> torch.Tensor:
        rows = []
        for d in docs:
            enc = self.model.encode(pseudo_queries(d))
            with torch.no_grad():
                state = self.model.scorer(enc.hidden, enc.mask, return_state=True)
            rows.append(state.mean(0))
        return torch.stack(rows)

    def _entry(self, op: str, method: str, ids: list[str], t: float, changed: int) -> EditEntry:
        entry = EditEntry(len(self.entries), op, method, ids, time.perf_counter() - t, changed)
        self.entries.append(entry)
        return entry

    def add(self, docs, queries=None, method=None):
        method = method or "row"
        if method == "broken":
            raise RuntimeError("this method is broken on purpose")
        t = time.perf_counter()
        self.model.add_documents([d.id for d in docs], rows=self._rows(docs))
        return self._entry("add", method, [d.id for d in docs], t, len(docs) * self.model.cmap.d_model)

    def update(self, docs, queries=None, method=None):
        t = time.perf_counter()
        rows = self._rows(docs)
        weight = self.model.cmap.unembedding(self.model.hf).weight
        with torch.no_grad():
            for d, row in zip(docs, rows):
                weight[self.model.docid_token_ids[self.model.doc_index(d.id)]] = row
        return self._entry("update", method or "row", [d.id for d in docs], t, len(docs) * self.model.cmap.d_model)

    def delete(self, ids, method=None):
        t = time.perf_counter()
        remove_documents(self.model, list(ids))
        return self._entry("delete", method or "mask", list(ids), t, 0)
