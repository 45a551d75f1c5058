"""Preservation statistics saved with a model version: reused only while valid, brought up to date by edits."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from edit_support import edit_model

from genedit.data.types import Document
from genedit.edit import Editor, EditSettings, statistics
from genedit.model.components import Site
from genedit.model.genir import GenIRModel
from genedit.model.storage import current_version

SITE = Site(1, "cross_attn")


def _saved(model_dir) -> statistics.PreservationStats:
    stats = statistics.load(current_version(model_dir) / statistics.STATS_FILE)
    assert stats is not None
    return stats


def _fresh(ed: Editor, site: Site = SITE) -> torch.Tensor:
    texts, _ = ed.ctx.preserved_texts()
    return statistics.compute(ed.model, texts, [site], ed.ctx.query_tokens).moment(site)


def _no_compute(monkeypatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("statistics recomputed although valid ones were saved")

    monkeypatch.setattr(statistics, "compute", fail)


@pytest.fixture
def model_dir(collection, tmp_path):
    """A tiny BART indexing 20 documents, saved to a folder (edits load it from there)."""
    edit_model("bart", collection).save(tmp_path / "m")
    return tmp_path / "m"


@pytest.mark.parametrize("op", ["add", "delete", "update"])
def test_an_edit_saves_statistics_equal_to_recomputed_ones_and_the_next_process_reads_them(op, collection, model_dir, monkeypatch):
    ed = Editor(GenIRModel.load(model_dir), corpus=collection, targets=[SITE])
    if op == "add":
        ed.add(collection.documents[20:22], method="rank-one")
    elif op == "delete":
        ed.delete(["d003", "d007"], method="rank-one")
    else:
        doc = collection.documents[4]
        ed.update([type(doc)(doc.id, doc.title, doc.text + " now about something else entirely")], method="rank-one")
    ed.save(model_dir)
    saved = _saved(model_dir)
    torch.testing.assert_close(saved.moment(SITE), _fresh(ed), rtol=1e-9, atol=1e-9)  # the edit's documents are in (or out)
    assert saved.count == len(ed.ctx.preserved_texts()[0])
    _no_compute(monkeypatch)
    again = Editor(GenIRModel.load(model_dir), corpus=collection, targets=[SITE])
    torch.testing.assert_close(again.ctx.covariance(SITE), saved.moment(SITE), rtol=0, atol=0)
    assert again.ctx.n_preserved == saved.count


def test_an_edit_of_a_lower_weight_makes_the_saved_statistics_stale(collection, model_dir, monkeypatch):
    ed = Editor(GenIRModel.load(model_dir), corpus=collection, targets=[SITE])
    ed.ctx.covariance(SITE)
    ed.save(model_dir)
    model = GenIRModel.load(model_dir)
    with torch.no_grad():  # an edit of layer 0 (below the target) changes the target's keys
        model.cmap.module(model.hf, "mlp", 0).weight.mul_(1.5)
    calls = []
    real = statistics.compute
    monkeypatch.setattr(statistics, "compute", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = Editor(model, corpus=collection, targets=[SITE])
    cov = again.ctx.covariance(SITE)
    assert calls == [1]
    torch.testing.assert_close(cov, _fresh(again), rtol=1e-9, atol=1e-9)


def test_an_edit_of_a_target_below_another_invalidates_the_upper_ones_statistics(collection, model_dir):
    """Two targets in one layer: editing the cross-attention output moves the MLP's keys, so nothing stale is saved."""
    sites = [Site(1, "cross_attn"), Site(1, "mlp")]
    ed = Editor(GenIRModel.load(model_dir), corpus=collection, targets=sites)
    ed.add(collection.documents[20:21], method="rank-one")
    ed.save(model_dir)
    assert not (current_version(model_dir) / statistics.STATS_FILE).exists()


