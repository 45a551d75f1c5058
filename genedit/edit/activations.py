"""Decoder step 0 for editing: encode texts once, then read or steer the edited linears cheaply.

Retrieval is one decoder position, so a locate-then-edit "key" is simply the [n, d_in] input of a target linear
at step 0, and its "value" the [n, d_out] output. The encoder and the cross-attention key/value projections do
not depend on any decoder weight an edit changes: they are computed once per batch of texts (`Prepared`), and
every later forward (value optimisation, re-reading keys after a lower layer was edited) costs only the decoder's
one-position work.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from circuits.patching import patch_rows
from circuits.runner import CrossKV, Runner, StepZero, cross_kv
from genedit.model.components import Site
from genedit.model.genir import Encoded, GenIRModel
from genedit.model.pretrained import mean_pool


@dataclass
class Prepared:
    """Texts encoded once: cross-attention K/V of every decoder layer and the texts' sentence embeddings."""

    kv: CrossKV
    embedding: torch.Tensor  # [n, D] normalised mean-pooled encoder states (the dense teacher's query vectors)
    _cache: DynamicCache | None = field(default=None, repr=False)
    _lower: tuple[int, object] | None = field(default=None, repr=False)  # (k, output of decoder layer k-1) at step 0

    def __len__(self) -> int:
        return self.kv.batch

    def forget_layers(self) -> None:
        """Drop the recorded lower layers (an edit below them changed what they would give)."""
        self._lower = None

    @property
    def recorded_layers(self) -> int:
        """How many lower decoder layers' step-0 output is recorded for reuse (`run_step`'s start_layer; 0: none)."""
        return self._lower[0] if self._lower is not None else 0

    def cache(self) -> DynamicCache:
        """The cross-attention cache of these K/V, built once (read, never written, by every forward)."""
        if self._cache is None:
            self._cache = self.kv.cache()
        return self._cache

    def select(self, index: torch.Tensor) -> "Prepared":
        """A subset of rows (trimmed to its longest sequence)."""
        mask = self.kv.mask[index]
        width = max(int(mask.sum(1).max().item()), 1) if mask.numel() else 1
        kv = CrossKV([k[index][:, :, :width] for k in self.kv.keys], [v[index][:, :, :width] for v in self.kv.values], mask[:, :width])
        return Prepared(kv, self.embedding[index])


ENCODE_ROWS = 64  # texts per encoder batch on the CPU (GenIRModel.encode's default)
READ_ROWS = 256  # texts per step-0 read of keys and states on the CPU


def batch_rows(model: GenIRModel, seq_len: int, cpu_rows: int, free_bytes: int | None = None) -> int:
    """Texts per step-0 batch of an edit or of the preservation statistics: `cpu_rows` on the CPU, on a GPU what its
    free memory holds (localize's one rule for step-0 forwards, `circuits.patching.patch_rows`; `free_bytes` overrides
    the device's figure)."""
    return patch_rows(model, seq_len, free_bytes, cpu_rows=cpu_rows)


def prepare(model: GenIRModel, texts: Sequence[str], *, max_length: int | None = None, batch_size: int | None = None) -> Prepared:
    """Encode texts and precompute their cross-attention K/V (one decoder pass); batch_size None: `batch_rows`."""
    batch_size = batch_size or batch_rows(model, max_length or model.max_query_length, ENCODE_ROWS)
    enc = model.encode(list(texts), batch_size=batch_size, max_length=max_length)
    return prepare_encoded(model, enc)


def prepare_encoded(model: GenIRModel, enc: Encoded) -> Prepared:
    """Cross-attention K/V and sentence embeddings of already encoded texts."""
    return Prepared(cross_kv(model, enc), F.normalize(mean_pool(enc.hidden, enc.mask), dim=-1))


@dataclass
class StepOut:
    """Readout states at step 0, and the captured inputs (keys) and outputs of target linears."""

    state: torch.Tensor  # [n, D]
    keys: dict[Site, torch.Tensor] = field(default_factory=dict)  # [n, d_in]
    outputs: dict[Site, torch.Tensor] = field(default_factory=dict)  # [n, d_out]


@contextmanager
def _hooks(model: GenIRModel, capture: Sequence[Site], add: Mapping[Site, torch.Tensor] | None, out: StepOut) -> Iterator[None]:
    handles = []
    sites = set(capture) | set(add or {})
    for site in sites:
        module = model.cmap.module(model.hf, site.component, site.layer)

        def hook(mod: torch.nn.Module, inputs: tuple, output: torch.Tensor, site: Site = site) -> torch.Tensor | None:
            if site in capture:
                out.keys[site] = inputs[0][:, 0].detach()
                out.outputs[site] = output[:, 0].detach()
            if add and site in add:
                return output + add[site][:, None, :].to(output.dtype)
            return None

        handles.append(module.register_forward_hook(hook))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@contextmanager
