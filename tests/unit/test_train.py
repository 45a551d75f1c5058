"""The DSI trainer on a tiny random T5: epoch-bound runs are reproducible, a wall-clock cap is flagged, it learns."""

from __future__ import annotations

import logging

import pytest

from genedit.data import synthetic_collection
from genedit.model.build import TINY_ARCHS, base_model, tiny_model
from genedit.train.trainer import TrainConfig, train


@pytest.fixture(scope="module")
def collection():
    return synthetic_collection(30, queries_per_doc=3, seed=2)


def _fit(collection, cfg: TrainConfig):
    model = tiny_model("t5", [])
    return model, train(model, collection, cfg)


def test_epoch_bound_training_is_reproducible(collection):
    cfg = TrainConfig(max_epochs=3, distill_epochs=1, batch_size=16, patience=10)
    a, ra = _fit(collection, cfg)
    b, rb = _fit(collection, cfg)
    assert not ra.truncated and len(ra.history) == 3
    assert a.fingerprint() == b.fingerprint()
    assert [h.loss for h in ra.history] == [h.loss for h in rb.history]
    assert a.meta["train"]["config"]["max_epochs"] == 3 and a.meta["train"]["truncated"] is False


def test_different_seed_gives_a_different_model(collection):
    a, _ = _fit(collection, TrainConfig(max_epochs=2, distill_epochs=1, batch_size=16))
    b, _ = _fit(collection, TrainConfig(max_epochs=2, distill_epochs=1, batch_size=16, seed=1))
    assert a.fingerprint() != b.fingerprint()


def test_wall_clock_cap_is_flagged(collection, caplog):
    with caplog.at_level(logging.WARNING, logger="genedit.train.trainer"):
        model, result = _fit(collection, TrainConfig(minutes=1e-6, max_epochs=5))
    assert result.truncated and model.meta["train"]["truncated"] is True
    assert len(result.history) <= 1
    assert "not reproducible" in caplog.text


def test_training_fits_the_planted_key_words(collection):
    """Synthetic queries share unique key words with their document: DSI training must lift dev retrieval."""
    _, result = _fit(collection, TrainConfig(max_epochs=25, distill_epochs=1, batch_size=16, patience=25, lr_new=3e-3, lr_pretrained=3e-3, lr_rows=3e-3))
    best = max(h.dev_hits10 for h in result.history)
    assert best > result.start_dev[1] + 0.2


def test_train_refuses_a_model_that_already_holds_the_documents(collection):
    model = tiny_model("t5", [d.id for d in collection.documents[:2]])
    with pytest.raises(ValueError, match="fresh base model"):
        train(model, collection, TrainConfig(max_epochs=1))


def test_length_batches_cover_every_example_once_and_pad_less():
    import random

    from genedit.train.trainer import length_batches

    rng = random.Random(0)
    lengths = [rng.randint(5, 48) for _ in range(1000)]
    order = list(range(1000))
    rng.shuffle(order)
    batches = length_batches(order, lengths, batch_size=16, window=10)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert all(1 <= len(b) <= 16 for b in batches)
    random_width = sum(max(lengths[i] for i in order[s : s + 16]) for s in range(0, 1000, 16))
    sorted_width = sum(max(lengths[i] for i in b) for b in batches)
    assert sorted_width < 0.8 * random_width
    assert length_batches(order, lengths, 16, 10) == batches  # deterministic


def test_dev_rank_counts_ties_against_the_relevant_document():
    """Identical docid rows tie every document: the trainer's dev score must rank the relevant one last, not first."""
    import torch

    from genedit.train.trainer import dev_scores

    model = tiny_model("t5", ["a", "b", "c"])
    with torch.no_grad():
        model.cmap.unembedding(model.hf).weight[model.docid_token_ids] = torch.ones(3, model.cmap.d_model)
    enc = model.encode(["a query", "another query"])
    hits1, hits10, mrr10 = dev_scores(model, enc, torch.tensor([0, 2]))
    assert hits1 == 0.0 and hits10 == 1.0
    assert abs(mrr10 - 1 / 3) < 1e-6


