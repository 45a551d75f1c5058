"""`lora`: a peft LoRA adapter on the circuit's target linears, trained with replay, then merged into the weights.

One named adapter per edit (`edit-<n>`, n = the journal entry the edit becomes) is injected with
`peft.inject_adapter_in_model` into the target linears only: `LoraConfig(target_modules=<regex>)`, the regex built
from the editing targets through the component map (`cmap.path`), matched with re.fullmatch, so no encoder or other
decoder module is hit. The adapter trains on the edit's training set (the same as `finetune`'s: the edited documents'
queries with their targets, see `training.training_set`) plus replay of a seeded sample of the indexed documents' own
texts, with cached cross-attention K/V (one decoder step per forward). At the end of the edit it is MERGED into the
base weights and the LoRA layers are removed again: the model is a plain Hugging Face model afterwards, and the
journal holds the dense change of each target weight (touched before the adapter is injected). Rollback restores the
exact previous weights from the journal (never by subtracting the adapter). If training fails the adapter is removed
unmerged, leaving the weights as they were.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from torch import nn

from genedit.edit.activations import frozen
from genedit.edit.context import EditContext, EditRequest
from genedit.edit.methods import EditMethod, register
from genedit.edit.methods.common import seeded
from genedit.edit.methods.training import fit, training_set

log = logging.getLogger(__name__)


def target_regex(ctx: EditContext) -> tuple[list[str], str]:
    """Module paths of the editing targets and the regex (for re.fullmatch) that matches exactly those."""
    cmap = ctx.model.cmap
    paths = list(dict.fromkeys(cmap.path(site.component, site.layer) for site in ctx.targets))
    return paths, "(?:" + "|".join(re.escape(p) for p in paths) + ")"


def unload(hf: nn.Module, paths: list[str], adapter: str, *, merge: bool) -> None:
    """Replace each LoRA layer at `paths` by its base linear, after merging the adapter into it if `merge`."""
    error: Exception | None = None
    for path in paths:
        module = hf.get_submodule(path)
        if not isinstance(module, LoraLayer):
            continue
        if merge and error is None:
            try:
                module.merge(safe_merge=True, adapter_names=[adapter])  # raises on NaN before writing
            except ValueError as exc:  # the layers are still removed; the journal restores merged weights
                error = exc
        parent, _, child = path.rpartition(".")
        setattr(hf.get_submodule(parent), child, module.get_base_layer())
    if hasattr(hf, "peft_config"):
        del hf.peft_config
    if error is not None:
        raise error


@register
@dataclass
class Lora(EditMethod):
    """LoRA adapter on the circuit's target linears, trained with replay and merged (see module doc)."""

    name = "lora"
    ops = ("add", "delete", "update")
    uses_circuit = True
    summary = "peft LoRA on the circuit's target linears with replay, merged at the end of the edit"
    r: int = 8
    alpha: float = 16.0
    epochs: int = 10
    lr: float = 2e-3
    batch_size: int = 32
    replay_ratio: float = 1.0  # replayed old-document texts per edited text
    query_tokens: int = 32
    seed: int = 0

    def apply(self, ctx: EditContext, req: EditRequest) -> None:
        """Rows and training set, then inject, train and merge one adapter; delete ends by removing the documents."""
        if not ctx.targets:
            raise ValueError("lora needs editing targets (a circuit, or Editor(targets=[...]))")
        with seeded(self.seed, ctx.model.device):  # LoRA's A matrices are drawn from torch's RNG: keep the caller's
            self._apply(ctx, req)

    def _apply(self, ctx: EditContext, req: EditRequest) -> None:
        """Body of `apply`, under the seeded RNG."""
        t0 = time.perf_counter()
        model = ctx.model
        hf = model.hf
        if hasattr(hf, "peft_config"):
            raise RuntimeError("the model already carries peft adapters; lora edits a plain model")
        paths, regex = target_regex(ctx)
        gen = torch.Generator().manual_seed(self.seed)
        data = training_set(ctx, req, replay_ratio=self.replay_ratio, query_tokens=self.query_tokens, generator=gen)
        for path in paths:  # journalled under their plain names, before peft renames them to *.base_layer.weight
            ctx.touch(hf.get_submodule(path).weight)
        adapter = f"edit-{len(model.journal.entries) + 1}"
        config = LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=0.0, target_modules=regex, bias="none")
        with frozen(model):
            merged = False
            try:
                inject_adapter_in_model(config, hf, adapter_name=adapter)
                params = [p for path in paths for p in _adapter_params(hf.get_submodule(path), adapter)]
                for p in params:
                    p.requires_grad_(True)
                losses = fit(model, data, [(params, self.lr)], epochs=self.epochs, batch_size=self.batch_size, generator=gen)
                merged = True
            finally:
                unload(hf, paths, adapter, merge=merged)
        ctx.decoder_version += 1
        if req.op == "delete":
            ctx.remove_rows(req.ids)
        log.info(
            "lora %s on %s: %s %d docs, %d texts (%d replayed), %d epochs, loss %.3f -> %.3f, %.0f ms",
            adapter, ", ".join(map(str, ctx.targets)), req.op, len(req.ids), len(data), len(data) - data.n_edit, self.epochs,
            losses[0] if losses else float("nan"), losses[-1] if losses else float("nan"), (time.perf_counter() - t0) * 1000,
        )


def _adapter_params(module: nn.Module, adapter: str) -> list[nn.Parameter]:
    """The A and B matrices of one adapter in a LoRA layer."""
    if not isinstance(module, LoraLayer):
        raise RuntimeError(f"peft did not wrap {type(module).__name__} with a LoRA layer")
    return list(module.lora_A[adapter].parameters()) + list(module.lora_B[adapter].parameters())
