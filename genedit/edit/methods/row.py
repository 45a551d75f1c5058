"""`row`: write only the document's docid row; no other weight changes.

The row is the document's sentence embedding where the model's rows live in that space (models `genedit train`
made, whose rows start as sentence embeddings), else the model's own mean readout state of the document's
(pseudo-)queries, scaled to the mean norm of the indexed rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from genedit.data.types import Document
from genedit.edit.activations import read_keys
from genedit.edit.context import EditContext, EditRequest
from genedit.edit.methods import EditMethod, register


def initial_rows(ctx: EditContext, docs: Sequence[Document], queries: Sequence[Sequence[str]]) -> torch.Tensor:
    """Docid rows [n, D] for documents: sentence embeddings, or mean readout of their queries (see module doc)."""
    if ctx.rows_are_embeddings:
        return ctx.sentence_rows(docs)
    texts = [q for qs in queries for q in qs]
    owner = torch.tensor([i for i, qs in enumerate(queries) for _ in qs])
    _, states, _ = read_keys(ctx.model, texts, [], max_length=ctx.query_tokens)
    sums = torch.zeros(len(docs), states.shape[1], dtype=states.dtype, device=states.device).index_add_(0, owner.to(states.device), states)
    mean = sums / torch.bincount(owner, minlength=len(docs)).clamp(min=1)[:, None].to(states.device)
    norm = ctx.model.docid_rows().detach().norm(dim=-1).mean() if ctx.model.n_docs else torch.tensor(1.0)
    return F.normalize(mean, dim=-1) * norm


@register
@dataclass
class Row(EditMethod):
    """Add or update a document by writing its docid row only."""

    name = "row"
    ops = ("add", "update")
    summary = "docid row only (sentence embedding / mean readout)"

    def apply(self, ctx: EditContext, req: EditRequest) -> None:
        """Add rows for new documents, or overwrite the rows of updated ones."""
        queries = ctx.queries_for(req.docs, req.queries) if not ctx.rows_are_embeddings else [[] for _ in req.docs]
        rows = initial_rows(ctx, req.docs, queries)
        if req.op == "add":
            ctx.add_rows(req.docs, rows)
        else:
            ctx.set_rows(req.ids, rows)
            ctx.remember(req.docs)
