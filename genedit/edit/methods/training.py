"""Gradient training of an edit (the `finetune`, `finetune-replay` and `lora` methods): the training set and the loop.

The training set: the edit's texts and targets (`common.edit_texts`: the new documents' queries to rank them first,
the forgotten documents' queries toward `common.forget_distribution`), plus, with `replay_ratio`, a seeded sample of
the indexed documents' own texts (`ctx.preserved_texts`) each with its own docid as the target.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from genedit.edit.activations import Prepared, prepare, run_step
from genedit.edit.context import EditContext, EditRequest
from genedit.edit.methods.common import edit_texts, forget_distribution, initial_rows
from genedit.model.genir import GenIRModel


@dataclass
class TrainingSet:
    """Texts an edit trains on (encoded once) and what each must rank first, or the distribution it must take."""

    batch: Prepared
    hard: torch.Tensor  # [n] docid position the text must rank first, or -1 (soft target)
    soft: torch.Tensor | None  # [n_soft, N] target distributions of the texts with hard == -1, in text order
    soft_pos: torch.Tensor  # [n] row of `soft` for each text, or -1
    n_edit: int  # texts of the edited documents (the rest is replay)

    def __len__(self) -> int:
        """Number of texts."""
        return len(self.batch)

    def loss(self, model: GenIRModel, index: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of a minibatch: hard docid targets and soft target distributions."""
        logp = F.log_softmax(model.scorer.logits(run_step(model, self.batch.select(index)).state), dim=-1)
        hard = self.hard[index].to(logp.device)
        per_text = logp.new_zeros(len(index))
        is_hard = hard >= 0
        if is_hard.any():
            per_text[is_hard] = -logp[is_hard].gather(1, hard[is_hard][:, None]).squeeze(1)
        if self.soft is not None and (~is_hard).any():
            soft = self.soft[self.soft_pos[index][~is_hard.cpu()]].to(logp.device)
            per_text[~is_hard] = -(soft * logp[~is_hard].clamp(min=-1e4)).sum(-1)
        return per_text.mean()


def training_set(ctx: EditContext, req: EditRequest, *, replay_ratio: float, query_tokens: int, generator: torch.Generator) -> TrainingSet:
    """Write the edit's rows (add / update), then collect its texts and targets plus a seeded replay sample (see module doc)."""
    model = ctx.model
    edit = edit_texts(ctx, req, lambda queries: initial_rows(ctx, req.docs, queries))
    texts, hard = edit.texts, edit.hard
    n_edit = len(texts)
    if replay_ratio > 0:
        pool, owners = ctx.preserved_texts(exclude=set(req.ids))
        k = min(len(pool), math.ceil(n_edit * replay_ratio))
        for i in torch.randperm(len(pool), generator=generator, device=generator.device)[:k].tolist():
            texts.append(pool[i])
            hard.append(model.doc_index(owners[i]))
    batch = prepare(model, texts, max_length=query_tokens)
    hard_t = torch.tensor(hard, dtype=torch.long, device=model.device)
    is_soft = hard_t < 0
    soft_pos = torch.where(is_soft, torch.cumsum(is_soft.long(), 0) - 1, torch.full_like(hard_t, -1))
    soft = None
    if is_soft.any():
        soft = forget_distribution(ctx, batch.select(is_soft.nonzero().squeeze(1)), req.ids).detach()
    return TrainingSet(batch, hard_t, soft, soft_pos, n_edit)


def fit(
    model: GenIRModel,
    data: TrainingSet,
    groups: Sequence[tuple[Sequence[torch.Tensor], float]],
    *,
    epochs: int,
    batch_size: int,
    generator: torch.Generator,
    masks: dict[int, torch.Tensor] | None = None,
    before_first_step: Callable[[], None] | None = None,
) -> list[float]:
    """Adam over seeded minibatches for some epochs on (tensors, lr) groups, `masks`' gradients masked; mean loss per epoch."""
    masks = masks if masks is not None else {}
    by_id = {id(p): p for params, _ in groups for p in params}
    for p in by_id.values():
        p.grad = None  # a stale gradient of another shape (the vocabulary grew) must not be accumulated into
    opt: torch.optim.Optimizer | None = None
    losses = []
    for _ in range(epochs):
        order = torch.randperm(len(data), generator=generator, device=generator.device)
        total = 0.0
        for start in range(0, len(data), batch_size):
            index = order[start : start + batch_size]
            loss = data.loss(model, index)
            loss.backward()
            if opt is None:
                if before_first_step is not None:
                    before_first_step()  # may drop tensors that got no gradient and set masks
                live = [{"params": [p for p in params if p.requires_grad], "lr": lr} for params, lr in groups]
                opt = torch.optim.Adam([g for g in live if g["params"]])
            for key, mask in masks.items():
                grad = by_id[key].grad
                if grad is not None:
                    grad.mul_(mask)
            opt.step()
            opt.zero_grad(set_to_none=True)
            total += float(loss.detach()) * len(index)
        losses.append(total / max(len(data), 1))
    for p in by_id.values():
        p.grad = None
    return losses