def test_the_target_linear_and_docid_rows_do_not_change_the_inputs_hash_other_weights_do(collection):
    model = edit_model("t5", collection)
    before = statistics.input_hashes(model, [SITE], 32)
    with torch.no_grad():
        model.cmap.module(model.hf, "cross_attn", 1).weight.add_(1.0)
        model.docid_rows()  # a view; write through the unembedding
        model.cmap.unembedding(model.hf).weight[model.docid_token_ids] += 1.0
    model.add_documents(["new1"], torch.ones(1, model.cmap.d_model))
    assert statistics.input_hashes(model, [SITE], 32) == before
    assert statistics.input_hashes(model, [SITE], 48) != before  # another truncation: other keys
    with torch.no_grad():
        model.cmap.module(model.hf, "mlp", 1).weight.add_(1.0)  # above the cross-attention: hashed all the same
    assert statistics.input_hashes(model, [SITE], 32) != before


def test_a_damaged_or_foreign_file_is_recomputed(collection, model_dir):
    ed = Editor(GenIRModel.load(model_dir), corpus=collection, targets=[SITE])
    ed.ctx.covariance(SITE)
    path = current_version(model_dir) / statistics.STATS_FILE
    assert path.exists()  # computed once: kept beside the version it was read for
    path.write_bytes(b"not a safetensors file")
    assert statistics.load(path) is None
    again = Editor(GenIRModel.load(model_dir), corpus=collection, targets=[SITE])
    torch.testing.assert_close(again.ctx.covariance(SITE), _fresh(again), rtol=1e-9, atol=1e-9)
    other = collection.documents[5:24]  # another corpus: most texts differ, the saved sums are not patched up
    saved = _saved(model_dir)
    assert statistics.refresh(saved, again.model, [t for d in other for t in (d.title, d.text)], [SITE], again.ctx.query_tokens) is None


def test_documents_added_by_an_earlier_process_are_preserved_by_the_next(collection, model_dir):
    """Their text is in the journal, not in the corpus the next command is given."""
    ed = Editor(GenIRModel.load(model_dir), corpus=collection, targets=[SITE])
    ed.add([Document("x1", "Brand new", "A text no corpus holds. It has two sentences.")], method="row")
    ed.save(model_dir)
    later = Editor(GenIRModel.load(model_dir), corpus=collection, targets=[SITE])
    assert later.ctx.preserved_texts()[0] == ed.ctx.preserved_texts()[0]
    assert "x1" in later.ctx.preserved_texts()[1]


# --- the cap: a stable sample of the preserved texts -------------------------------------------------------------------


def _cands(ids: list[str]):
    return lambda positions: {i: [f"{ids[i]} text {j}" for j in range(3 if i % 4 else 2)] for i in positions}


def test_the_capped_sample_is_seeded_sized_and_unmoved_by_unrelated_documents():
    ids = [f"d{i:04d}" for i in range(400)]
    asked: list[int] = []

    def cands(positions):
        asked.extend(positions)
        return _cands(ids)(positions)

    first = statistics.sample_texts(ids, 3, 200, 0, cands)
    assert len(first) == 200 and [p for p, _ in first] == sorted(p for p, _ in first)
    assert len(set(asked)) < len(ids)  # only the documents the sample reaches have their texts made
    assert statistics.sample_texts(ids, 3, 200, 0, _cands(ids)) == first  # seeded: the same draw
    assert statistics.sample_texts(ids, 3, 200, 1, _cands(ids)) != first
    more = ids + [f"new{i}" for i in range(20)]  # 20 unrelated documents join: the sample moves by their slots only
    texts, grown = {t for _, t in first}, {t for _, t in statistics.sample_texts(more, 3, 200, 0, _cands(more))}
    joined = grown - texts
    assert joined and all(t.startswith("new") for t in joined) and len(texts - grown) == len(joined)
    fewer = ids[:-20]  # 20 documents leave: only their texts leave, replaced by the next in hash order
    shrunk = {t for _, t in statistics.sample_texts(fewer, 3, 200, 0, _cands(fewer))}
    assert all(t.split()[0] in ids[-20:] for t in texts - shrunk) and len(shrunk) == 200


