"""The editing layer on tiny random models of all three architectures: planted answers, parity, exact undo."""

from __future__ import annotations

import json

import pytest
import torch
from edit_support import TARGETS, edit_model, top1

from genedit.data.types import Document
from genedit.edit import Editor, methods_for, rollback_model
from genedit.edit.activations import prepare, run_step
from genedit.edit.closed_form import null_space, second_moment, solve_update
from genedit.model.build import TINY_ARCHS, TinySpec, tiny_model
from genedit.model.components import Site
from genedit.model.genir import GenIRModel


# --- the closed form -------------------------------------------------------------------------------
def test_closed_form_update_equals_the_gradient_solution_of_memits_objective():
    """dW = R K^T (K K^T + lam N0 C)^-1 minimises ||dW K - R||^2 + lam * sum over the N0 preserved keys of ||dW k0||^2."""
    gen = torch.Generator().manual_seed(0)
    keys, resid = torch.randn(12, 8, generator=gen), torch.randn(12, 5, generator=gen)
    preserved = torch.randn(40, 8, generator=gen)
    lam = 0.7
    closed = solve_update(keys, resid, second_moment(preserved), lam * len(preserved))
    dw = torch.zeros(5, 8, dtype=torch.float64, requires_grad=True)
    K, R, K0 = keys.double(), resid.double(), preserved.double()
    opt = torch.optim.LBFGS([dw], max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-14, line_search_fn="strong_wolfe")

    def objective():
        opt.zero_grad()
        loss = ((K @ dw.T - R) ** 2).sum() + lam * ((K0 @ dw.T) ** 2).sum()
        loss.backward()
        return loss

    opt.step(objective)
    torch.testing.assert_close(closed, dw.detach(), atol=1e-6, rtol=1e-6)


def test_null_space_update_leaves_preserved_keys_outputs_unchanged():
    gen = torch.Generator().manual_seed(1)
    basis = torch.randn(3, 10, generator=gen)
    preserved = torch.randn(50, 3, generator=gen) @ basis  # the preserved keys span 3 of 10 directions
    keys, resid = torch.randn(6, 10, generator=gen), torch.randn(6, 4, generator=gen)
    cov = second_moment(preserved)
    dw = solve_update(keys, resid, cov, 1.0, projector=null_space(cov, 1e-6), alpha=1e-6)
    assert (preserved.double() @ dw.T).abs().max() < 1e-5
    assert (keys.double() @ dw.T - resid.double()).abs().max() < (resid.abs().max() * 0.9)  # it still edits


