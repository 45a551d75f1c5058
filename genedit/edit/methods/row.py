"""`row`: write only the document's docid row; no other weight changes.

The row is the document's sentence embedding where the model's rows live in that space (models `genedit train`
made, whose rows start as sentence embeddings), else the model's own mean readout state of the document's
(pseudo-)queries, scaled to the mean norm of the indexed rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from genedit.edit.context import EditContext, EditRequest
from genedit.edit.methods import EditMethod, register
from genedit.edit.methods.common import initial_rows


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
