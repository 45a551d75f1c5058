"""`row-solve`: IncDSI's constrained solve of each new docid row against the indexed rows (Kishore et al. 2023).

The solve itself is `common.IncDSI` (shared with `rank-one`, which solves the rows of models whose rows are not
sentence embeddings the same way); this method writes its rows and nothing else: the decoder is not touched.
"""

from __future__ import annotations

from dataclasses import dataclass

from genedit.edit.context import EditContext, EditRequest
from genedit.edit.methods import EditMethod, register
from genedit.edit.methods.common import IncDSI


@register
@dataclass
class RowSolve(IncDSI, EditMethod):
    """Add or update documents by solving their rows against the indexed ones (IncDSI; hyper-parameters: `IncDSI`'s)."""

    name = "row-solve"
    ops = ("add", "update")
    summary = "IncDSI: docid rows solved against the indexed rows (L-BFGS)"

    def prepare(self, ctx: EditContext, req: EditRequest) -> None:
        """Representative readout states of the indexed documents (cached until the decoder changes)."""
        ctx.doc_states()

    def apply(self, ctx: EditContext, req: EditRequest) -> None:
        """Solve the rows, then write them (add: new rows; update: overwrite)."""
        queries = ctx.queries_for(req.docs, req.queries)
        solved = self.solve(ctx, req.docs, queries, exclude=set(req.ids) if req.op == "update" else set())
        if req.op == "add":
            ctx.add_rows(req.docs, solved)
        else:
            ctx.set_rows(req.ids, solved)
            ctx.remember(req.docs)