# --- planted behaviour on the three architectures ----------------------------------------------------------
@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_rank_one_add_retrieves_the_new_document_and_undo_is_exact(arch, collection):
    model = edit_model(arch, collection)
    before, tokens = model.fingerprint(), len(model.tokenizer)
    new = collection.documents[20:22]
    ed = Editor(model, corpus=collection, targets=TARGETS)
    entry = ed.add(new, method="rank-one", lam=0.1, clamp=3.0, steps=25, lr=0.1, query_tokens=48)  # random tiny decoder: full strength
    queries = ed.ctx.queries_for(new)
    hits = [top == doc.id for doc, qs in zip(new, queries) for top in top1(model, qs)]
    # untrained tiny BART and BERT2BERT give nearly the same step-0 state for every query (spread ~0.3% of its norm):
    # the solved rows rank-one starts from (these rows are not sentence embeddings) cannot win there without taking
    # old documents' queries, so the decoder edit does it alone and the check is that it helps at all; the trained
    # MiniLM integration test checks it for real
    assert sum(hits) >= (0.8 if arch == "t5" else 0.25) * len(hits)
    assert entry.changed_params > 0 and entry.weight_norm > 0 and entry.params["targets"] == TARGETS
    assert model.docids[-2:] == [d.id for d in new]
    ed.undo()
    assert model.fingerprint() == before and len(model.tokenizer) == tokens and model.n_docs == 20


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_row_add_leaves_every_other_documents_logits_unchanged(arch, collection):
    model = edit_model(arch, collection)
    texts = [q.text for q in collection.queries.values()][:10]
    old = model.scores(model.encode(texts)).clone()
    Editor(model, corpus=collection).add(collection.documents[20:23], method="row")
    assert torch.equal(model.scores(model.encode(texts))[:, :20], old)


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_reusing_the_lower_layers_gives_the_full_forward_exactly(arch, collection):
    """run_step(start_layer=1) computes layer 0 once and reuses it: states, keys and gradients equal a full forward."""
    model = edit_model(arch, collection)
    sites = [Site(1, "mlp"), Site(1, "cross_attn")]
    batch = prepare(model, [q.text for q in collection.queries.values()][:8])
    vector = torch.randn(8, model.cmap.d_model, generator=torch.Generator().manual_seed(0), requires_grad=True)

    def forward(start: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        vector.grad = None
        out = run_step(model, batch, capture=sites, add={sites[0]: vector}, start_layer=start)
        out.state.pow(2).sum().backward()
        return out.state.detach(), out.keys[sites[1]], vector.grad.clone()

    full = forward(0)
    first, reused = forward(1), forward(1)  # the first records layer 0's output, the second reuses it
    for got in (first, reused):
        for a, b in zip(got, full):
            assert torch.equal(a, b)
    assert batch.recorded_layers == 1 and all("forward" not in model.cmap.layer_module(model.hf, i).__dict__ for i in range(2))
    with pytest.raises(ValueError, match="below start_layer"):
        run_step(model, batch, capture=[Site(0, "mlp")], start_layer=1)


def test_null_space_rank_one_keeps_preserved_outputs(collection):
    model = edit_model("t5", collection)
    ed = Editor(model, corpus=collection, targets=["L1.mlp"])
    ed.ctx.settings.max_preserved = 6  # few preserved keys: the null space is most of the 64-wide MLP input
    texts, _ = ed.ctx.preserved_texts()
    site = Site(1, "mlp")
    batch = prepare(model, texts, max_length=ed.ctx.query_tokens)
    with torch.no_grad():
        out_before = run_step(model, batch, capture=[site]).outputs[site]
    ed.add(collection.documents[20:21], method="rank-one", nullspace=True, threshold=1e-6, alpha=1e-8)
    with torch.no_grad():
        out_after = run_step(model, batch, capture=[site]).outputs[site]
    assert (out_after - out_before).abs().max() < 1e-5


@pytest.mark.parametrize("method", ["rank-one", "mask"])
def test_delete_never_returns_the_document_and_undo_restores_it(method, collection):
    model = edit_model("bert2bert", collection)
    before = model.fingerprint()
    ed = Editor(model, corpus=collection, targets=TARGETS)
    ed.delete(["d001", "d005"], method=method)
    assert "d001" not in model.docids and "d005" not in model.docids and model.n_docs == 18
    run = model.rank([q.text for q in collection.queries.values()], k=18)
    assert not {"d001", "d005"} & {d for r in run.ranking.values() for d in r}
    ed.undo()
    assert model.fingerprint() == before and model.docids[1] == "d001"


def test_forget_own_target_is_masks_answer(collection, monkeypatch):
    """Parity: with `own`, the delete target of a forgotten document's queries ranks the remaining documents as the
    model with that document masked out (`mask`) does, even on a model whose rows are sentence embeddings (where
    the default target is the dense teacher's ranking)."""
    import copy

    from genedit.edit.context import EditContext
    from genedit.edit.methods.common import forget_distribution

    model = edit_model("t5", collection)
    monkeypatch.setattr(EditContext, "rows_are_embeddings", property(lambda self: True))
    ed = Editor(model, corpus=collection, targets=TARGETS)
    texts = [q.text for q in collection.queries.values()][:8]
    batch = prepare(model, texts, max_length=model.max_query_length)
    target = forget_distribution(ed.ctx, batch, ["d001", "d005"], own=True)
    assert target[:, [model.doc_index("d001"), model.doc_index("d005")]].abs().max() == 0
    masked = copy.deepcopy(model)
    masked.remove_documents(["d001", "d005"])
    run = masked.rank(texts, k=5)
    for i in range(len(texts)):
        top = [model.docids[j] for j in target[i].topk(5).indices.tolist()]
        assert top == run.ranking[str(i)], (top, run.ranking[str(i)])
    teacher = forget_distribution(ed.ctx, batch, ["d001", "d005"])
    assert not torch.allclose(teacher, target)  # the default target on such a model is another one


def test_each_operation_weighs_preservation_by_its_own_lambda(collection, monkeypatch):
    """rank-one's closed-form update takes `lam` for adds, `update_lam` for updates and `forget_lam` for deletes
    (times the number of preserved texts, MEMIT's N0): the three were tuned apart (docs/editing.md)."""
    import genedit.edit.methods.rank_one as rank_one

    weights: list[float] = []
    real = rank_one.solve_update
    monkeypatch.setattr(rank_one, "solve_update", lambda keys, resid, cov, weight, **kw: weights.append(weight) or real(keys, resid, cov, weight, **kw))
    ed = Editor(edit_model("t5", collection), corpus=collection, targets=TARGETS)
    params = {"lam": 0.3, "update_lam": 5.0, "forget_lam": 0.07}
    ed.add(collection.documents[20:21], method="rank-one", **params)
    ed.update([Document("d002", "", "zebra quantum chromodynamics lattice gauge theory.")], method="rank-one", **params)
    ed.delete(["d004"], method="rank-one", **params)
    n0 = ed.ctx.n_preserved
    per_op = [weights[i * len(TARGETS)] / n0 for i in range(3)]
    assert len(weights) == 3 * len(TARGETS) and per_op == pytest.approx([0.3, 5.0, 0.07])


def test_update_moves_queries_to_the_new_text(collection):
    model = edit_model("t5", collection)
    ed = Editor(model, corpus=collection, targets=TARGETS)
    new = Document("d003", "zebra quantum", "zebra quantum chromodynamics lattice gauge theory of strong interactions here.")
    ed.update([new], method="rank-one")
    assert top1(model, ed.ctx.queries_for([new])[0]).count("d003") >= 2
    assert ed.ctx.documents["d003"].text == new.text
    ed.undo()
    assert ed.ctx.documents["d003"].text != new.text


# --- journal, rollback, persistence ------------------------------------------------------------------------
def test_rollback_through_a_hundred_mixed_edits_returns_the_original_model(collection, tmp_path):
    model = edit_model("t5", collection, n=12)
    base, tokenizer_before = model.fingerprint(), _tokenizer_files(model, tmp_path / "before")
    ed = Editor(model, corpus=collection, targets=["L1.mlp"])
    fingerprints = [base]
    extra = [Document(f"x{i}", "", f"extra document number {i} about topic {i % 7} and w{i}") for i in range(60)]
    for i in range(100):
        if i % 3 == 2 and model.n_docs > 5:
            ed.delete([model.docids[i % model.n_docs]], method="mask" if i % 2 else "rank-one")
        elif i % 5 == 4:
            doc = collection.document(model.docids[0]) if model.docids[0] in collection else extra[0]
            ed.update([Document(doc.id, doc.title, doc.text + f" revision {i}")], method="row")
        else:
            ed.add([extra[i % 60]] if extra[i % 60].id not in model else [Document(f"y{i}", "", f"another {i}")], method="rank-one" if i % 4 == 0 else "row")
        fingerprints.append(model.fingerprint())
    assert len(ed.log()) == 100
    ed.rollback(to=37)
    assert model.fingerprint() == fingerprints[37]
    ed.rollback(to=0)
    assert model.fingerprint() == base
    assert _tokenizer_files(model, tmp_path / "after") == tokenizer_before


def _tokenizer_files(model: GenIRModel, folder) -> dict[str, object]:
    """The saved tokenizer, less the truncation/padding state the last encode call leaves in tokenizer.json."""
    model.tokenizer.save_pretrained(folder)
    files: dict[str, object] = {p.name: json.loads(p.read_text()) for p in folder.iterdir()}
    for key in ("truncation", "padding"):
        files["tokenizer.json"].pop(key, None)  # type: ignore[union-attr]
    return files


def test_saved_journal_rolls_back_after_loading(collection, tmp_path):
    model = edit_model("bart", collection)
    base = model.fingerprint()
    ed = Editor(model, corpus=collection, targets=TARGETS)
    ed.add(collection.documents[20:22], method="rank-one")
    ed.delete(["d002"], method="rank-one")
    after = model.fingerprint()
    model.save(tmp_path / "m")
    loaded = GenIRModel.load(tmp_path / "m")
    assert loaded.fingerprint() == after and [e.op for e in loaded.journal.entries] == ["add", "delete"]
    assert loaded.journal.base_fingerprint == base
    rollback_model(loaded, 1)
    assert loaded.fingerprint() == ed.log()[0].fingerprint_after
    loaded.save(tmp_path / "m")  # in place: a new version behind the HEAD pointer
    again = GenIRModel.load(tmp_path / "m")
    assert again.fingerprint() == ed.log()[0].fingerprint_after and len(again.journal) == 1
    rollback_model(again, 0)
    assert again.fingerprint() == base
    head = (tmp_path / "m" / "HEAD").read_text().strip()
    assert head.startswith("versions/v") and len(list((tmp_path / "m" / "versions").iterdir())) == 1


def test_in_place_save_keeps_a_loadable_model_when_interrupted(collection, tmp_path, monkeypatch):
    model = edit_model("t5", collection)
    model.save(tmp_path / "m")
    loaded = GenIRModel.load(tmp_path / "m")
    fp = loaded.fingerprint()
    Editor(loaded, corpus=collection).add(collection.documents[20:21], method="row")

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed while writing the tokenizer")

    monkeypatch.setattr(loaded.tokenizer, "save_pretrained", crash)
    with pytest.raises(KeyboardInterrupt):
        loaded.save(tmp_path / "m")
    assert GenIRModel.load(tmp_path / "m").fingerprint() == fp
    assert not list((tmp_path / "m" / "versions").glob(".v*"))  # the half-written version was removed


# --- bad input leaves the model untouched ------------------------------------------------------------------
@pytest.mark.parametrize(
    "call, error",
    [
        (lambda ed, c: ed.add([c.documents[0]]), "already indexed"),
        (lambda ed, c: ed.add([c.documents[21], c.documents[21]]), "repeated"),
        (lambda ed, c: ed.add([Document("new", "", "  ")]), "empty text"),
        (lambda ed, c: ed.add([Document("bad id", "", "text here")]), "invalid document id"),
        (lambda ed, c: ed.add([Document("D001", "", "case clash with d001")]), "folds onto"),
        (lambda ed, c: ed.delete(["nope"]), "not indexed"),
        (lambda ed, c: ed.update([Document("nope", "", "text")]), "not indexed"),
        (lambda ed, c: ed.add([c.documents[21]], method="mask"), "cannot add"),
        (lambda ed, c: ed.add([c.documents[21]], method="rank-one", bogus=1), "no parameter bogus"),
        (lambda ed, c: ed.rollback(to=5), "no journal entry 5"),
    ],
)
def test_bad_edits_raise_one_clear_error_and_change_nothing(call, error, collection):
    model = edit_model("bert2bert", collection)
    before, tokens, docids = model.fingerprint(), len(model.tokenizer), list(model.docids)
    ed = Editor(model, corpus=collection, targets=TARGETS)
    with pytest.raises((ValueError, KeyError), match=error):
        call(ed, collection)
    assert model.fingerprint() == before and len(model.tokenizer) == tokens and model.docids == docids and not ed.log()


def test_a_circuit_of_another_model_is_refused(collection):
    from circuits import CircuitMismatchError, LocalizeConfig, localize

    model = edit_model("t5", collection)
    other = tiny_model("t5", [d.id for d in collection.documents[:20]], TinySpec(n_layers=2, seed=1))
    circuit = localize(other, collection, LocalizeConfig(split="train", n_queries=8, heads=False, attribution=False, lens=False, circuit=False))
    with pytest.raises(CircuitMismatchError):
        Editor(model, corpus=collection, circuit=circuit)
    ed = Editor(other, corpus=collection, circuit=circuit)
    ed.add(collection.documents[20:21], method="rank-one")
    circuit.check_model(other)  # still valid after an edit: the journal's base fingerprint is the circuit's


def test_registry_lists_methods_per_operation():
    assert methods_for("delete")[0] == "rank-one" and "mask" in methods_for("delete")
    assert {"row", "row-solve", "rank-one"} <= set(methods_for("add")) and "mask" not in methods_for("add")
    with pytest.raises(ValueError, match="unknown operation"):
        methods_for("merge")


def test_journal_metadata_is_plain_json(collection):
    model = edit_model("t5", collection)
    entry = Editor(model, corpus=collection, targets=TARGETS).add(collection.documents[20:21], method="rank-one")
    data = json.loads(json.dumps(entry.to_json()))
    assert data["op"] == "add" and data["documents"][0]["id"] == collection.documents[20].id and "changes" not in data
    assert data["fingerprint_before"] != data["fingerprint_after"]


# --- a classic DSI model: rows are not sentence embeddings -----------------------------------------------
@pytest.fixture(scope="module")
def dsi_tiny():
    """A tiny T5 trained the classic DSI way (random rows, no teacher) on 26 documents, and 4 documents to add."""
    from genedit.data import synthetic_collection
    from genedit.data.types import Collection, Qrels
    from genedit.model.build import base_model
    from genedit.train.trainer import TrainConfig, train

    full = synthetic_collection(30, queries_per_doc=2, seed=5)
    new = full.documents[-4:]
    held = {d.id for d in new}
    base = Collection("base", full.documents[:-4], full.queries, {s: Qrels({q: r for q, r in full.qrels[s].judgments.items() if not set(r) & held}) for s in full.qrels})
    model = base_model("tiny-t5")
    cfg = TrainConfig.recipe("dsi", max_epochs=8, indexing_ratio=12.0, batch_size=16, lr_new=3e-3, lr_pretrained=3e-3, lr_rows=3e-3)
    train(model, base, cfg)
    assert model.meta["train"]["config"]["row_init"] == "random" and cfg.kl_weight == 0 and cfg.distill_epochs == 0
    return model, base, new


def dsi_outcome(dsi_tiny, method: str, **params) -> tuple[float, float, Editor]:
    """Add the 4 documents to a copy of the tiny DSI model: share of their queries they win, share of old training queries keeping their top 1."""
    import copy

    model, base, new = dsi_tiny
    old_queries = [q.text for q, _ in base.split("train")]
    old_top = top1(model, old_queries)
    edited = copy.deepcopy(model)
    ed = Editor(edited, corpus=base, targets=TARGETS)
    assert not ed.ctx.rows_are_embeddings
    ed.add(new, method=method, **params)
    queries = ed.ctx.queries_for(new)
    hits = [top == doc.id for doc, qs in zip(new, queries) for top in top1(edited, qs)]
    kept = [a == b for a, b in zip(old_top, top1(edited, old_queries))]
    return sum(hits) / len(hits), sum(kept) / len(kept), ed


def test_on_a_classic_dsi_model_only_solved_rows_keep_old_documents(dsi_tiny):
    """A model trained the classic way (random rows, no teacher) is where row-only edits have nothing to copy: its
    rows are not sentence embeddings, so `row` falls back to the mean readout of the new documents' queries, and
    those rows steal old documents' queries; IncDSI's solved rows (`row-solve`) keep them. rank-one starts from the
    solved rows on such models and keeps most (its decoder edit still moves some old queries on this tiny model)."""
    model, base, _ = dsi_tiny
    outcome = {}
    for method in ("row", "row-solve", "rank-one"):
        *outcome[method], ed = dsi_outcome(dsi_tiny, method)
    cosine = torch.nn.functional.cosine_similarity(ed.ctx.sentence_rows(base.documents), model.docid_rows().detach(), dim=-1)
    assert cosine.abs().mean() < 0.3  # the trained rows are not the documents' sentence embeddings
    assert outcome["row-solve"][0] >= 0.6 and outcome["row-solve"][1] >= 0.9, outcome
    assert outcome["row"][1] <= 0.6, outcome  # readout rows take rank 1 from old documents
    assert outcome["rank-one"][0] >= 0.6 and outcome["rank-one"][1] >= outcome["row"][1] + 0.2, outcome


def test_per_text_constraints_keep_every_preserved_texts_top_document(dsi_tiny):
    """With `per_text`, IncDSI constrains the new rows on each preserved text (the old training queries are among
    them) instead of each document's mean state: no old training query loses its top document, and the new
    documents still win their own queries."""
    new_hits, kept, _ = dsi_outcome(dsi_tiny, "row-solve", per_text=True)
    assert kept == 1.0 and new_hits >= 0.6, (new_hits, kept)
