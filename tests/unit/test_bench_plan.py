"""Planning a bench: the default stream is sized to the corpus (and says so); an explicit one is kept; methods per protocol."""

from __future__ import annotations

import pytest

from benchmarks.plan import BenchConfig, plan
from benchmarks.protocols.sequential import documents_needed
from genedit.data import synthetic_collection, write_beir
from genedit.data.types import DataError
from genedit.edit import methods_for


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("plan") / "synth"
    write_beir(synthetic_collection(60, queries_per_doc=2, seed=1), path)
    return str(path)


def test_the_default_stream_is_sized_to_a_small_corpus_and_says_so(data, tmp_path):
    p = plan(BenchConfig(data=data, out=tmp_path / "out"))
    seq = p.splits["sequential"]
    assert len(seq.ops) == p.config.n_edits == 46 and documents_needed(46) <= 59 < documents_needed(47)
    assert seq.spec.every == p.config.every == 4 and len(seq.chunks) == 12
    assert len(p.notes) == 1 and "1,000 edits does not fit a corpus of 60 documents" in p.notes[0] and "46 edits" in p.notes[0]
    assert set(p.splits) == {"add", "delete", "update", "sequential"} and not (tmp_path / "out").exists()


def test_an_explicit_stream_is_kept_and_fails_when_it_does_not_fit(data, tmp_path):
    p = plan(BenchConfig(data=data, out=tmp_path / "out", protocols=["sequential"], n_edits=20))
    assert len(p.splits["sequential"].ops) == 20 and p.config.every == 100 and not p.notes
    with pytest.raises(DataError, match="use fewer edits"):
        plan(BenchConfig(data=data, out=tmp_path / "out", protocols=["sequential"], n_edits=50))


def test_without_a_stream_the_config_keeps_the_defaults(data, tmp_path):
    p = plan(BenchConfig(data=data, out=tmp_path / "out", protocols=["add", "delete"]))
    assert (p.config.n_edits, p.config.every) == (1000, 100) and not p.notes
    assert p.methods["add"] == ["row", *[m for m in methods_for("add") if m != "row"]]
    assert p.methods["delete"] == methods_for("delete")  # row cannot delete: the anchor runs only where it can


def test_a_stream_runs_adding_methods_only(data, tmp_path):
    p = plan(BenchConfig(data=data, out=tmp_path / "out", protocols=["sequential"], n_edits=10, methods=["mask", "row-solve"]))
    assert p.methods["sequential"] == ["row", "row-solve"] and p.skipped["sequential"] == {"mask": "adds and updates only in a stream"}
