"""Which queries an analysis runs on, and which of the model's documents are relevant to each."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from genedit.data.types import Collection
from genedit.model.genir import GenIRModel

log = logging.getLogger(__name__)


def relevance_mask(model: GenIRModel, relevant: Sequence[set[str]]) -> torch.Tensor:
    """Boolean [Q, N] mask of each query's relevant documents among the model's docids (unknown ids ignored)."""
    mask = torch.zeros(len(relevant), model.n_docs, dtype=torch.bool, device="cpu")  # filled element by element: on the host
    index = {d: i for i, d in enumerate(model.docids)}
    for q, docs in enumerate(relevant):
        for d in docs:
            if d in index:
                mask[q, index[d]] = True
    return mask.to(model.device)


@dataclass
class QuerySet:
    """Analysed queries (sorted by length to limit padding) and their relevant docids as a mask."""

    ids: list[str]
    texts: list[str]
    relevant: torch.Tensor  # [Q, N] bool


def select_queries(model: GenIRModel, collection: Collection, split: str, n: int, seed: int) -> QuerySet:
    """Up to n queries of a split with a relevant document among the model's docids (seeded sample), by length."""
    pairs = collection.split(split)
    docids = set(model.docids)
    usable = [(q, rel) for q, rel in pairs if rel & docids]
    if len(usable) < len(pairs):
        log.warning("%d of %d %s queries have no relevant document among the model's docids; skipped", len(pairs) - len(usable), len(pairs), split)
    if not usable:
        raise ValueError(f"no {split} query of {collection.name!r} has a relevant document indexed by this model")
    if len(usable) > n:
        gen = torch.Generator().manual_seed(seed)
        pick = torch.randperm(len(usable), generator=gen, device="cpu")[:n].sort().values.tolist()
        usable = [usable[i] for i in pick]
    elif len(usable) < n:
        log.info("split %r has %d usable queries (< %d requested); using all", split, len(usable), n)
    lengths = [len(ids) for ids in model.tokenizer([q.text for q, _ in usable], truncation=True, max_length=model.max_query_length)["input_ids"]]
    order = sorted(range(len(usable)), key=lambda i: (lengths[i], i))
    usable = [usable[i] for i in order]
    return QuerySet([q.id for q, _ in usable], [q.text for q, _ in usable], relevance_mask(model, [rel for _, rel in usable]))
