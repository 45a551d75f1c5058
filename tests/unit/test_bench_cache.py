"""Base/oracle model cache: reused only on a matching key (data, recipe, versions), retrained otherwise."""

from __future__ import annotations

import dataclasses

import pytest

import genedit
from benchmarks.oracle import ModelCache, cache_key, cache_key_parts
from genedit.data import load_beir, synthetic_collection
from genedit.data.types import Collection, Document
from genedit.eval import evaluate
from genedit.model.genir import GenIRModel
from genedit.train.trainer import TrainConfig

CFG = TrainConfig(max_epochs=1, distill_epochs=1, batch_size=16)


@pytest.fixture(scope="module")
def coll():
    return synthetic_collection(20, queries_per_doc=2, seed=5)


def test_cache_reuses_on_a_matching_key_and_retrains_on_a_changed_one(coll, tmp_path):
    first = ModelCache(tmp_path, "tiny-t5", CFG).get(coll, "full")
    assert not first.reused and first.path.name.startswith("full-") and first.path.parent.name == "models"
    again = ModelCache(tmp_path, "tiny-t5", CFG).get(coll, "another-label")  # same data and recipe: reused
    assert again.reused and again.path == first.path and again.fingerprint == first.fingerprint == again.model.fingerprint()
    assert again.train_seconds == pytest.approx(first.train_seconds, abs=0.1)
    # the folder is an ordinary genedit model, with the collection it was trained on next to it
    loaded = GenIRModel.load(first.path)
    data = load_beir(first.data_path)
    assert loaded.docids == coll.doc_ids and data.doc_ids == coll.doc_ids
    assert evaluate(loaded.rank([q for q, _ in data.split("test")], k=10), data.qrels["test"]).n_queries > 0

    docs = list(coll.documents)
    docs[0] = Document(docs[0].id, docs[0].title, docs[0].text + " changed")
    changed_data = Collection(coll.name, docs, coll.queries, coll.qrels)
    other = ModelCache(tmp_path, "tiny-t5", CFG).get(changed_data, "full")
    assert not other.reused and other.path != first.path
    recipe = ModelCache(tmp_path, "tiny-t5", dataclasses.replace(CFG, seed=1)).get(coll, "full")
    assert not recipe.reused and recipe.path not in (first.path, other.path)
    assert len(list((tmp_path / "models").iterdir())) == 3


def test_key_covers_data_recipe_base_and_versions(coll, monkeypatch):
    key = cache_key(cache_key_parts(coll, "tiny-t5", CFG))
    assert key == cache_key(cache_key_parts(synthetic_collection(20, queries_per_doc=2, seed=5), "tiny-t5", CFG))
    assert key != cache_key(cache_key_parts(coll, "tiny-bart", CFG))
    assert key != cache_key(cache_key_parts(coll, "tiny-t5", dataclasses.replace(CFG, max_epochs=2)))
    assert key != cache_key(cache_key_parts(synthetic_collection(20, queries_per_doc=2, seed=6), "tiny-t5", CFG))
    import benchmarks.oracle as oracle

    monkeypatch.setattr(oracle, "recipe_source_hash", lambda: "edited-trainer")
    assert key != cache_key(cache_key_parts(coll, "tiny-t5", CFG))
    monkeypatch.undo()
    monkeypatch.setattr(genedit, "__version__", "9.9.9")
    assert key != cache_key(cache_key_parts(coll, "tiny-t5", CFG))
