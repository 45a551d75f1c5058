"""The editing layer on the real MiniLM weights: a model of the default recipe trained on 180 documents of the bundled corpus."""

from __future__ import annotations

import copy

import pytest

from genedit.data import load_collection
from genedit.data.types import Collection, Qrels
from genedit.edit import Editor
from genedit.model.build import base_model
from genedit.train.trainer import TrainConfig, train

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def setup():
    full = load_collection("default")
    docs = full.documents[:200]
    kept = {d.id for d in docs[:180]}
    qrels = {s: Qrels({q: r for q, r in j.judgments.items() if set(r) <= kept}) for s, j in full.qrels.items()}
    base = Collection("pydocs-180", docs[:180], full.queries, qrels)
    model = base_model("minilm")
    train(model, base, TrainConfig(max_epochs=4, distill_epochs=3))  # a small model of the default recipe (seconds)
    return model, base, docs[180:]


def test_rank_one_on_the_cross_attention_adds_documents_better_than_the_row_and_undo_is_exact(setup):
    model, base, new = setup
    before = model.fingerprint()
    ed = Editor(model, corpus=base, targets=["L5.cross_attn"])
    queries = ed.ctx.queries_for(new)
    texts = [q for qs in queries for q in qs]
    owners = [d.id for d, qs in zip(new, queries) for _ in qs]

    def found() -> int:
        run = model.rank(texts, k=1)
        return sum(run.ranking[str(i)][0] == owner for i, owner in enumerate(owners))

    ed.add(new, method="row")
    row_hits = found()
    ed.undo()
    entry = ed.add(new, method="rank-one")
    hits = found()
    assert hits > row_hits and hits >= 0.7 * len(owners), f"rank-one {hits}, row {row_hits} of {len(owners)} pseudo-queries"
    assert entry.params["targets"] == ["L5.cross_attn"] and entry.weight_norm > 0
    ed.undo()
    assert model.fingerprint() == before and model.n_docs == 180


def test_delete_forgets_what_masking_keeps(setup):
    """Put the deleted documents' old rows back: after rank-one fewer of their queries find them than after mask."""
    model, base, _ = setup
    victims = [d.id for d in base.documents[:10]]
    rows = model.docid_rows().detach()[[model.doc_index(d) for d in victims]].clone()
    found = {}
    for method in ("mask", "rank-one"):
        edited = copy.deepcopy(model)
        ed = Editor(edited, corpus=base, targets=["L5.cross_attn"])
        texts = [q for d in victims for q in ed.ctx.queries_for([base.document(d)])[0]]
        ed.delete(victims, method=method)
        assert not set(victims) & set(edited.docids)
        edited.add_documents(victims, rows)  # a leaked copy of the old rows
        run = edited.rank(texts, k=1)
        found[method] = sum(run.ranking[str(i)][0] in victims for i in range(len(texts)))
    assert found["rank-one"] < found["mask"], found
