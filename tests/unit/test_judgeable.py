"""Evaluating after a delete: the deleted document's queries count as misses; another corpus is still refused."""

from __future__ import annotations

import pytest
from edit_support import TARGETS, edit_model

from genedit.data.types import Document
from genedit.edit import Editor, rollback_model
from genedit.eval.evaluate import check_judgeable


def test_deleted_documents_are_misses_and_unknown_ones_are_refused(collection):
    model = edit_model("t5", collection)
    ed = Editor(model, corpus=None, targets=TARGETS)
    pairs = [(q, rel) for q, rel in collection.split("test") if rel & set(model.docids)]
    check_judgeable(pairs, set(model.docids), model.journal.deleted(), "m", "test")  # nothing missing
    victim = sorted(next(iter(pairs))[1])[0]
    ed.delete([victim], method="mask")
    assert model.journal.deleted() == {victim}
    check_judgeable(pairs, set(model.docids), model.journal.deleted(), "m", "test")  # deleted: a miss, not bad data
    with pytest.raises(ValueError, match="not indexed by the model"):
        check_judgeable(pairs, set(model.docids), set(), "m", "test")  # the same gap without the journal: refused
    doc = next(d for d in collection.documents if d.id == victim)
    ed.add([Document(doc.id, doc.title, doc.text)], method="row")
    assert model.journal.deleted() == set()  # added back
    rollback_model(model, 0)
    assert model.journal.deleted() == set()
