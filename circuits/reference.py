"""Plain torch forward hooks on the Hugging Face model, one site at a time: the slow, independent reference.

The analysis runs through nnsight with batched sites and cached cross-attention K/V (`circuits.patching`).
This module computes the same things the way the reference code of the field does (a hook on the module the
component map names, one full forward per patch), so that parity tests and the speed benchmark have
something independent to compare against. It shares nothing with `circuits.patching` but the data types.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch

from circuits.patching import Activations
from circuits.runner import ATTENTION
from genedit.model.components import COMPONENTS, Site
from genedit.model.genir import GenIRModel


@contextmanager
def hooked(model: GenIRModel, patches: Mapping[Site, torch.Tensor]) -> Iterator[None]:
    """Within the block, each site's step-0 activation is replaced by its value ([B, width]) via torch hooks."""
    cmap = model.cmap
    handles = []
    try:
        for site, value in patches.items():
            module = cmap.module(model.hf, site.component, site.layer)
            if site.head is None:
                def out_hook(mod: torch.nn.Module, args: tuple, out: torch.Tensor, v: torch.Tensor = value) -> torch.Tensor:
                    return torch.cat([v.to(out.dtype).unsqueeze(1), out[:, 1:]], 1)

                handles.append(module.register_forward_hook(out_hook))
            else:
                def pre_hook(mod: torch.nn.Module, args: tuple, v: torch.Tensor = value, h: int = site.head) -> tuple:
                    x = args[0].clone()
                    cmap.heads(x)[:, 0, h] = v
                    return (x, *args[1:])

                handles.append(module.register_forward_pre_hook(pre_hook))
        yield
    finally:
        for handle in handles:
            handle.remove()


def hook_patched(model: GenIRModel, hidden: torch.Tensor, mask: torch.Tensor, patches: Mapping[Site, torch.Tensor]) -> torch.Tensor:
    """Docid logits [B, N] of one full forward with every site in `patches` replaced (torch hooks, no nnsight)."""
    with hooked(model, patches), torch.no_grad():
        return model.scorer(hidden, mask)


def hook_capture(model: GenIRModel, hidden: torch.Tensor, mask: torch.Tensor) -> tuple[Activations, torch.Tensor]:
    """Clean step-0 activations of every component (outputs) and attention (head inputs), and the logits."""
    cmap = model.cmap
    outs: dict[tuple[int, str], torch.Tensor] = {}
    ins: dict[tuple[int, str], torch.Tensor] = {}
    handles = []
    for layer in range(cmap.n_layers):
        for comp in COMPONENTS:
            def hook(mod: torch.nn.Module, args: tuple, out: torch.Tensor, key: tuple[int, str] = (layer, comp)) -> None:
                ins[key] = args[0][:, 0].detach().clone()
                outs[key] = out[:, 0].detach().clone()

            handles.append(cmap.module(model.hf, comp, layer).register_forward_hook(hook))
    try:
        with torch.no_grad():
            logits = model.scorer(hidden, mask)
    finally:
        for handle in handles:
            handle.remove()
    n_layers, batch = cmap.n_layers, logits.shape[0]
    out = torch.stack([outs[(layer, c)] for layer in range(n_layers) for c in COMPONENTS]).view(n_layers, len(COMPONENTS), batch, -1)
    head_in = torch.stack([ins[(layer, c)] for layer in range(n_layers) for c in ATTENTION]).view(n_layers, len(ATTENTION), batch, -1)
    return Activations(out, head_in), logits
