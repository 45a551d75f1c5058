"""`finetune` and `finetune-replay`: gradient training of the decoder on the edited documents' queries (baselines).

Both methods build the same training set (shared with `lora`, see `training.training_set`):
- add: the new documents get the `row` method's rows (`initial_rows`), then their queries (given ones and
  pseudo-queries) must rank them first (cross-entropy over all docids);
- update: the document's row becomes the `row` row of its new text; the new text's queries must rank it first, and
  the queries that found its old text (training queries, old pseudo-queries) are trained toward the teacher
  distribution `common.forget_distribution` (the model's objective for a document it never saw), which gives the document zero;
- delete: the deleted documents' queries are trained toward that teacher distribution over the remaining
  documents; at the end the documents leave the index and their rows are zeroed.
`finetune-replay` (DSI++-like) adds a seeded sample of the indexed documents' own texts (`ctx.preserved_texts`),
`replay_ratio` times as many as the edit's texts, each with its own docid as the target.

What trains: every decoder parameter that gets a gradient at step 0 (found from the first backward pass), except
tensors shared with the encoder and vocabulary-indexed tensors; of the decoder's embedding tables only the rows that
step 0 reads (start position, token type); of the output matrix only the rows of the added or updated documents
(`train_rows`). Cross-attention key/value projections act on the encoder states only: they are cached
(`activations.prepare`) and do not train; self-attention query/key projections (and T5's relative position bias) get
an exactly zero gradient (attention over the single start position) and do not train either. Every trained tensor (or row set) is journalled before the
first optimizer step, so `changed_params` counts exactly what may change and undo is bit-exact.

Each step is one cached decoder step (`run_step`) on a minibatch; Adam without weight decay, so rows whose gradient
is masked to zero stay bit-identical.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from genedit.edit.activations import frozen
from genedit.edit.context import EditContext, EditRequest
from genedit.edit.methods import EditMethod, register
from genedit.edit.methods.common import seeded
from genedit.edit.methods.training import fit, training_set

log = logging.getLogger(__name__)


def _row_mask(weight: torch.Tensor, rows: Sequence[int]) -> torch.Tensor:
    """A 0/1 mask over the first axis of `weight` (broadcast over the others) that keeps `rows`."""
    mask = torch.zeros(weight.shape[0], *([1] * (weight.dim() - 1)), dtype=weight.dtype, device=weight.device)
    mask[list(rows)] = 1.0
    return mask


@register
@dataclass
class FineTune(EditMethod):
    """Fine-tune the decoder on the edited documents' queries (cross-entropy over all docids): a baseline."""

    name = "finetune"
    ops = ("add", "delete", "update")
    summary = "fine-tune the whole decoder on the edited documents' queries (baseline, forgets)"
    epochs: int = 5
    lr: float = 1e-4  # decoder weights (the trainer's rate for pretrained weights)
    lr_rows: float = 1e-3  # the edited documents' docid rows (the trainer's rate for rows)
    batch_size: int = 32
    replay_ratio: float = 0.0  # replayed old-document texts per edited text
    train_rows: bool = True  # the edited documents' docid rows train too (never other rows)
    query_tokens: int = 32
    seed: int = 0

    def apply(self, ctx: EditContext, req: EditRequest) -> None:
        """Rows, training set, then Adam on the decoder (see module doc); delete ends by removing the documents."""
        with seeded(self.seed, ctx.model.device):  # e.g. resizing the vocabulary draws random rows: keep the caller's RNG
            self._apply(ctx, req)

    def _apply(self, ctx: EditContext, req: EditRequest) -> None:
        """Body of `apply`, under the seeded RNG."""
        t0 = time.perf_counter()
        model = ctx.model
        gen = torch.Generator().manual_seed(self.seed)
        data = training_set(ctx, req, replay_ratio=self.replay_ratio, query_tokens=self.query_tokens, generator=gen)
        hf = model.hf
        vocab_ids = {id(t) for t in ctx.unembedding_tensors()}
        encoder_ids = {id(p) for p in hf.get_encoder().parameters()}
        decoder = hf.get_decoder()
        whole = [p for p in decoder.parameters() if id(p) not in encoder_ids and id(p) not in vocab_ids and (p.dim() == 0 or p.shape[0] != model.vocab_rows)]
        tables = {id(m.weight) for m in decoder.modules() if isinstance(m, nn.Embedding)}
        weight = model.cmap.unembedding(hf).weight
        masks: dict[int, torch.Tensor] = {}
        row_params: list[torch.Tensor] = []
        if self.train_rows and req.op != "delete":
            token_ids = [int(model.docid_token_ids[model.doc_index(d)]) for d in req.ids]
            if req.op == "update":
                ctx.touch(weight, token_ids)  # journalled by set_rows already; added rows are journalled as new
            masks[id(weight)] = _row_mask(weight, token_ids)
            row_params.append(weight)

        def journal_trained() -> None:
            for p in whole:
                if p.grad is None or not p.grad.any():  # not reached by step 0 (cached cross-attention K/V projections) or
                    p.requires_grad_(False)  # no gradient there (self-attention over the one start position: query, key)
                elif id(p) in tables:
                    read = (p.grad.reshape(p.shape[0], -1) != 0).any(1).nonzero().squeeze(1).tolist()
                    ctx.touch(p, read)
                    masks[id(p)] = _row_mask(p, read)
                else:
                    ctx.touch(p)

        with frozen(model):
            for p in whole + row_params:
                p.requires_grad_(True)
            groups = [(whole, self.lr), (row_params, self.lr_rows)]
            losses = fit(model, data, groups, epochs=self.epochs, batch_size=self.batch_size, generator=gen, masks=masks, before_first_step=journal_trained)
        ctx.decoder_version += 1
        if req.op == "delete":
            ctx.remove_rows(req.ids)
        log.info(
            "%s: %s %d docs, %d texts (%d replayed), %d epochs, loss %.3f -> %.3f, %.0f ms",
            self.name, req.op, len(req.ids), len(data), len(data) - data.n_edit, self.epochs,
            losses[0] if losses else float("nan"), losses[-1] if losses else float("nan"), (time.perf_counter() - t0) * 1000,
        )


@register
@dataclass
class FineTuneReplay(FineTune):
    """Fine-tune the decoder with replay of a seeded sample of the indexed documents' texts (DSI++-like)."""

    name = "finetune-replay"
    summary = "fine-tune the decoder with replay of indexed documents' texts (DSI++-like)"
    replay_ratio: float = 2.0