def test_a_capped_context_preserves_a_sample_and_its_saved_statistics_after_an_edit_equal_a_recomputation(collection, model_dir, monkeypatch):
    settings = EditSettings(max_preserved=25)  # 20 documents x 3 texts: the cap holds
    ed = Editor(GenIRModel.load(model_dir), corpus=collection, targets=[SITE], settings=settings)
    texts, owners = ed.ctx.preserved_texts()
    assert len(texts) == 25 and len(set(owners)) < 20
    ed.add(collection.documents[20:23], method="rank-one")
    after, _ = ed.ctx.preserved_texts()
    assert len(after) == 25 and 0 < len(set(after) - set(texts)) <= 9  # the new documents' texts that fall under the cutoff
    calls = []
    real = statistics.compute
    monkeypatch.setattr(statistics, "compute", lambda *a, **k: calls.append(1) or real(*a, **k))
    ed.save(model_dir)
    assert calls == []  # brought up to date by the texts that joined and left, not recomputed
    saved = _saved(model_dir)
    assert saved.texts == Counter(after)
    monkeypatch.undo()
    torch.testing.assert_close(saved.moment(SITE), _fresh(ed), rtol=1e-9, atol=1e-9)
    _no_compute(monkeypatch)
    again = Editor(GenIRModel.load(model_dir), corpus=collection, targets=[SITE], settings=settings)
    torch.testing.assert_close(again.ctx.covariance(SITE), saved.moment(SITE), rtol=0, atol=0)


def test_document_states_reuse_the_statistics_pass_and_equal_a_separate_read(collection, monkeypatch):
    import genedit.edit.context as context

    model = edit_model("t5", collection)
    ed = Editor(model, corpus=collection, targets=[SITE])
    ed.ctx.covariance(SITE)
    from genedit.edit.activations import mean_readout

    reads = []
    real = context.read_keys
    monkeypatch.setattr(context, "read_keys", lambda *a, **k: reads.append(1) or real(*a, **k))
    ids, states = ed.ctx.doc_states()
    assert reads == []  # the statistics pass read the same texts' states
    texts, owners = ed.ctx.preserved_texts()
    pos = {d: i for i, d in enumerate(ids)}
    torch.testing.assert_close(states, mean_readout(model, texts, [pos[o] for o in owners], len(ids), max_length=ed.ctx.query_tokens), rtol=1e-5, atol=1e-6)
    per_text = ed.ctx.text_states()
    assert per_text[0] == owners and per_text[1].shape[0] == len(texts) and reads == []  # per-text states: the same read
    ed.ctx.reset_statistics()
    ed.ctx.doc_states()
    assert reads == [1]  # nothing left to reuse: read again


def test_text_states_survive_small_decoder_changes_and_read_only_new_documents_texts(collection, monkeypatch):
    """A stream of single-document edits must not re-read the whole corpus's states after each one: they are kept
    over `stale_states` decoder changes (as the statistics are), a newly indexed document's texts are read alone,
    and past the limit everything is read again."""
    import genedit.edit.context as context

    model = edit_model("t5", collection)  # indexes 20 of the 24 documents
    ed = Editor(model, corpus=collection, targets=[SITE], settings=EditSettings(stale_states=1))
    _, first = ed.ctx.text_states()
    read: list[list[str]] = []
    real = context.read_keys
    monkeypatch.setattr(context, "read_keys", lambda m, texts, *a, **k: read.append(list(texts)) or real(m, texts, *a, **k))
    ed.ctx.decoder_version += 1  # a decoder edit, within the limit
    _, kept = ed.ctx.text_states()
    assert read == [] and torch.equal(kept, first)
    new = collection.documents[20]
    ed.ctx.add_rows([new], model.docid_rows().detach()[:1].clone())  # a new document indexed: its texts only are read
    owners, states = ed.ctx.text_states()
    texts, _ = ed.ctx.preserved_texts()
    assert len(read) == 1 and set(read[0]) == {t for t, o in zip(texts, owners) if o == new.id}
    fresh = real(model, texts, [], max_length=ed.ctx.query_tokens)[1]
    torch.testing.assert_close(states[[o == new.id for o in owners]], fresh[[o == new.id for o in owners]], rtol=1e-5, atol=1e-6)
    ed.ctx.decoder_version += 1  # past the limit: everything again
    read.clear()
    ed.ctx.text_states()
    assert len(read) == 1 and sorted(read[0]) == sorted(dict.fromkeys(texts))
