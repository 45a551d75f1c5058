"""Boilerplate removal: word runs shared by several documents go, what tells a document apart stays."""

from genedit.data.text import boilerplate, without_boilerplate

HEADER = "Copyright (c) 2012 the project developers. Distributed under the terms of the BSD License, see LICENSE."


def test_shared_header_is_removed_and_distinct_text_kept() -> None:
    bodies = ["parse a config file into sections", "render the page with its template", "open a socket to the server", "hash a password with a salt"]
    texts = [f"{HEADER} {b}" for b in bodies]
    shared = boilerplate(texts)
    assert [without_boilerplate(t, shared) for t in texts] == bodies


def test_runs_in_fewer_documents_than_the_threshold_stay() -> None:
    texts = [f"{HEADER} alpha beta", f"{HEADER} gamma delta", "unrelated text about something else entirely here"]
    assert boilerplate(texts, min_docs=3) == frozenset()
    assert without_boilerplate(texts[0], boilerplate(texts, min_docs=3)) == texts[0]
    assert without_boilerplate(texts[0], boilerplate(texts, min_docs=2)) == "alpha beta"


def test_a_text_made_only_of_boilerplate_is_kept_whole() -> None:
    texts = [HEADER] * 3
    assert without_boilerplate(HEADER, boilerplate(texts)) == HEADER


def test_short_texts_have_no_shingles() -> None:
    assert boilerplate(["a b c", "a b c", "a b c"]) == frozenset()


def test_edit_context_edits_on_the_text_the_recipe_trained_on() -> None:
    from genedit.data.types import Collection, Document
    from genedit.edit.context import EditContext
    from genedit.model.build import TinySpec, tiny_model

    docs = [Document(f"d{i}", f"t{i}", f"{HEADER} topic{i} is what body {i} is about") for i in range(4)]
    collection = Collection("boiler", docs, {}, {})
    model = tiny_model("t5", [d.id for d in docs], TinySpec(n_layers=1))
    model.meta["train"] = {"config": {"distinct_text": True}}
    ctx = EditContext(model, [], collection)
    assert [d.text for d in ctx.distinct(docs)] == [f"topic{i} is what body {i} is about" for i in range(4)]
    assert not any("Copyright" in q for qs in ctx.queries_for(docs) for q in qs)
    model.meta["train"] = {"config": {}}
    assert EditContext(model, [], collection).distinct(docs) == docs  # models of the default recipe: the text as given


def test_edit_rows_are_built_as_the_distinct_recipe_built_its_rows() -> None:
    """A row embeds the text as written and the distinct text; an edit's new row is made the same way (parity)."""
    import torch

    from genedit.data import synthetic_collection
    from genedit.data.types import Document
    from genedit.edit.context import EditContext
    from genedit.model.build import tiny_model
    from genedit.model.rows import row_embedding
    from genedit.train.trainer import TrainConfig, train

    col = synthetic_collection(12, queries_per_doc=2, seed=4)
    docs = [Document(d.id, "", f"{HEADER} {d.text}") for d in col.documents]
    col = type(col)(col.name, docs, col.queries, col.qrels)
    model = tiny_model("t5", [])
    train(model, col, TrainConfig(max_epochs=0, distinct_text=True))  # rows as initialised, no step taken
    ctx = EditContext(model, [], col)
    trained = model.docid_rows().detach()[[model.doc_index(d.id) for d in docs]]
    assert torch.allclose(ctx.sentence_rows(docs), trained, atol=1e-5)
    written = row_embedding(model, [[d.indexing_text() for d in docs]], ctx.row_tokens)
    assert not torch.allclose(written, trained, atol=1e-3)  # the distinct text is in the row, not only the header


def test_rows_reusing_identical_views_equal_rows_encoding_every_view(monkeypatch) -> None:
    """Parity: a document whose distinct text is its text gets the same row whether the second view is encoded again
    or reused, and only the texts that differ are encoded twice."""
    import torch

    from genedit.model.build import tiny_model
    from genedit.model.genir import GenIRModel
    from genedit.model.rows import row_embedding

    model = tiny_model("bert2bert", [])
    written = [f"document {i} about topic {i % 3} with words w{i} and more" for i in range(9)]
    distinct = [t if i % 3 else t.replace("and more", "") for i, t in enumerate(written)]
    full = row_embedding(model, [written, distinct], 32)
    encoded: list[str] = []
    real = GenIRModel.encode
    monkeypatch.setattr(GenIRModel, "encode", lambda self, texts, **k: encoded.extend(texts) or real(self, texts, **k))
    reused = row_embedding(model, [written, distinct], 32, reuse_identical=True)
    torch.testing.assert_close(reused, full, atol=1e-5, rtol=1e-5)
    assert len(encoded) == len(written) + 3  # the three changed texts only, once more
