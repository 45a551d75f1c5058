"""A guard for decoder edits: after an update is computed, check it on a sample of preserved texts and shrink it.

The sample: `size` of the indexed corpus's preserved texts (training queries and pseudo-queries of old documents), a
seeded draw, encoded once per editing context (its cross-attention K/V kept: each check is one step-0 forward of
the layers from the lowest target up). A text is *held* when its own document ranks first; the edit may cost no
more held texts than the rows alone already cost (what the `row` / `row-solve` edit would), so:
1. re-solve: texts the update takes rank 1 from are added to the preserved keys with a large weight, `rounds` times;
2. line search: the largest scale of the update (1, then `scales`) that keeps the loss within the rows' own.
Everything here reads training-side texts only, never evaluation queries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from genedit.edit.activations import Prepared, prepare, run_step
from genedit.edit.context import EditContext
from genedit.model.components import Site

log = logging.getLogger(__name__)


@dataclass
class GuardSample:
    """Preserved texts encoded once, their documents' positions and whether each one held rank 1 before the edit."""

    batch: Prepared
    owners: list[str]
    held: torch.Tensor  # [m] bool: the text's document ranked first on the model before the edit
    texts: list[str] = field(default_factory=list)  # the texts themselves (what `repair` adds to an edit)


@dataclass
class GuardReport:
    """What the guard did to one edit."""

    allowed: int  # held texts the rows alone lose
    lost_full: int  # held texts the unguarded update loses
    lost: int  # held texts the applied update loses
    scale: float
    rounds: int


def sample(ctx: EditContext, size: int, seed: int, query_tokens: int | None) -> GuardSample | None:
    """The guard's preserved texts on the model as it is now (call before the edit touches it), or None without a corpus."""
    try:
        texts, owners = ctx.preserved_texts()
    except ValueError:
        return None
    gen = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(texts), generator=gen)[:size].sort().values.tolist()
    texts, owners = [texts[i] for i in pick], [owners[i] for i in pick]
    batch = prepare(ctx.model, texts, max_length=query_tokens)
    return held_now(ctx, GuardSample(batch, owners, torch.ones(len(owners), dtype=torch.bool, device=ctx.model.device), texts), set())


def held_now(ctx: EditContext, s: GuardSample, exclude: set[str]) -> GuardSample:
    """The sample with `held` read on the model as it is now; texts of the edit's own documents never count."""
    model = ctx.model
    keep = torch.tensor([o in model and o not in exclude for o in s.owners], device=model.device)
    with torch.no_grad():
        s.batch.forget_layers()  # lower layers may have changed since the last edit
        top = model.scorer.logits(run_step(model, s.batch).state).argmax(-1)
    own = torch.tensor([model.doc_index(o) if o in model else -1 for o in s.owners], device=top.device)
    return GuardSample(s.batch, s.owners, (top == own) & keep.to(top.device), s.texts)


def lost(ctx: EditContext, s: GuardSample, add: dict[Site, torch.Tensor] | None = None, start_layer: int = 0) -> torch.Tensor:
    """[m] bool: held texts that no longer rank their document first on the model now (plus `add` at target outputs)."""
    model = ctx.model
    with torch.no_grad():
        out = run_step(model, s.batch, add=add, start_layer=start_layer)
        top = model.scorer.logits(out.state).argmax(-1)
    own = torch.tensor([model.doc_index(o) if o in model._index else -1 for o in s.owners], device=top.device)
    return s.held.to(top.device) & (top != own)


@dataclass
class Check:
    """The sample read on the model as it is now (plus any `add`): each text's top document and its margin."""

    top: torch.Tensor  # [m] docid position ranked first
    margin: torch.Tensor  # [m] own document's logit minus the best other document's (negative: not first)
    lost: torch.Tensor  # [m] bool: held before the edit, not first now


def check(ctx: EditContext, s: GuardSample, start_layer: int = 0) -> Check:
    """Top-1 documents, margins and lost texts of the sample on the model as it is now (one step-0 forward)."""
    model = ctx.model
    with torch.no_grad():
        logits = model.scorer.logits(run_step(model, s.batch, start_layer=start_layer).state).float()
    own = torch.tensor([model.doc_index(o) if o in model._index else -1 for o in s.owners], device=logits.device)
    mine = logits.gather(1, own.clamp(min=0)[:, None])[:, 0]
    others = logits.scatter(1, own.clamp(min=0)[:, None], float("-inf")).max(-1).values
    top = logits.argmax(-1)
    return Check(top, torch.where(own >= 0, mine - others, torch.full_like(mine, float("-inf"))), s.held.to(top.device) & (top != own))


def blame(now: Check, rows: Check, new_positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Texts the decoder update takes rank 1 from (not lost to the rows alone) and the request's document that took each.

    `new_positions` [g]: docid position of each document of the request (-1: none). Returns (texts [m] bool,
    thieves [m] index into the request or -1 when an indexed document took the text).
    """
    extra = now.lost & ~rows.lost.to(now.lost.device)
    match = now.top[:, None] == new_positions.to(now.top.device)[None, :]  # [m, g]
    thief = torch.where(match.any(-1), match.float().argmax(-1), torch.full_like(now.top, -1))
    return extra, torch.where(extra, thief, torch.full_like(thief, -1))


def guarded_update(
    ctx: EditContext,
    s: GuardSample,
    site: Site,
    solve: Callable[[torch.Tensor | None], torch.Tensor],
    *,
    start_layer: int,
    allowed: int,
    rounds: int,
    scales: Sequence[float],
) -> tuple[torch.Tensor, GuardReport]:
    """The weight change for one target, guarded (see module doc); `solve(extra_keys)` re-solves with more preserved keys.

    `allowed`: held texts the rows alone lose (read before any target is updated).
    """
    module = ctx.model.cmap.module(ctx.model.hf, site.component, site.layer)
    with torch.no_grad():
        keys = run_step(ctx.model, s.batch, capture=[site], start_layer=start_layer).keys[site]  # unchanged by this target's edit

    def lost_with(delta: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        shift = (keys.to(torch.float64) @ delta.T * scale).to(keys.dtype)
        return lost(ctx, s, {site: shift.to(module.weight.device)}, start_layer)

    delta = solve(None)
    now = lost_with(delta)
    full = int(now.sum())
    extra: torch.Tensor | None = None
    done = 0
    while int(now.sum()) > allowed and done < rounds:
        losers = keys[now]
        extra = losers if extra is None else torch.cat([extra, losers])
        delta = solve(extra)
        now = lost_with(delta)
        done += 1
    scale = 1.0
    if int(now.sum()) > allowed:
        for scale in scales:
            now = lost_with(delta, scale)
            if int(now.sum()) <= allowed:
                break
        delta = delta * scale
    report = GuardReport(allowed, full, int(now.sum()), scale, done)
    log.info("guard at %s: rows alone lose %d held texts, the update %d, guarded %d (scale %.2f, %d re-solves)", site, allowed, full, report.lost, scale, done)
    return delta, report