def test_training_scores_like_retrieval_including_the_output_bias():
    """BART adds final_logits_bias to retrieval logits: the loss training reports must be the loss of those logits."""
    import torch
    import torch.nn.functional as F

    from genedit.model.rows import pseudo_queries
    from genedit.train.trainer import encode_pool

    small = synthetic_collection(4, queries_per_doc=2, seed=3)
    model = base_model("tiny-bart")
    model.hf.resize_token_embeddings(len(model.tokenizer) + len(small.documents), mean_resizing=False)  # no resize later
    with torch.no_grad():
        model.hf.final_logits_bias.normal_(0.0, 3.0, generator=torch.Generator().manual_seed(0))
    frozen = dict(lr_new=0.0, lr_pretrained=0.0, lr_rows=0.0)  # nothing moves: the reported loss is the start's
    cfg = TrainConfig(max_epochs=1, distill_epochs=0, indexing_ratio=0.0, batch_size=4, **frozen)
    result = train(model, small, cfg)
    assert result.n_dev_queries == 0 and float(model.hf.final_logits_bias[0, model.docid_token_ids].abs().min()) > 0

    texts, targets = [], []
    for q, rel in small.split("train"):
        texts += [q.text] * len(rel)
        targets += [model.doc_index(d) for d in sorted(rel)]
    for d in small.documents:
        sentences = pseudo_queries(d, cfg.pseudo_queries)
        texts += sentences
        targets += [model.doc_index(d.id)] * len(sentences)
    pool = encode_pool(model, texts, targets, [False] * len(texts), cfg.query_tokens, cfg.batch_size)
    logits = model.scores(pool.enc)
    teacher = F.softmax(pool.teacher @ F.normalize(model.docid_rows().detach(), dim=-1).T / cfg.temperature, dim=-1)
    expected = F.cross_entropy(logits, pool.target) + F.kl_div(F.log_softmax(logits, -1), teacher, reduction="batchmean")
    assert result.history[0].loss == pytest.approx(float(expected), rel=1e-4)


# learns the synthetic collection on every tiny architecture in ~2 s (tiny BERT2BERT needs many indexing steps and
# no teacher: its random encoder's sentence embeddings all point the same way; for the same reason the decoder starts
# from random weights, not as that teacher, so that what the run learns is measured from a start that knows nothing,
# and at constant rates, which a run from random weights needs on these tiny models)
LEARNS = dict(distill_epochs=1, kl_weight=0.0, indexing_ratio=12.0, batch_size=16, lr_new=3e-3, lr_pretrained=3e-3, lr_rows=3e-3, decoder_init="random", lr_decay=False)


def _indexing_mrr10(model, collection) -> float:
    """MRR@10 of each document's indexing text retrieving that document."""
    import torch

    from genedit.eval import rank_of, rr_at
    from genedit.model.rows import indexing_texts

    logits = model.scores(model.encode(indexing_texts(model, collection.documents, 32)))
    target = torch.tensor([model.doc_index(d.id) for d in collection.documents])
    return rr_at(rank_of(logits, target), 10).mean().item()


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_without_a_dev_split_the_last_epoch_is_kept(arch):
    """5 training queries leave no dev split: the run must end with its trained weights, not restore the start."""
    few = synthetic_collection(30, queries_per_doc=1, seed=2, test_fraction=25 / 30)
    start = base_model(f"tiny-{arch}")
    train(start, few, TrainConfig(max_epochs=0, **LEARNS))
    model = base_model(f"tiny-{arch}")
    result = train(model, few, TrainConfig(max_epochs=40, patience=2, **LEARNS))
    assert result.n_train_queries == 5 and result.n_dev_queries == 0
    assert len(result.history) == 40  # no dev score, so no early stopping either
    assert result.best_epoch == 39 and model.meta["train"]["best_epoch"] == 39
    assert _indexing_mrr10(model, few) > _indexing_mrr10(start, few) + 0.3


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_docid_rows_train_and_nothing_else_in_the_vocabulary_moves(arch):
    """T5 and BART tie the docid rows to the encoder's (frozen) input embedding: the rows must still train, while every
    other vocabulary row stays bit-identical (BERT2BERT's decoder-only start-token row excepted) and the encoder
    states the trainer cached stay valid."""
    import torch

    few = synthetic_collection(30, queries_per_doc=1, seed=2, test_fraction=25 / 30)  # no dev: the last epoch is kept
    start = base_model(f"tiny-{arch}")
    vocab = start.cmap.unembedding(start.hf).weight.detach().clone()
    train(start, few, TrainConfig(max_epochs=0, **LEARNS))
    model = base_model(f"tiny-{arch}")
    train(model, few, TrainConfig(max_epochs=4, **LEARNS))
    moved = (model.docid_rows() - start.docid_rows()).norm(dim=-1)
    assert bool((moved > 0).all()), f"{int((moved == 0).sum())} docid rows never trained"
    after = model.cmap.unembedding(model.hf).weight[: len(vocab)]
    same = (after == vocab).all(-1)
    expected = torch.ones_like(same)
    if arch == "bert2bert":
        expected[model.scorer.start_id] = False  # the decoder's own input embedding of its start token trains
    assert same.tolist() == expected.tolist()
    texts = [q.text for q, _ in few.split("test")]
    assert torch.equal(model.encode(texts).hidden, start.encode(texts).hidden)


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_training_a_model_that_holds_other_documents_targets_their_model_rows(arch):
    """Training targets are model rows: with 5 other documents already held, collection position i is not row i."""
    import torch

    few = synthetic_collection(30, queries_per_doc=1, seed=2, test_fraction=25 / 30)
    model = base_model(f"tiny-{arch}")
    held = [f"held{i}" for i in range(5)]
    model.add_documents(held, torch.randn(5, model.cmap.d_model, generator=torch.Generator().manual_seed(1)))
    result = train(model, few, TrainConfig(max_epochs=40, **LEARNS))
    assert model.docids[:5] == held and model.n_docs == 35 and result.n_docs == 30
    assert _indexing_mrr10(model, few) > 0.7
    with pytest.raises(ValueError, match="fresh base model"):
        train(model, few, TrainConfig(max_epochs=1))


