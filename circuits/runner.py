"""The intervention engine: one decoder step of a GenIR model wrapped in nnsight, with reusable cross-attention K/V.

Every decoder component is reached through the model's ComponentMap (`cmap.module(model.hf, component, layer)`);
the matching nnsight Envoy is looked up by module identity, so no module path is spelled here (and BERT's
submodules called `output`, which nnsight renames, need no special case).

Speed: the encoder runs once per query batch, and so do the cross-attention key/value projections of the encoder
states (they do not depend on anything in the decoder). A patched forward over P copies of a batch reuses them
through a transformers `EncoderDecoderCache`, so its cost is the decoder's one-position work only.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import torch
from nnsight import NNsight
from torch import nn
from transformers import DynamicCache, EncoderDecoderCache

from genedit.model.components import COMPONENTS, Component, ComponentMap
from genedit.model.genir import Encoded, GenIRModel

log = logging.getLogger(__name__)

ATTENTION: tuple[Component, ...] = ("self_attn", "cross_attn")


@dataclass
class CrossKV:
    """Cross-attention keys and values of every decoder layer for one batch of encoder states."""

    keys: list[torch.Tensor]  # per layer [B, H, S, d_head]
    values: list[torch.Tensor]
    mask: torch.Tensor  # [B, S] encoder attention mask

    @property
    def batch(self) -> int:
        """Rows of the batch."""
        return self.mask.shape[0]

    def repeat(self, times: int) -> "CrossKV":
        """The batch repeated `times` times along the batch axis (site-major: copy p holds rows p*B .. p*B+B-1)."""
        if times == 1:
            return self
        return CrossKV([k.repeat(times, 1, 1, 1) for k in self.keys], [v.repeat(times, 1, 1, 1) for v in self.values], self.mask.repeat(times, 1))

    def head(self, rows: int) -> "CrossKV":
        """The first `rows` rows (a view)."""
        if rows == self.batch:
            return self
        return CrossKV([k[:rows] for k in self.keys], [v[:rows] for v in self.values], self.mask[:rows])

    def cache(self) -> DynamicCache:
        """A transformers cross-attention cache holding these keys/values (built once, reused by many forwards).

        The cache's layers hold these very tensors (no copy: filling a DynamicCache concatenates, which for an edit's
        ~1,000 queries copied ~0.7 GB); forwards read a cross-attention cache and never write it.
        """
        cache = DynamicCache([(k[:, :, :0], v[:, :, :0]) for k, v in zip(self.keys, self.values)])
        for layer, k, v in zip(cache.layers, self.keys, self.values):
            layer.keys, layer.values = k, v
        return cache


class StepZero(nn.Module):
    """Docid logits of one decoder step, optionally with precomputed cross-attention K/V (the module nnsight wraps).

    `self.hf` is the HF model, so component paths resolve under it exactly as under `DocidScorer.hf`.
    """

    def __init__(self, model: GenIRModel) -> None:
        super().__init__()
        self.scorer = model.scorer
        self.hf = model.hf
        self.cmap = model.cmap

    def state(self, hidden: torch.Tensor, mask: torch.Tensor, cross: DynamicCache | None = None) -> torch.Tensor:
        """The step-0 readout vector [B, D]; with a cross-attention cache `hidden` is only used for its shape."""
        if cross is None:
            return self.scorer.state(hidden, mask)
        cache = EncoderDecoderCache(DynamicCache(), cross)  # cross layers are marked updated: read, never written
        start = torch.full((mask.shape[0], 1), self.scorer.start_id, dtype=torch.long, device=mask.device)
        out = self.cmap.body(self.hf)(input_ids=start, encoder_hidden_states=hidden, encoder_attention_mask=mask, past_key_values=cache, use_cache=True)
        return self.cmap.readout(self.hf, out.last_hidden_state[:, 0])

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor, cross: DynamicCache | None = None) -> torch.Tensor:
        """Docid logits [B, N]; with a cross-attention cache the encoder states `hidden` are only used for their shape."""
        return self.scorer.logits(self.state(hidden, mask, cross))


@torch.no_grad()
def cross_kv(model: GenIRModel, enc: Encoded) -> CrossKV:
    """Cross-attention keys/values of every decoder layer for a batch of encoder states (one body pass)."""
    hf, cmap = model.hf, model.cmap
    start = torch.full((len(enc), 1), model.scorer.start_id, dtype=torch.long, device=enc.hidden.device)
    out = cmap.body(hf)(input_ids=start, encoder_hidden_states=cmap.encoder_states(hf, enc.hidden), encoder_attention_mask=enc.mask, use_cache=True)
    cache = out.past_key_values
    if not isinstance(cache, EncoderDecoderCache):
        raise RuntimeError(f"the {cmap.arch} decoder returned no encoder-decoder cache; cannot reuse cross-attention keys/values")
    layers = cache.cross_attention_cache.layers
    return CrossKV([layer.keys for layer in layers], [layer.values for layer in layers], enc.mask)


class Runner:
    """A GenIR model prepared for step-0 interventions: nnsight Envoy, component envoys, cross-K/V cache."""

    def __init__(self, model: GenIRModel) -> None:
        self.model = model
        self.cmap: ComponentMap = model.cmap
        self.step = StepZero(model)
        with warnings.catch_warnings():  # BERT's submodules named `output` are renamed by nnsight; we never use names
            warnings.filterwarnings("ignore", message=".*nnsight already serves.*")
            self.envoy = NNsight(self.step)
        by_module = {id(e._module): e for e in self.envoy.modules()}
        self._by_module = by_module
        self.envoys: dict[tuple[int, Component], object] = {}
        for layer in range(self.cmap.n_layers):
            for comp in COMPONENTS:
                module = self.cmap.module(model.hf, comp, layer)
                if id(module) not in by_module:
                    raise RuntimeError(f"{self.cmap.path(comp, layer)} not found in the nnsight module tree")
                self.envoys[(layer, comp)] = by_module[id(module)]

    @property
    def device(self) -> torch.device:
        """Device of the model."""
        return self.model.device

    def module_envoy(self, layer: int, component: Component) -> object:
        """The nnsight Envoy of a component's output linear."""
        return self.envoys[(layer, component)]

    def layer_envoys(self) -> list[object]:
        """The nnsight Envoys of the decoder layers (output: the residual stream after the layer, or a tuple led by it)."""
        out = []
        for layer in range(self.cmap.n_layers):
            module = self.cmap.layer_module(self.model.hf, layer)
            if id(module) not in self._by_module:
                raise RuntimeError(f"decoder layer {layer} not found in the nnsight module tree")
            out.append(self._by_module[id(module)])
        return out

    def cross_kv(self, enc: Encoded) -> CrossKV:
        """Cross-attention keys/values of every decoder layer for a batch of encoder states (one body pass)."""
        return cross_kv(self.model, enc)

    @staticmethod
    def dummy_states(kv: CrossKV, width: int) -> torch.Tensor:
        """A zero-stride stand-in for encoder states (only their shape is read when K/V are cached)."""
        rows, length = kv.mask.shape
        return kv.keys[0].new_zeros(()).expand(rows, length, width)

    def trace_args(self, kv: CrossKV, cache: DynamicCache | None = None) -> tuple[torch.Tensor, torch.Tensor, DynamicCache]:
        """Positional arguments of a cached StepZero forward for a (possibly repeated) batch (cache: kv.cache())."""
        return self.dummy_states(kv, self.cmap.d_model), kv.mask, cache if cache is not None else kv.cache()
