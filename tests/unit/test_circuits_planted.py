"""Tiny models with a planted circuit: the analysis must find exactly the planted site.

- planted head: every decoder component writes nothing except one cross-attention head (layer 1, head 2), and the
  docid rows are the normalised step-0 states of each document's query, so that head alone carries the answer;
- planted MLP (T5, pre-LN): two cross-attention layers write the same query vector into a subspace B (redundant:
  removing either leaves its direction unchanged), the layer-1 MLP is an exactly linear map B -> A
  (relu(x) - relu(-x) = x), and the docid rows live in A: only that MLP is indispensable.
"""

from __future__ import annotations

import pytest
import torch

from circuits.localize import LocalizeConfig, localize
from circuits.patching import PatchSource, clean_run, sweep
from circuits.runner import Runner
from genedit.data.types import Collection, Document, Qrels, Query
from genedit.model.build import TinySpec, tiny_model
from genedit.model.components import COMPONENTS, Site
from genedit.model.genir import GenIRModel

TEXTS = [
    "how to open a file",
    "sort a list of numbers",
    "parse json text",
    "send an http request",
    "compute a hash digest",
    "read environment variables",
    "format a date string",
    "create a tcp server",
]
DOCIDS = [f"d{i}" for i in range(len(TEXTS))]
SPEC = TinySpec(n_layers=3, d_model=32, n_heads=4, d_ff=64, seed=3)
HEAD = Site(1, "cross_attn", 2)


def _collection() -> Collection:
    docs = [Document(d, f"doc {d}", t) for d, t in zip(DOCIDS, TEXTS)]
    queries = {f"q{i}": Query(f"q{i}", t) for i, t in enumerate(TEXTS)}
    qrels = Qrels({f"q{i}": {d: 1} for i, d in enumerate(DOCIDS)})
    return Collection("planted", docs, queries, {"test": qrels})


def _silence_all(model: GenIRModel) -> None:
    """Zero the output linear (weights and bias) of every decoder component."""
    cmap = model.cmap
    for layer in range(cmap.n_layers):
        for comp in COMPONENTS:
            lin = cmap.module(model.hf, comp, layer)
            lin.weight.zero_()
            if lin.bias is not None:
                lin.bias.zero_()


def _rows_from_states(model: GenIRModel, keep: torch.Tensor | None = None) -> None:
    """Docid row of document i = normalised step-0 state of query i (optionally only the dimensions `keep`)."""
    enc = model.encode(TEXTS)
    states = model.scorer(enc.hidden, enc.mask, return_state=True)
    if keep is not None:
        states = states * keep
    rows = states / states.norm(dim=-1, keepdim=True)
    model.cmap.unembedding(model.hf).weight[model.docid_token_ids] = rows


@torch.no_grad()
def plant_head(arch: str) -> GenIRModel:
    """A tiny model where cross-attention head HEAD alone carries each query's docid."""
    model = tiny_model(arch, DOCIDS, SPEC)
    cmap = model.cmap
    lin = cmap.module(model.hf, HEAD.component, HEAD.layer)
    weight = lin.weight.clone()
    _silence_all(model)
    cols = slice(HEAD.head * cmap.d_head, (HEAD.head + 1) * cmap.d_head)
    lin.weight[:, cols] = 10 * weight[:, cols]
    _rows_from_states(model)
    return model


def _sibling(model: GenIRModel, linear: torch.nn.Module, name: str) -> torch.nn.Linear:
    """The linear called `name` beside a component's output linear (T5 test surgery: q/v beside o, wi beside wo)."""
    for module in model.hf.modules():
        if any(child is linear for child in module.children()):
            return getattr(module, name)
    raise LookupError(f"no parent module holds the given linear (looking for {name!r})")


