"""The rank-one guard: an add may take rank 1 from no more preserved texts than its rows alone do."""

from __future__ import annotations

import copy

import pytest
import torch
from edit_support import edit_model, top1

from genedit.edit import Editor, guard
from genedit.model.components import Site

SITE = Site(1, "cross_attn")
STRONG = {"lam": 0.01, "clamp": 6.0, "steps": 25, "lr": 0.2, "query_tokens": 64}  # 64: as model.rank reads them  # random tiny decoder: an edit that hurts


def _held_lost(model, before: list[str], texts: list[str], owners: list[str]) -> int:
    """Preserved texts whose document ranked first before the edit and no longer does."""
    return sum(b == o and a != o for b, a, o in zip(before, top1(model, texts), owners))


def _scene(collection):
    """A tiny edited-T5 base, its preserved texts with their documents and top-1 before any edit, and four new documents."""
    base = edit_model("t5", collection)
    texts, owners = Editor(copy.deepcopy(base), corpus=collection, targets=[SITE]).ctx.preserved_texts()
    return base, texts, owners, top1(base, texts), collection.documents[20:24]


def test_guarded_add_costs_old_texts_no_more_than_its_rows_alone(collection):
    base, texts, owners, before, new = _scene(collection)
    lost = {}
    for name, method, params in [("rows", "row-solve", {}), ("free", "rank-one", {**STRONG, "guard": False}),
                                 ("guarded", "rank-one", {**STRONG, "guard": True, "guard_texts": len(texts)})]:
        model = copy.deepcopy(base)
        Editor(model, corpus=collection, targets=[SITE]).add(new, method=method, **params)
        lost[name] = _held_lost(model, before, texts, owners)
    assert lost["free"] > lost["rows"], lost  # the unguarded edit does cost old texts here: the guard has work to do
    assert lost["guarded"] <= lost["rows"], lost


def test_the_line_search_shrinks_an_update_until_the_sample_holds(collection):
    model = edit_model("t5", collection)
    ed = Editor(model, corpus=collection, targets=[SITE])
    s = guard.sample(ed.ctx, 64, 0, 48)
    assert s is not None and s.held.any()
    weight = model.cmap.module(model.hf, "cross_attn", 1).weight
    huge = torch.randn(weight.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 50
    delta, report = guard.guarded_update(ed.ctx, s, SITE, lambda extra: huge, start_layer=1, allowed=0, rounds=1, scales=(0.5, 0.0))
    assert report.lost_full > 0 and report.lost == 0 and report.scale < 1.0
    torch.testing.assert_close(delta, huge * report.scale)


def test_blame_names_the_request_document_that_took_a_text_the_rows_alone_left():
    held = torch.tensor([True, True, True, True])
    rows = guard.Check(top=torch.tensor([0, 1, 7, 3]), margin=torch.zeros(4), lost=torch.tensor([False, False, True, False]))
    now = guard.Check(top=torch.tensor([8, 1, 7, 2]), margin=torch.zeros(4), lost=held & torch.tensor([True, False, True, True]))
    extra, thief = guard.blame(now, rows, torch.tensor([7, 8]))  # the request's documents sit at positions 7 and 8
    assert extra.tolist() == [True, False, False, True]  # text 2 was already lost to the rows alone
    assert thief.tolist() == [1, -1, -1, -1]  # text 0 went to the request's second document, text 3 to an indexed one


def test_per_document_scale_margin_constraints_and_repair_cost_old_texts_less_than_the_free_update(collection):
    base, texts, owners, before, new = _scene(collection)
    lost, entries = {}, {}
    for name, params in [("free", {}), ("doc_scale", {"doc_scale": True}), ("protect", {"protect": 8}), ("repair", {"repair": True, "doc_scale": True, "stop_prob": 0.5})]:
        model = copy.deepcopy(base)
        entries[name] = Editor(model, corpus=collection, targets=[SITE]).add(new, method="rank-one", **STRONG, **params, guard_texts=len(texts))
        lost[name] = _held_lost(model, before, texts, owners)
    assert lost["free"] > 0, lost  # the unconstrained edit costs old texts here: the options have work to do
    assert lost["doc_scale"] < lost["free"] and lost["protect"] < lost["free"] and lost["repair"] < lost["free"], lost
    assert entries["doc_scale"].params["doc_scale"] is True and entries["protect"].params["protect"] == 8
    for name, entry in entries.items():  # the target linear is still edited (not reduced to the rows alone)
        moved = [c.name for c in entry.changes if c.name.startswith("decoder.") and "embed" not in c.name and c.before is not None and not torch.equal(c.before, c.after)]
        assert moved, name


def test_repair_rounds_put_the_texts_the_update_itself_took_back_into_the_edit(collection):
    base, texts, owners, before, new = _scene(collection)
    lost, found = {}, {}
    for name, params in [("free", {}), ("repair", {"repair": True}), ("rounds", {"repair": True, "repair_rounds": 2})]:
        model = copy.deepcopy(base)
        Editor(model, corpus=collection, targets=[SITE]).add(new, method="rank-one", **STRONG, **params, guard_texts=len(texts))
        lost[name] = _held_lost(model, before, texts, owners)
        found[name] = sum(t == d.id for t, d in zip(top1(model, [d.title for d in new]), new))
    assert lost["free"] > 0, lost  # the free edit costs old texts here
    assert lost["rounds"] < lost["repair"] <= lost["free"], lost  # each round gives back texts the update took
    assert found["rounds"] >= found["free"] - 1, found  # and the new documents are still learned


def test_rank_one_refuses_a_negative_round_count_before_touching_the_model(collection):
    model = edit_model("t5", collection)
    before = model.fingerprint()
    with pytest.raises(ValueError, match="repair_rounds=-1"):
        Editor(model, corpus=collection, targets=[SITE]).add(collection.documents[20:22], method="rank-one", repair=True, repair_rounds=-1)
    assert model.fingerprint() == before and model.n_docs == 20
