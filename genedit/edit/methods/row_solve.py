"""`row-solve`: IncDSI's constrained solve of each new docid row against the indexed rows (Kishore et al. 2023).

For new rows V (one per document), with readout states q_j of each new document's (pseudo-)queries and the mean
readout state q_i of every indexed document's own texts:
- the new document must win its queries by a margin: v_d.q_j + b_d >= max_{i != d} (v_i.q_j + b_i) + m1;
- no indexed document may lose its own queries to it: v_d.q_i + b_d <= v_i.q_i + b_i - m2;
loss = lam * sum(hinge1^2) + (1 - lam) * sum(hinge2^2) + l2 * |V - V0|^2, minimised with L-BFGS (strong Wolfe),
starting from (and anchored to) the `row` method's rows V0. Margins are in units of the logits' standard
deviation over the documents for the new queries. The decoder is not touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from genedit.data.types import Document
from genedit.edit.activations import read_keys
from genedit.edit.context import EditContext, EditRequest
from genedit.edit.methods import EditMethod, register
from genedit.edit.methods.row import initial_rows


@register
@dataclass
class RowSolve(EditMethod):
    """Add or update documents by solving their rows against the indexed ones (IncDSI)."""

    name = "row-solve"
    ops = ("add", "update")
    summary = "IncDSI: docid rows solved against the indexed rows (L-BFGS)"
    margin_new: float = 0.5
    margin_old: float = 0.5
    lam: float = 0.5
    l2: float = 1e-2
    max_iter: int = 30

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

    def solve(self, ctx: EditContext, docs: Sequence[Document], queries: Sequence[Sequence[str]], exclude: set[str] = frozenset()) -> torch.Tensor:
        """Rows [n, D] for documents that win their queries and leave the indexed documents theirs (see module doc)."""
        model = ctx.model
        v0 = initial_rows(ctx, docs, queries)
        old_ids, old_states = ctx.doc_states()
        keep = [i for i, d in enumerate(old_ids) if d not in exclude]
        old_ids, old_states = [old_ids[i] for i in keep], old_states[keep]
        texts = [q for qs in queries for q in qs]
        owner = torch.tensor([i for i, qs in enumerate(queries) for _ in qs])
        _, q_new, _ = read_keys(model, texts, [], max_length=ctx.query_tokens)
        rows, bias = self._indexed(ctx, exclude)
        old_pos = torch.tensor([model.doc_index(d) for d in old_ids])
        own_old = (old_states * model.docid_rows().detach()[old_pos]).sum(-1) + (bias[old_pos] if bias is not None else 0.0)
        competitor = (q_new @ rows.T + (bias if bias is not None else 0.0)).detach()
        mask_self = torch.zeros_like(competitor, dtype=torch.bool)
        for d_i, doc in enumerate(docs):
            if doc.id in model:
                mask_self[owner == d_i, model.doc_index(doc.id)] = True
        competitor = competitor.masked_fill(mask_self, float("-inf")).max(-1).values
        scale = (q_new @ rows.T).std().clamp(min=1e-6).item()
        m1, m2 = self.margin_new * scale, self.margin_old * scale
        v0 = v0.detach()
        V = v0.clone().requires_grad_(True)
        opt = torch.optim.LBFGS([V], max_iter=self.max_iter, line_search_fn="strong_wolfe")

        def loss_fn() -> torch.Tensor:
            opt.zero_grad()
            own = (q_new * V[owner]).sum(-1)
            others_new = q_new @ V.T  # new documents compete with each other too
            others_new = others_new.masked_fill(torch.nn.functional.one_hot(owner, len(docs)).bool(), float("-inf")).max(-1).values
            h1 = torch.relu(m1 + torch.maximum(competitor, others_new) - own)
            h2 = torch.relu(old_states @ V.T - own_old[:, None] + m2)
            loss = self.lam * (h1**2).sum() + (1 - self.lam) * (h2**2).sum() + self.l2 * ((V - v0) ** 2).sum()
            loss.backward()
            return loss

        opt.step(loss_fn)
        return V.detach()

    @staticmethod
    def _indexed(ctx: EditContext, exclude: set[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Rows and biases of the indexed documents (excluded ones pushed out of every max)."""
        model = ctx.model
        rows = model.docid_rows().detach().clone()
        bias = model.cmap.bias(model.hf)
        bias = bias.detach()[model.docid_token_ids].clone() if bias is not None else torch.zeros(model.n_docs, device=rows.device)
        for d in exclude:
            bias[model.doc_index(d)] = float("-inf")
        return rows, bias