@torch.no_grad()
def plant_mlp() -> GenIRModel:
    """A tiny T5 whose layer-1 MLP alone maps the (redundantly provided) query vector onto the docid rows."""
    model = tiny_model("t5", DOCIDS, SPEC)
    cmap, hf = model.cmap, model.hf
    d, dh = cmap.d_model, cmap.d_head
    B, A = torch.arange(0, 8), torch.arange(8, 16)
    _silence_all(model)
    hf.get_input_embeddings().weight[model.scorer.start_id] = 0.0  # the residual stream starts at exactly 0
    gen = torch.Generator().manual_seed(0)
    write = torch.zeros(d, d)
    write[B, :dh] = torch.randn(len(B), dh, generator=gen)  # only head 0 writes, and only into B
    attn = [cmap.module(hf, "cross_attn", layer) for layer in (0, 1)]
    for out in attn:
        out.weight.copy_(write)
    # zero queries = uniform attention; same values in both layers: both cross-attentions write the same vector
    _sibling(model, attn[0], "q").weight.zero_()
    _sibling(model, attn[1], "q").weight.zero_()
    _sibling(model, attn[1], "v").weight.copy_(_sibling(model, attn[0], "v").weight)
    mlp_out = cmap.module(hf, "mlp", 1)
    mlp_in = _sibling(model, mlp_out, "wi")
    mlp_in.weight.zero_()
    mlp_in.weight[torch.arange(8), B] = 1.0  # relu(x) - relu(-x) = x: the MLP is exactly the linear map B -> A
    mlp_in.weight[torch.arange(8, 16), B] = -1.0
    mlp_out.weight[A, torch.arange(8)] = 1.0
    mlp_out.weight[A, torch.arange(8, 16)] = -1.0
    keep = torch.zeros(d)
    keep[A] = 1.0
    _rows_from_states(model, keep)
    return model


def _effects(model: GenIRModel, mode: str) -> dict[str, float]:
    enc = model.encode(TEXTS)
    runner = Runner(model)
    clean = clean_run(runner, enc)
    relevant = torch.eye(len(TEXTS), dtype=torch.bool)
    source = {"zero": PatchSource.zero(), "mean": PatchSource.of_mean(clean.acts)}[mode]
    result = sweep(runner, enc, relevant, model.cmap.sites(heads=True), source, clean)
    assert result.clean.hits1 == 1.0
    return {e.site: e.lost_top1 for e in result.effects}


@pytest.mark.parametrize("arch", ["t5", "bart", "bert2bert"])
@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_planted_head_is_the_only_site_that_matters(arch: str, mode: str) -> None:
    model = plant_head(arch)
    lost = _effects(model, mode)
    planted = {str(HEAD), str(Site(HEAD.layer, HEAD.component))}
    for site in planted:
        assert lost[site] >= (len(TEXTS) - 1) / len(TEXTS), (site, lost[site])
    assert all(v == 0 for s, v in lost.items() if s not in planted), {s: v for s, v in lost.items() if v and s not in planted}


def test_planted_head_through_localize() -> None:
    model = plant_head("bert2bert")
    circuit = localize(model, _collection(), LocalizeConfig(n_queries=8, mode="mean", lens_queries=4, batch_size=4, max_rows=64))
    assert circuit.clean.hits1 == 1.0
    assert circuit.ranked(heads=False)[0].site == "L1.cross_attn"
    assert circuit.ranked(heads=True)[0].site == str(HEAD)
    assert circuit.bridging_heads[0].site == str(HEAD)
    assert circuit.effect(HEAD).lost_top1 >= 7 / 8
    assert circuit.stages.interaction == []  # no MLP matters
    assert 1 in circuit.stages.bridging
    assert circuit.minimal is not None and "L1.cross_attn" in circuit.minimal.sites and circuit.minimal.met


def test_planted_mlp_is_found() -> None:
    model = plant_mlp()
    circuit = localize(model, _collection(), LocalizeConfig(n_queries=8, mode="zero", lens_queries=4, batch_size=8, max_rows=256))
    assert circuit.clean.hits1 == 1.0
    top = circuit.ranked()[0]
    assert top.site == "L1.mlp" and top.lost_top1 == 1.0
    # zero-ablating the planted MLP destroys retrieval; every other site (the redundant cross-attentions included) does nothing
    assert circuit.effect("L1.mlp").delta_hits1 == -1.0
    others = [e for e in circuit.effects if e.site != "L1.mlp"]
    assert all(e.lost_top1 == 0 and e.delta_hits1 == 0 for e in others), [e.site for e in others if e.lost_top1]
    assert circuit.interaction_mlps == [1]
    assert [str(site) for site in circuit.editing_targets()] == ["L1.mlp"]  # edits go to the planted MLP
    assert circuit.minimal is not None and "L1.mlp" in circuit.minimal.sites and circuit.minimal.met
