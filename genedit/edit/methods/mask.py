"""`mask`: delete by dropping the docid only. The document is hidden; what the weights learned of it stays (a baseline)."""

from __future__ import annotations

from dataclasses import dataclass

from genedit.edit.context import EditContext, EditRequest
from genedit.edit.methods import EditMethod, register


@register
@dataclass
class Mask(EditMethod):
    """Hide deleted documents: remove their docids from the index, leave every weight as it is."""

    name = "mask"
    ops = ("delete",)
    summary = "delete = drop the docid (hidden, knowledge kept): a baseline"

    def apply(self, ctx: EditContext, req: EditRequest) -> None:
        """Remove the documents from the docid list."""
        ctx.model.remove_documents(req.ids)
