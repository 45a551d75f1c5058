"""What several editing methods share: a new document's first row, IncDSI's row solve, the forget target, an edit's texts.

Method files import this module (and `training` for the gradient-trained ones), never each other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from genedit.data.types import Document
from genedit.edit.activations import Prepared, mean_readout, read_keys, run_step
from genedit.edit.context import EditContext, EditRequest


def initial_rows(ctx: EditContext, docs: Sequence[Document], queries: Sequence[Sequence[str]]) -> torch.Tensor:
    """Docid rows [n, D] for documents: sentence embeddings, or the mean readout of their queries (the `row` method)."""
    if ctx.rows_are_embeddings:
        return ctx.sentence_rows(docs)
    texts = [q for qs in queries for q in qs]
    owner = [i for i, qs in enumerate(queries) for _ in qs]
    mean = mean_readout(ctx.model, texts, owner, len(docs), max_length=ctx.query_tokens)
    norm = ctx.model.docid_rows().detach().norm(dim=-1).mean() if ctx.model.n_docs else torch.tensor(1.0, device=ctx.model.device)
    return F.normalize(mean, dim=-1) * norm


@dataclass
class IncDSI:
    """IncDSI's constrained solve of each new docid row against the indexed rows (Kishore et al. 2023).

    For new rows V (one per document), with readout states q_j of each new document's (pseudo-)queries and the mean
    readout state q_i of every indexed document's own texts:
    - the new document must win its queries by a margin: v_d.q_j + b_d >= max_{i != d} (v_i.q_j + b_i) + m1;
    - no indexed document may lose its own queries to it: v_d.q_i + b_d <= v_i.q_i + b_i - m2; with `per_text`, one
      constraint per preserved text t of the indexed documents instead of their mean: v_d.q_t + b_d <= max_i (v_i.q_t
      + b_i) - m2 (no text may lose the document it ranks first now);
    loss = lam * sum(hinge1^2) + (1 - lam) * sum(hinge2^2) + l2 * |V - V0|^2, minimised with L-BFGS (strong Wolfe),
    starting from (and anchored to) `initial_rows` V0. Margins are in units of the logits' standard deviation over
    the documents for the new queries. The decoder is not touched.
    """

    margin_new: float = 0.5
    margin_old: float = 0.5
    lam: float = 0.5
    l2: float = 1e-2
    max_iter: int = 30
    per_text: bool = False

    def solve(self, ctx: EditContext, docs: Sequence[Document], queries: Sequence[Sequence[str]], exclude: AbstractSet[str] = frozenset()) -> torch.Tensor:
        """Rows [n, D] for documents that win their queries and leave the indexed documents theirs (see class doc)."""
        model = ctx.model
        v0 = initial_rows(ctx, docs, queries)
        texts = [q for qs in queries for q in qs]
        owner = torch.tensor([i for i, qs in enumerate(queries) for _ in qs], device=model.device)  # masks the model's scores: made there
        _, q_new, _ = read_keys(model, texts, [], max_length=ctx.query_tokens)
        rows, bias = _indexed(ctx, exclude)
        if self.per_text:  # every preserved text keeps the document it ranks first now
            owners, text_states = ctx.text_states()
            old_states = text_states[[i for i, o in enumerate(owners) if o not in exclude]]
            own_old = torch.cat([(part @ rows.T + bias).max(-1).values for part in old_states.split(4096)])  # [M, N] a chunk at a time
        else:  # every indexed document keeps its own texts' mean state
            old_ids, old_states = ctx.doc_states()
            keep = [i for i, d in enumerate(old_ids) if d not in exclude]
            old_states = old_states[keep]
            old_pos = torch.tensor([model.doc_index(old_ids[i]) for i in keep], device=model.device)
            own_old = (old_states * model.docid_rows().detach()[old_pos]).sum(-1) + bias[old_pos]
        competitor = (q_new @ rows.T + bias).detach()
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


def _indexed(ctx: EditContext, exclude: AbstractSet[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows and biases of the indexed documents (excluded ones pushed out of every max)."""
    model = ctx.model
    rows = model.docid_rows().detach().clone()
    bias = model.cmap.bias(model.hf)
    bias = bias.detach()[model.docid_token_ids].clone() if bias is not None else torch.zeros(model.n_docs, device=rows.device)
    for d in exclude:
        bias[model.doc_index(d)] = float("-inf")
    return rows, bias


def forget_distribution(ctx: EditContext, batch: Prepared, forget: list[str], *, own: bool = False) -> torch.Tensor:
    """Target distributions [n, N] over docids for texts whose documents are forgotten (the document at zero).

    The ranking the model's training objective gives a document it never saw: the dense teacher's distribution over
    the remaining documents (models `genedit train` made) or, for other models or with `own`, the model's own
    distribution renormalised without the document (what `mask` answers).
    """
    model = ctx.model
    drop = torch.tensor([model.doc_index(d) for d in forget], device=model.device)
    if ctx.rows_are_embeddings and not own:
        logits = batch.embedding @ F.normalize(model.docid_rows().detach(), dim=-1).T / ctx.temperature
    else:
        with torch.no_grad():
            logits = model.scorer.logits(run_step(model, batch).state)
    logits[:, drop] = float("-inf")
    return F.softmax(logits, dim=-1)


@dataclass
class EditTexts:
    """The texts an edit trains on: each one's document in the request, and the docid it must rank first (-1: forget)."""

    texts: list[str] = field(default_factory=list)
    group: list[int] = field(default_factory=list)  # index of the text's document in the request
    hard: list[int] = field(default_factory=list)  # docid position the text must rank first, or -1 (its document is forgotten)

    def extend(self, queries: Sequence[Sequence[str]], targets: Sequence[int]) -> None:
        """Add each document's queries with its target (a docid position, or -1)."""
        for i, (qs, target) in enumerate(zip(queries, targets)):
            self.texts += qs
            self.group += [i] * len(qs)
            self.hard += [target] * len(qs)

    @property
    def forgets(self) -> list[int]:
        """Positions of the texts whose document is forgotten."""
        return [i for i, h in enumerate(self.hard) if h < 0]


def edit_texts(ctx: EditContext, req: EditRequest, make_rows: Callable[[list[list[str]]], torch.Tensor]) -> EditTexts:
    """Write the edit's rows (add / update: `make_rows` of the documents' queries), then collect its texts and targets.

    add: the new documents' queries, each to rank its document first; update: the same for the new text, then the
    queries that found the old text (training queries, old pseudo-queries) to forget it; delete: those old queries.
    """
    out = EditTexts()
    if req.op == "delete":
        out.extend(ctx.old_queries(req.ids), [-1] * len(req.ids))
        return out
    queries = ctx.queries_for(req.docs, req.queries)
    rows = make_rows(queries)
    old: list[list[str]] = []
    if req.op == "add":
        ctx.add_rows(req.docs, rows)
    else:
        old = ctx.old_queries(req.ids, exclude=queries)
        ctx.set_rows(req.ids, rows)
    out.extend(queries, [ctx.model.doc_index(doc.id) for doc in req.docs])
    out.extend(old, [-1] * len(old))
    ctx.remember(req.docs)
    return out


@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Run a block with torch's global RNG seeded, restoring the caller's random state afterwards."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