def _lower_layers(model: GenIRModel, batch: Prepared, start: int) -> Iterator[None]:
    """Run decoder layers below `start` once per batch, then reuse their output (only layers >= start are computed).

    The first forward records what layer start-1 returns; later forwards replace the layers below `start` by that
    recorded output (each returns it unchanged), so layer `start` gets exactly the inputs of a full forward. Valid
    while no weight below layer `start` changes, which is the caller's promise (an edit of layers >= start).
    """
    if start <= 0:
        yield
        return
    layers = [model.cmap.layer_module(model.hf, i) for i in range(start)]
    if batch._lower is not None and batch._lower[0] == start:
        recorded = batch._lower[1]
        for layer in layers:
            layer.forward = lambda *args, **kwargs: recorded  # instance attribute: shadows the class's forward
        try:
            yield
        finally:
            for layer in layers:
                del layer.forward
        return
    seen: list[object] = []
    handle = layers[-1].register_forward_hook(lambda mod, inputs, output: seen.append(output))
    try:
        yield
    finally:
        handle.remove()
    if seen:  # detached: nothing below `start` takes part in a gradient
        batch._lower = (start, _detached(seen[-1]))


def _detached(output: object) -> object:
    """A layer's output (a tensor, or a tuple/list of them and None) cut from the autograd graph."""
    if isinstance(output, torch.Tensor):
        return output.detach()
    if isinstance(output, (tuple, list)):
        return type(output)(_detached(x) for x in output)
    return output


def run_step(model: GenIRModel, batch: Prepared, *, capture: Sequence[Site] = (), add: Mapping[Site, torch.Tensor] | None = None, start_layer: int = 0) -> StepOut:
    """One cached step-0 forward: readout states, captured keys/outputs, optional vectors added to linear outputs.

    start_layer k > 0 computes the decoder layers below k once per batch and reuses them (see `_lower_layers`): for
    the edits of layers >= k that run many forwards over one batch; every captured or steered site must be >= k.
    """
    if any(site.layer < start_layer for site in [*capture, *(add or {})]):
        raise ValueError(f"a captured or steered site lies below start_layer {start_layer}")
    out = StepOut(state=torch.empty(0, device=model.device))
    step = StepZero(model)
    with _hooks(model, capture, add, out), _lower_layers(model, batch, start_layer):
        hidden = Runner.dummy_states(batch.kv, model.cmap.d_model)
        out.state = step.state(hidden, batch.kv.mask, batch.cache())
    return out


@torch.no_grad()
def read_keys(model: GenIRModel, texts: Sequence[str], sites: Sequence[Site], *, max_length: int | None = None,
              chunk: int | None = None) -> tuple[dict[Site, torch.Tensor], torch.Tensor, torch.Tensor]:
    """Keys of many texts at the target linears, their readout states and sentence embeddings (in the texts' order).

    One plain step-0 forward per chunk (no cross-attention cache is kept: each text is read once), the texts taken
    in order of length so a chunk pads little; chunk None: `batch_rows` (READ_ROWS on the CPU).
    """
    if not texts:
        raise ValueError("no texts to read keys from")
    length = max_length or model.max_query_length
    chunk = chunk or batch_rows(model, length, READ_ROWS)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    keys: dict[Site, list[torch.Tensor]] = {s: [] for s in sites}
    states, embeddings = [], []
    for start in range(0, len(texts), chunk):
        index = order[start : start + chunk]
        enc = model.encode([texts[i] for i in index], batch_size=len(index) if model.device.type != "cpu" else ENCODE_ROWS, max_length=max_length)
        out = StepOut(state=torch.empty(0, device=model.device))
        with _hooks(model, sites, None, out):
            out.state = model.scorer.state(enc.hidden, enc.mask)
        for s in sites:
            keys[s].append(out.keys[s])
        states.append(out.state)
        embeddings.append(F.normalize(mean_pool(enc.hidden, enc.mask), dim=-1))
    restore = torch.argsort(torch.tensor(order, device=model.device))  # position of each text in the chunked order
    return {s: torch.cat(v)[restore] for s, v in keys.items()}, torch.cat(states)[restore], torch.cat(embeddings)[restore]


def mean_readout(model: GenIRModel, texts: Sequence[str], owner: Sequence[int], n: int, *, max_length: int | None = None) -> torch.Tensor:
    """Mean readout state [n, D] of each group's texts (owner[i]: the group of texts[i]; a group without texts: zeros)."""
    _, states, _ = read_keys(model, texts, [], max_length=max_length)
    return group_mean(states, owner, n)


def group_mean(states: torch.Tensor, owner: Sequence[int], n: int) -> torch.Tensor:
    """Mean [n, D] of the rows of `states` per group (owner[i]: the group of row i; a group without rows: zeros)."""
    index = torch.tensor(list(owner), device=states.device)
    sums = torch.zeros(n, states.shape[1], dtype=states.dtype, device=states.device).index_add_(0, index, states)
    return sums / torch.bincount(index, minlength=n).clamp(min=1)[:, None]


@contextmanager
def frozen(model: GenIRModel) -> Iterator[None]:
    """Turn off gradients of every model weight (only edit vectors train), restoring the flags afterwards."""
    flags = [(p, p.requires_grad) for p in model.hf.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