def test_train_leaves_no_global_state_behind(collection):
    """The caller's RNG streams, the model's requires_grad flags and accelerate's singletons are as before the run."""
    import random

    import torch

    from genedit.train.trainer import accelerate_state_exists

    model = base_model("tiny-bart")
    accelerate_was_set = accelerate_state_exists()
    random.seed(123)
    torch.manual_seed(123)
    py_state, torch_state = random.getstate(), torch.get_rng_state()
    train(model, collection, TrainConfig(max_epochs=2, distill_epochs=1, batch_size=16))
    assert random.getstate() == py_state and torch.equal(torch.get_rng_state(), torch_state)
    assert all(p.requires_grad for p in model.hf.parameters()) and not model.hf.training
    if not accelerate_was_set:
        assert not accelerate_state_exists()


HEADER = "Copyright (c) the project developers and contributors, all rights reserved. Distributed under the terms of the BSD License, see the LICENSE file."


def test_distinct_text_trains_on_what_tells_documents_apart(collection):
    """Every document opens with the same licence header: without it the indexing texts and pseudo-queries are
    all header and cannot be told apart; `distinct_text` drops it and training learns the planted key words.
    Nine in ten training queries go to the dev split, so the documents' own text is what there is to learn from."""
    from dataclasses import replace

    from genedit.data.types import Document

    boiler = replace(collection, documents=[Document(d.id, "", f"{HEADER} {d.text}") for d in collection.documents])
    fast = dict(max_epochs=20, distill_epochs=1, batch_size=16, patience=20, lr_new=3e-3, lr_pretrained=3e-3, lr_rows=3e-3, index_tokens=8, pseudo_queries=2, dev_fraction=0.9)
    _, plain = _fit(boiler, TrainConfig.recipe("plain", **fast))  # the text as written, nothing else changed
    model, distinct = _fit(boiler, TrainConfig.recipe("plain", **fast, distinct_text=True, lr_decay=True))
    def settled(result) -> float:  # mean dev Hits@10 of the last five epochs: 64 dev queries are noisy epoch to epoch
        return sum(h.dev_hits10 for h in result.history[-5:]) / 5

    assert settled(distinct) > distinct.start_dev[1] + 0.2
    assert settled(distinct) > settled(plain) + 0.08
    assert model.meta["train"]["config"]["distinct_text"] is True


def test_named_recipes_are_configs():
    assert TrainConfig() == TrainConfig.recipe("default") == TrainConfig.recipe("distinct")  # the former opt-in name
    assert TrainConfig().distinct_text and TrainConfig().row_tokens == 256 and TrainConfig().lr_decay
    plain = TrainConfig.recipe("plain")  # the default before issue 9, kept reproducible
    assert not plain.distinct_text and plain.row_tokens == 128 and not plain.lr_decay and plain.decoder_init == "random"
    dsi = TrainConfig.recipe("dsi")  # classic DSI is not touched by the new default
    assert dsi.row_init == "random" and dsi.decoder_init == "random" and not dsi.distinct_text and dsi.kl_weight == 0
    with pytest.raises(ValueError, match="unknown recipe"):
        TrainConfig.recipe("nope")
