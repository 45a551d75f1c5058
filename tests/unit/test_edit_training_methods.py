"""The training editing methods (finetune, finetune-replay, lora) on tiny random models of all three architectures."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from edit_support import TARGETS, edit_model, top1
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from genedit.data.types import Collection, Document
from genedit.edit import Editor, methods_for
from genedit.edit.activations import frozen, prepare, run_step
from genedit.edit.context import tensor_name
from genedit.model.build import TINY_ARCHS
from genedit.model.components import Site
from genedit.model.genir import GenIRModel

METHODS = ("finetune", "finetune-replay", "lora")


def _state(model: GenIRModel) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.hf.state_dict().items()}


def _old_part(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """The part of a tensor that existed before the vocabulary grew (added documents' rows cut off)."""
    return new[tuple(slice(0, n) for n in old.shape)]


def test_methods_are_registered_for_every_operation():
    for op in ("add", "delete", "update"):
        names = methods_for(op)
        assert set(METHODS) <= set(names)
        assert names.index("lora") < names.index("finetune-replay") < names.index("finetune")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_add_delete_update_with_defaults_and_undo_exactly(arch, method, collection):
    model = edit_model(arch, collection)
    before, tokens = model.fingerprint(), len(model.tokenizer)
    ed = Editor(model, corpus=collection, targets=TARGETS)
    new = collection.documents[20]
    entry = ed.add([new], method=method)
    hits = top1(model, ed.ctx.queries_for([new])[0])
    assert hits.count(new.id) >= 0.75 * len(hits), hits
    assert model.docids[-1] == new.id and entry.changed_params > 0 and entry.weight_norm > 0
    ed.undo()
    assert model.fingerprint() == before and len(model.tokenizer) == tokens

    token = int(model.docid_token_ids[1])
    ed.delete(["d001", "d003"], method=method)
    assert "d001" not in model.docids and "d003" not in model.docids and model.n_docs == 18
    assert not model.cmap.unembedding(model.hf).weight[token].any()  # the deleted rows are zeroed
    ed.undo()
    assert model.fingerprint() == before and model.docids[:4] == ["d000", "d001", "d002", "d003"]

    updated = Document("d002", "zebra chromodynamics", "Completely different words about zebras and quantum chromodynamics here.")
    ed.update([updated], method=method)
    hits = top1(model, ed.ctx.queries_for([updated])[0])
    assert hits.count("d002") >= 0.5 * len(hits), hits
    ed.undo()
    assert model.fingerprint() == before and len(model.tokenizer) == tokens


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_lora_is_merged_and_confined_to_the_target_linears(arch, collection):
    model = edit_model(arch, collection)
    cmap = model.cmap
    paths = {cmap.path(Site.parse(t).component, Site.parse(t).layer) + ".weight" for t in TARGETS}
    start = _state(model)
    rng = torch.random.get_rng_state()
    ed = Editor(model, corpus=collection, targets=TARGETS)
    entry = ed.add(collection.documents[20:22], method="lora")
    assert torch.equal(torch.random.get_rng_state(), rng)  # seeded by its own generator, global RNG untouched
    assert not any(isinstance(m, BaseTunerLayer) for m in model.hf.modules()) and not hasattr(model.hf, "peft_config")
    for t in TARGETS:
        site = Site.parse(t)
        assert type(cmap.module(model.hf, site.component, site.layer)) is nn.Linear
    after = _state(model)
    assert set(after) == set(start)  # no lora_A / base_layer names left
    for name, old in start.items():
        new = _old_part(after[name], old)
        if name in paths:
            assert not torch.equal(new, old), name
        else:
            assert torch.equal(new, old), name
    vocabulary = {tensor_name(model.hf, t) for t in ed.ctx.unembedding_tensors()}  # grown by the added rows
    assert {c.name for c in entry.changes if c.rows is None} - vocabulary == paths  # the dense change of each target
    assert entry.params["targets"] == TARGETS and model.fingerprint() == entry.fingerprint_after


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_finetune_trains_the_decoder_only_and_journals_exactly_what_changed(arch, collection):
    model = edit_model(arch, collection)
    start = _state(model)
    entry = Editor(model, corpus=collection).add(collection.documents[20:22], method="finetune")
    after = _state(model)
    encoder = {n for n, _ in model.hf.get_encoder().named_parameters(prefix="encoder" if arch != "bart" else "model.encoder")}
    journal = {c.name: c for c in entry.changes}
    for name, old in start.items():
        new = _old_part(after[name], old)
        if name not in journal:  # e.g. the encoder and the cached cross-attention key/value projections
            assert torch.equal(new, old), name
    assert not encoder & set(journal)
    assert entry.changed_params == sum(c.numel for c in entry.changes)
    for name, change in journal.items():  # what is journalled did train (changed_params counts nothing that stays put)
        if change.before is not None:
            assert not torch.equal(change.before, change.after), name


def _planted_t5(collection: Collection) -> tuple[GenIRModel, list[str]]:
    """A tiny T5 trained (plain Adam, in the test) until it retrieves most indexed documents from their own texts."""
    model = edit_model("t5", collection)
    texts, owners = Editor(model, corpus=collection).ctx.preserved_texts()
    target = torch.tensor([model.doc_index(o) for o in owners])
    batch = prepare(model, texts, max_length=32)
    hf = model.hf
    encoder = {id(p) for p in hf.get_encoder().parameters()}
    weight = model.cmap.unembedding(hf).weight
    decoder = [p for p in hf.get_decoder().parameters() if id(p) not in encoder and p.shape[0] != model.vocab_rows]
    rows = torch.zeros(weight.shape[0], 1)
    rows[model.docid_token_ids] = 1.0
    opt = torch.optim.Adam([{"params": decoder, "lr": 3e-3}, {"params": [weight], "lr": 3e-2}])
    gen = torch.Generator().manual_seed(0)
    with frozen(model):
        for p in [*decoder, weight]:
            p.requires_grad_(True)
        for _ in range(30):
            for index in torch.randperm(len(texts), generator=gen).split(32):
                loss = F.cross_entropy(model.scorer.logits(run_step(model, batch.select(index)).state), target[index])
                opt.zero_grad()
                loss.backward()
                weight.grad.mul_(rows)
                opt.step()
    opt.zero_grad(set_to_none=True)
    assert sum(a == b for a, b in zip(top1(model, texts), owners)) >= 0.7 * len(texts)
    return model, texts


# tiny random weights move slowly at the defaults (set for pretrained models): stronger settings for the planted case
STRONG = {"finetune": dict(lr=3e-3, lr_rows=3e-2, epochs=8), "finetune-replay": dict(lr=3e-3, lr_rows=3e-2, epochs=8), "lora": dict(lr=1e-2, epochs=10)}


def test_planted_model_learns_new_documents_and_replay_keeps_old_ones(collection):
    model, texts = _planted_t5(collection)
    reference = top1(model, texts)
    ed = Editor(model, corpus=collection, targets=TARGETS)
    new = collection.documents[20:22]
    kept = {}
    for method in METHODS:
        ed.add(new, method=method, **STRONG[method])
        queries = ed.ctx.queries_for(new)
        hits = [top == doc.id for doc, qs in zip(new, queries) for top in top1(model, qs)]
        assert sum(hits) >= 0.75 * len(hits), (method, hits)
        kept[method] = sum(a == b for a, b in zip(top1(model, texts), reference)) / len(texts)
        ed.undo()
    # plain fine-tuning on the new documents' queries forgets the old ones; replay (and LoRA with replay) keeps them
    assert kept["finetune-replay"] >= kept["finetune"] + 0.3 and kept["lora"] >= kept["finetune"] + 0.3, kept


def test_training_methods_are_deterministic(collection):
    model = edit_model("bart", collection)
    ed = Editor(model, corpus=collection, targets=TARGETS)
    for method in METHODS:
        first = ed.add(collection.documents[20:22], method=method).fingerprint_after
        ed.undo()
        assert ed.add(collection.documents[20:22], method=method).fingerprint_after == first, method
        ed.undo()
