"""`rank-one`: locate-then-edit on the circuit (closed-form MEMIT / AlphaEdit update of the target linears).

For a batch of documents:
1. rows: new documents get the `row` method's rows (sentence embeddings) where the model's rows live in that space,
   else IncDSI's solved rows (as `row-solve`, with a wider margin `row_margin` for the indexed documents: a readout
   row alone would take old documents' queries, and the decoder edit below is fitted around the rows it starts
   from); updated documents get their new text's row; deleted
   documents keep theirs until the end (they take part in the objective), then leave the index and are zeroed;
2. keys: the inputs of each target linear (the circuit's editing targets, see `Circuit.editing_targets`) at
   decoder step 0 for the documents' queries (given ones and pseudo-queries; for deleted documents also their
   training queries in the indexed corpus);
3. values: one vector per (document, target) added to the target's output, optimised with Adam through the rest
   of the decoder (cached cross-attention K/V: only step 0 runs) so that
   - add / update (new text): the document wins its queries (cross-entropy over all docids);
   - delete / update (old text): the queries get the ranking the model's training objective gives a document it
     never saw: the dense teacher's distribution over the remaining documents (models `genedit train` made) or,
     for other models (or with `forget_own`) their own distribution renormalised without the document (`mask`'s
     answer); the document gets none;
   with `forget_rank` k the forgotten row is also pushed below the k-th remaining document (a leaked copy of
   the old row should not bring the document back); each vector is clamped to `clamp` x the mean norm of the
   target's outputs; `steps`/`lr` for adds, `forget_steps`/`forget_lr` when the edit also forgets;
4. update: per target, bottom-up, dW = R K^T (K K^T + lam * N0 * C)^-1 (`update_lam` for updates, `forget_lam` for deletes) with C the
   second moment of the N0 preserved keys (the indexed corpus's own queries and pseudo-queries at step 0, cached per
   target): MEMIT's lam * K0 K0^T, so every preserved key weighs the same in an edit of one document as in an edit
   of a thousand, and a stream of small edits cannot drift further than one batch of them; or with
   `nullspace=True` AlphaEdit's projection onto the directions the preserved keys leave free (plus the earlier
   edits' keys). After a lower target is updated, the keys and outputs of the targets above are read again and
   their residual is what is still missing (MEMIT).
Opt-in, for adds and updates, read on a seeded sample of preserved texts (`guard_texts`; training queries and
pseudo-queries of indexed documents, see guard.py): `guard` (shrink the update until it costs no more sampled texts
than the rows alone), `repair` (adds only: sampled old texts the new rows take rank 1 from join the edit, each with its own
value vector, to rank its own document first; with `repair_rounds` the add is solved again, up to that many times, from
the weights before it, with the texts the update itself took joining too), `doc_scale` (re-solve with the value of
each request document that took a sampled text's rank 1 scaled by `doc_shrink`) and `protect` (margin constraints: the sampled texts whose
top-1 margin the update shrank most join the preserved keys with `guard_boost` weight).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from genedit.edit import guard
from genedit.edit.activations import Prepared, frozen, prepare, run_step
from genedit.edit.closed_form import null_space, solve_update
from genedit.edit.context import EditContext, EditRequest
from genedit.edit.methods import EditMethod, register
from genedit.edit.methods.common import IncDSI, edit_texts, forget_distribution, initial_rows
from genedit.model.components import Site

log = logging.getLogger(__name__)


@dataclass
class ValueTargets:
    """What the value optimisation asks of each text: a docid position (hard) or a distribution (soft)."""

    group: torch.Tensor  # [n] index of the text's document in the request (one value vector per document)
    hard: torch.Tensor  # [n] docid position the text must rank first, or -1
    soft: torch.Tensor | None  # [n, N] target distribution over docids for texts with hard == -1
    forget: torch.Tensor | None = None  # [n] docid position of the document a soft-target text must forget


@register
@dataclass
class RankOne(EditMethod):
    """Closed-form update of the circuit's target linears (MEMIT; AlphaEdit null space optional)."""

    name = "rank-one"
    ops = ("add", "delete", "update")
    uses_circuit = True
    summary = "closed-form MEMIT/AlphaEdit update of the circuit's target linears"
    lam: float = 0.44  # preservation weight per preserved key (MEMIT's lambda on K0 K0^T)
    steps: int = 6
    lr: float = 0.4
    query_tokens: int = 32  # truncation of the edit's queries (encoding them is most of an edit's cost)
    clamp: float = 0.75
    weight_decay: float = 1e-3
    nullspace: bool = False
    threshold: float = 1e-2
    alpha: float = 1e-2
    stop_prob: float = 1.0  # a query stops pushing its document once it has this probability (1: never stop)
    forget_steps: int = 25  # value-optimisation steps when the edit also forgets (delete, update): a harder target
    forget_lr: float = 0.1
    forget_lam: float = 0.18  # deletes' preservation weight (a harder target: lam leaves the old row findable)
    update_lam: float = 2.0  # updates' preservation weight (issue 22, dev texts of both base kinds: fewer rank-1 losses and
    # less of the old text left than with forget_lam, new text found as well; docs/editing.md)
    forget_rank: int = 10  # delete/update: push the forgotten row below the k-th remaining document too (0: off)
    forget_own: bool = False  # delete/update: forgotten queries move to the model's own ranking without the document (mask's answer), not the teacher's
    guard: bool = False  # add/update: the update may take rank 1 from no more preserved texts than the rows alone (guard.py);
    # off by default: on the bundled corpus's add protocol it shrinks the update to nothing (rank-one = row), see CHANGELOG
    guard_texts: int = 256  # preserved texts the guard checks (encoded once per editing context)
    guard_rounds: int = 2  # re-solves with the texts the update took protected
    guard_boost: float = 100.0  # weight of a protected text's key, in units of a preserved key's (lam)
    # add/update, checked on the guard's sample of preserved texts (training-side texts, see guard.py):
    doc_scale: bool = False  # per-document scale: a document whose update takes rank 1 from sampled texts keeps less of it
    doc_shrink: float = 0.0  # factor on such a document's scale per round (0: it keeps only its row)
    protect: int = 0  # margin constraints: per round, the held texts whose margin the update shrinks most join the preserved keys
    scale_rounds: int = 3  # rounds of re-solving for doc_scale / protect
    repair: bool = False  # adds: sampled old texts the new rows take rank 1 from join the edit, each to rank its own document first
    repair_rounds: int = 0  # with repair: re-solves (from the weights before the edit) with the sampled texts the update itself took added
    # models whose rows are not sentence embeddings (classic DSI): the IncDSI solve of the new rows (common.IncDSI)
    row_margin: float = 2.0  # margin the indexed documents keep over a new row on their texts (IncDSI's margin_old;
    # 2.0, not row-solve's 0.5: issue 22's bench on three corpora, adds then cost old documents fewer rank-1 losses than retraining)
    row_per_text: bool = False  # one such constraint per preserved text instead of per document's mean state

    def __post_init__(self) -> None:
        """Refuse counts that would silently skip the edit or its checks (ValueError: one line)."""
        counts = {"steps": self.steps, "forget_steps": self.forget_steps, "guard_texts": self.guard_texts, "guard_rounds": self.guard_rounds,
                  "scale_rounds": self.scale_rounds, "protect": self.protect, "repair_rounds": self.repair_rounds, "forget_rank": self.forget_rank}
        bad = [f"{k}={v}" for k, v in counts.items() if not isinstance(v, int) or v < 0]
        if bad:
            raise ValueError(f"rank-one: {', '.join(bad)}: must be a whole number >= 0")

    def prepare(self, ctx: EditContext, req: EditRequest) -> None:
        """Second moments of the preserved keys at every target (once per model); indexed documents' states for row-solve."""
        for site in ctx.targets:
            ctx.covariance(site)
        if req.op in ("add", "update") and not ctx.rows_are_embeddings:
            ctx.doc_states()
        if self._guarded(req):
            key = f"guard:{self.guard_texts}:{ctx.settings.seed}:{self.query_tokens}"
            if key not in ctx.caches:
                ctx.caches[key] = guard.sample(ctx, self.guard_texts, ctx.settings.seed, self.query_tokens)
            self._sample = ctx.caches[key]

    def _guarded(self, req: EditRequest) -> bool:
        """Whether this edit reads the guard's sample (the guard, per-document scales or margin constraints)."""
        if req.op not in ("add", "update"):
            return False
        return (self.guard and not self.nullspace) or self.doc_scale or self.protect > 0 or self.repair

    def apply(self, ctx: EditContext, req: EditRequest) -> None:
        """Rows first, then the value optimisation and the closed-form update of every target (see module doc)."""
        model = ctx.model
        sample = getattr(self, "_sample", None) if self._guarded(req) else None
        if sample is not None:  # which preserved texts hold rank 1 before anything is written
            sample = guard.held_now(ctx, sample, exclude=set(req.ids))
        edit = edit_texts(ctx, req, lambda queries: self._rows(ctx, req, queries))
        if edit.texts and ctx.targets:
            repairing = self.repair and sample is not None and not edit.forgets
            repaired: list[int] = []  # sample texts that join the edit to rank their own document first
            if repairing:  # old texts the new rows took: back to their documents
                repaired = guard.check(ctx, sample, 0).lost.nonzero()[:, 0].tolist()
                log.info("rank-one repair: the new rows take rank 1 from %d of %d sampled old texts", len(repaired), len(sample.owners))
            lam = {"add": self.lam, "update": self.update_lam, "delete": self.forget_lam}[req.op]
            rounds = self.repair_rounds if repairing else 0
            restore = _snapshot(ctx) if rounds else None
            n_keys = {s: len(ctx.edit_keys.get(s, [])) for s in ctx.targets}
            for r in range(rounds + 1):
                texts = list(edit.texts) + [sample.texts[i] for i in repaired]
                group = list(edit.group) + [len(req.ids) + j for j in range(len(repaired))]
                hard = list(edit.hard) + [model.doc_index(sample.owners[i]) for i in repaired]
                batch = prepare(model, texts, max_length=self.query_tokens)
                targets = ValueTargets(torch.tensor(group, device=model.device), torch.tensor(hard, device=model.device), None)
                if edit.forgets:
                    targets.soft = forget_distribution(ctx, batch, req.ids, own=self.forget_own)
                    targets.forget = torch.tensor([model.doc_index(req.ids[g]) for g in edit.group], device=model.device)
                self._edit(ctx, batch, targets, req.ids, lam, n_groups=max(group) + 1, sample=sample)
                if restore is None or r == rounds:
                    break
                taken = guard.check(ctx, sample, 0).lost  # held before the edit, not first after it
                known = set(repaired)
                more = [i for i in taken.nonzero()[:, 0].tolist() if i not in known]
                log.info("rank-one repair round %d: the update takes rank 1 from %d more sampled old texts", r + 1, len(more))
                if not more:
                    break
                repaired += more  # solve again from the weights before the edit, with them in it
                restore()
                for s, n in n_keys.items():
                    del ctx.edit_keys.setdefault(s, [])[n:]
        if req.op == "delete":
            ctx.remove_rows(req.ids)

    def _rows(self, ctx: EditContext, req: EditRequest, queries: list[list[str]]) -> torch.Tensor:
        """Rows of added or updated documents: `initial_rows` in sentence-embedding space, else IncDSI's solved rows."""
        if ctx.rows_are_embeddings:
            return initial_rows(ctx, req.docs, queries)
        solver = IncDSI(margin_old=self.row_margin, per_text=self.row_per_text)
        return solver.solve(ctx, req.docs, queries, exclude=set(req.ids) if req.op == "update" else set())

    # --- the edit ---------------------------------------------------------------------------------
    def _edit(self, ctx: EditContext, batch: Prepared, targets: ValueTargets, ids: list[str], lam: float, n_groups: int,
              sample: guard.GuardSample | None = None) -> None:
        """Value vectors per group (the request's documents, then repaired texts), then the closed-form update of every target."""
        model = ctx.model
        sites = ctx.targets
        lowest = min(s.layer for s in sites)  # layers below the lowest target never change: computed once
        with torch.no_grad():
            start = run_step(model, batch, capture=sites, start_layer=lowest)
        deltas = self._values(ctx, batch, targets, start.outputs, n_groups, lowest)
        if sample is not None and not self.guard:  # per-document scales, margin constraints, repair
            self._fitted(ctx, batch, targets, ids, lam, start.outputs, deltas, sample, lowest)
            return
        wanted = {s: start.outputs[s] + deltas[s][targets.group] for s in sites}
        allowed = int(guard.lost(ctx, sample, None, lowest).sum()) if sample is not None else 0  # what the rows alone cost
        for i, site in enumerate(sites):
            if i == 0:
                keys, now = start.keys[site], start.outputs[site]
            else:  # lower targets changed: read this one's keys and outputs again
                with torch.no_grad():
                    again = run_step(model, batch, capture=[site], start_layer=lowest)
                keys, now = again.keys[site], again.outputs[site]
            resid = wanted[site] - now
            cov = ctx.covariance(site)
            if self.nullspace:
                prev = torch.cat(ctx.edit_keys[site]) if ctx.edit_keys.get(site) else None
                scale = (keys.double().pow(2).sum() / keys.shape[1]).item()
                delta = solve_update(keys, resid, cov, 0.0, projector=null_space(cov, self.threshold), prev_keys=prev, alpha=self.alpha * scale)
            elif sample is not None:
                weight = lam * ctx.n_preserved

                def solve(extra: torch.Tensor | None, keys=keys, resid=resid, cov=cov, weight=weight) -> torch.Tensor:
                    c = cov if extra is None else cov + self.guard_boost / max(ctx.n_preserved, 1) * (extra.double().T @ extra.double()).to(cov.device)
                    return solve_update(keys, resid, c, weight)

                delta, _ = guard.guarded_update(ctx, sample, site, solve, start_layer=lowest, allowed=allowed, rounds=self.guard_rounds, scales=(0.75, 0.5, 0.25, 0.0))
            else:
                delta = solve_update(keys, resid, cov, lam * ctx.n_preserved)
            ctx.apply_delta(site, delta)
            ctx.edit_keys.setdefault(site, []).append(keys.detach())
        log.info("rank-one: %d keys, targets %s", len(batch), ", ".join(map(str, sites)))

    def _fitted(self, ctx: EditContext, batch: Prepared, targets: ValueTargets, ids: list[str], lam: float, outputs: dict[Site, torch.Tensor],
                deltas: dict[Site, torch.Tensor], sample: guard.GuardSample, lowest: int) -> None:
        """The update re-solved on the guard's sample: per-document scales (`doc_scale`) and margin constraints (`protect`).

        Each round solves every target (bottom-up, as `_edit`), reads the sample, and finds the held texts the update
        (not the rows alone) takes rank 1 from: the request's documents that took them keep `doc_shrink` of their
        value; the `protect` held texts whose top-1 margin fell most join the preserved keys with `guard_boost` weight.
        """
        model = ctx.model
        sites = ctx.targets
        rows = guard.check(ctx, sample, lowest)  # rows written, decoder not yet touched
        positions = torch.tensor([model.doc_index(d) for d in ids], device=model.device)
        scale = torch.ones(len(next(iter(deltas.values()))), device=model.device)  # one per group (request's documents first)
        protected = torch.zeros(len(sample.owners), dtype=torch.bool, device=model.device)
        restore = _snapshot(ctx)
        for r in range(self.scale_rounds + 1):
            keys = self._solve_all(ctx, batch, outputs, {s: deltas[s] * scale[:, None] for s in sites}, targets.group, lowest, lam, sample, protected)
            now = guard.check(ctx, sample, lowest)
            extra, thief = guard.blame(now, rows, positions)
            log.info("rank-one round %d: update takes %d held texts (%d by the request's documents), %d documents scaled down, %d texts protected",
                     r, int(extra.sum()), int((thief >= 0).sum()), int((scale < 1).sum()), int(protected.sum()))
            if r == self.scale_rounds or not extra.any():
                break
            changed = False
            if self.doc_scale:
                hit = thief[thief >= 0].unique()
                if hit.numel() and bool((scale[hit] > 0).any()):
                    scale[hit] *= self.doc_shrink
                    changed = True
            if self.protect > 0:
                drop = (rows.margin - now.margin).masked_fill(~sample.held.to(now.margin.device) | protected | ~torch.isfinite(rows.margin), float("-inf"))
                pick = drop.topk(min(self.protect, len(drop))).indices
                pick = pick[torch.isfinite(drop[pick]) & (drop[pick] > 0)]
                if pick.numel():
                    protected[pick] = True
                    changed = True
            if not changed:
                break
            restore()
        for s in sites:
            ctx.edit_keys.setdefault(s, []).append(keys[s].detach())

    def _solve_all(self, ctx: EditContext, batch: Prepared, outputs: dict[Site, torch.Tensor], deltas: dict[Site, torch.Tensor], group: torch.Tensor,
                   lowest: int, lam: float, sample: guard.GuardSample, protected: torch.Tensor) -> dict[Site, torch.Tensor]:
        """Solve and apply every target bottom-up (MEMIT), protected sample texts weighing `guard_boost` preserved keys; the edit's keys per target."""
        model = ctx.model
        out: dict[Site, torch.Tensor] = {}
        for site in ctx.targets:
            with torch.no_grad():
                again = run_step(model, batch, capture=[site], start_layer=lowest)
            keys, now = again.keys[site], again.outputs[site]
            resid = outputs[site] + deltas[site][group] - now
            cov = ctx.covariance(site)
            if bool(protected.any()):
                with torch.no_grad():
                    extra = run_step(model, sample.batch, capture=[site], start_layer=lowest).keys[site][protected].double()
                cov = cov + self.guard_boost / max(ctx.n_preserved, 1) * (extra.T @ extra).to(cov.device)
            if self.nullspace:
                prev = torch.cat(ctx.edit_keys[site]) if ctx.edit_keys.get(site) else None
                alpha = self.alpha * (keys.double().pow(2).sum() / keys.shape[1]).item()
                delta = solve_update(keys, resid, cov, 0.0, projector=null_space(cov, self.threshold), prev_keys=prev, alpha=alpha)
            else:
                delta = solve_update(keys, resid, cov, lam * ctx.n_preserved)
            ctx.apply_delta(site, delta)
            out[site] = keys
        return out

    def _values(self, ctx: EditContext, batch: Prepared, targets: ValueTargets, outputs: dict[Site, torch.Tensor], n_groups: int, lowest: int) -> dict[Site, torch.Tensor]:
        """Per (document, target) output vectors that make the model do what the targets ask (Adam, clamped)."""
        model = ctx.model
        sites = ctx.targets
        scale = {s: outputs[s].norm(dim=-1).mean().item() for s in sites}
        units = {s: torch.zeros(n_groups, outputs[s].shape[1], device=outputs[s].device, requires_grad=True) for s in sites}
        forgets = targets.soft is not None
        opt = torch.optim.Adam(list(units.values()), lr=self.forget_lr if forgets else self.lr)
        hard_mask = targets.hard >= 0
        with frozen(model):
            for _ in range(self.forget_steps if forgets else self.steps):
                add = {s: units[s][targets.group] * scale[s] for s in sites}
                logits = model.scorer.logits(run_step(model, batch, add=add, start_layer=lowest).state)
                logp = F.log_softmax(logits, dim=-1)
                loss = logits.new_zeros(())
                if hard_mask.any():
                    lp = logp[hard_mask].gather(1, targets.hard[hard_mask].to(logp.device)[:, None])[:, 0]
                    active = lp < math.log(self.stop_prob) if self.stop_prob < 1 else torch.ones_like(lp, dtype=torch.bool)
                    loss = loss - (lp * active).sum() / max(int(hard_mask.sum()), 1)
                if targets.soft is not None and (~hard_mask).any():
                    soft = targets.soft[~hard_mask.to(targets.soft.device)]
                    loss = loss - (soft * logp[~hard_mask].clamp(min=-1e4)).sum(-1).mean()
                    if self.forget_rank and targets.forget is not None:  # the forgotten document's row falls below the k-th remaining document
                        own = logits[~hard_mask].gather(1, targets.forget[~hard_mask].to(logits.device)[:, None])[:, 0]
                        kth = logits[~hard_mask].masked_fill(soft == 0, float("-inf")).topk(self.forget_rank, dim=-1).values[:, -1]
                        loss = loss + torch.relu(own - kth).mean()
                loss = loss + self.weight_decay * sum((u**2).sum() for u in units.values())
                opt.zero_grad()
                loss.backward()
                opt.step()
                with torch.no_grad():
                    for u in units.values():
                        norm = u.norm(dim=-1, keepdim=True)
                        u.mul_(torch.clamp(self.clamp / norm.clamp(min=1e-12), max=1.0))
        return {s: units[s].detach() * scale[s] for s in sites}


def _snapshot(ctx: EditContext) -> Callable[[], None]:
    """Copy the target linears' weights as they are now; the returned function puts them back in place (to solve again)."""
    weights = [ctx.model.cmap.module(ctx.model.hf, s.component, s.layer).weight for s in ctx.targets]
    saved = [w.detach().clone() for w in weights]

    def restore() -> None:
        with torch.no_grad():
            for w, old in zip(weights, saved):
                w.copy_(old)

    return restore
