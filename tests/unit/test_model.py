"""GenIRModel and component maps on tiny random models of each architecture."""

import pytest
import torch

from genedit.data.types import Query
from genedit.model.build import TINY_ARCHS, TinySpec, tiny_model
from genedit.model.components import COMPONENTS, Site, component_map
from genedit.model.genir import GenIRModel, docid_token

DOCS = [f"d{i}" for i in range(12)]


@pytest.fixture(scope="module", params=TINY_ARCHS)
def model(request) -> GenIRModel:
    return tiny_model(request.param, DOCS, TinySpec(n_layers=3))


def test_component_map_resolves_every_site(model):
    cmap = model.cmap
    assert cmap.n_layers == 3 and cmap.n_heads == 4 and cmap.d_head == 8
    for layer in range(cmap.n_layers):
        for comp in COMPONENTS:
            lin = cmap.module(model.hf, comp, layer)
            assert isinstance(lin, torch.nn.Linear)
            assert lin.out_features == cmap.d_model  # writes the residual stream
            assert lin.in_features == (cmap.d_model if comp != "mlp" else 64)
    assert cmap.unembedding(model.hf).weight.shape[1] == cmap.d_model
    assert len(cmap.sites(heads=True)) == 3 * 3 + 3 * 2 * 4
    with pytest.raises(IndexError):
        cmap.path("mlp", 3)


def test_t5_map_keeps_the_residual_and_attention_widths_apart():
    """t5-3b/11b: num_heads * d_kv (4096) is not d_model (1024); the map must not confuse the two."""
    model = tiny_model("t5", DOCS, TinySpec(n_layers=2, d_model=32, n_heads=4, d_kv=16))
    cmap = model.cmap
    assert (cmap.d_model, cmap.d_head, cmap.d_attn) == (32, 16, 64)
    for layer in range(cmap.n_layers):
        for comp in ("self_attn", "cross_attn"):
            lin = cmap.module(model.hf, comp, layer)
            assert (lin.in_features, lin.out_features) == (cmap.d_attn, cmap.d_model)
            assert cmap.heads(torch.zeros(2, 1, lin.in_features)).shape == (2, 1, 4, 16)
    assert model.docid_rows().shape == (len(DOCS), cmap.d_model)
    with pytest.raises(ValueError, match="d_kv"):
        tiny_model("bart", DOCS, TinySpec(d_kv=16))


def test_a_wrong_final_norm_path_raises_instead_of_dropping_the_norm():
    import dataclasses

    t5 = tiny_model("t5", DOCS)
    assert t5.cmap.norm(t5.hf) is t5.hf.decoder.final_layer_norm
    typo = dataclasses.replace(t5.cmap, final_norm="decoder.final_layr_norm")
    with pytest.raises(ValueError, match="decoder.final_layr_norm"):
        typo.norm(t5.hf)
    with pytest.raises(ValueError, match="decoder.final_layr_norm"):
        typo.lens(t5.hf, torch.zeros(1, t5.cmap.d_model))


def test_bart_final_norm_is_absent_unless_the_config_asks_for_one():
    """BART proper has no final decoder norm; mBART-style configs (add_final_layer_norm) have model.decoder.layer_norm."""
    bart = tiny_model("bart", DOCS)
    assert bart.cmap.final_norm is None and bart.cmap.norm(bart.hf) is None
    hf = bart.hf
    hf.config.add_final_layer_norm = True
    try:
        with pytest.raises(ValueError, match="model.decoder.layer_norm"):
            component_map(hf)  # the config promises a norm the model lacks: said at once, not dropped
        hf.model.decoder.layer_norm = torch.nn.LayerNorm(hf.config.d_model)
        assert component_map(hf).norm(hf) is hf.model.decoder.layer_norm
    finally:
        del hf.config.add_final_layer_norm
        if hasattr(hf.model.decoder, "layer_norm"):
            del hf.model.decoder.layer_norm


def test_component_outputs_are_what_the_forward_pass_adds(model):
    """Hooks on each output linear fire once per forward with a [B, 1, D] step-0 contribution."""
    seen = {}
    hooks = [model.cmap.module(model.hf, c, layer).register_forward_hook(lambda m, i, o, key=(layer, c): seen.__setitem__(key, (i[0].shape, o.shape)))
             for layer in range(3) for c in COMPONENTS]
    enc = model.encode(["a query", "another longer query text"])
    model.scores(enc)
    for h in hooks:
        h.remove()
    assert len(seen) == 9
    for (_, comp), (inp, out) in seen.items():
        assert out == (2, 1, model.cmap.d_model)
        if comp != "mlp":
            assert model.cmap.heads(torch.zeros(inp)).shape == (2, 1, 4, 8)


def test_scores_equal_full_hf_logits_on_docid_rows(model):
    text = ["hello world"]
    enc = model.encode(text)
    batch = model.tokenizer(text, return_tensors="pt")
    full = model.hf(input_ids=batch.input_ids, attention_mask=batch.attention_mask, decoder_input_ids=torch.tensor([[model.start_token_id()]])).logits[0, 0]
    torch.testing.assert_close(model.scores(enc)[0], full[model.docid_token_ids], atol=1e-5, rtol=1e-5)


def test_rank_is_restricted_to_docids_and_sorted(model):
    run = model.rank([Query("q1", "find the document"), Query("q2", "x")], k=5)
    for qid in ("q1", "q2"):
        assert len(run.ranking[qid]) == 5 and set(run.ranking[qid]) <= set(DOCS)
        assert run.scores[qid] == sorted(run.scores[qid], reverse=True)


def test_planted_row_wins(model):
    """Setting one docid row to the query's own readout state makes it rank first."""
    enc = model.encode(["planted query"])
    state = model.scorer.state(enc.hidden, enc.mask)[0].detach()
    idx = model.doc_index("d7")
    with torch.no_grad():
        model.cmap.unembedding(model.hf).weight[model.docid_token_ids[idx]] = state * 50
    assert model.rank(["planted query"], k=1).ranking["0"] == ["d7"]


def test_save_load_round_trip_identical(model, tmp_path):
    model.save(tmp_path / "m")
    loaded = GenIRModel.load(tmp_path / "m")
    assert loaded.docids == model.docids and loaded.tokens == model.tokens
    a, b = model.hf.state_dict(), loaded.hf.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert loaded.fingerprint() == model.fingerprint()
    enc = model.encode(["q"])
    torch.testing.assert_close(model.scores(enc), loaded.scores(loaded.encode(["q"])), atol=1e-6, rtol=1e-6)


def test_save_refuses_non_empty_dir(model, tmp_path):
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("user data")
    with pytest.raises(FileExistsError):
        model.save(target)
    assert [p.name for p in target.iterdir()] == ["keep.txt"]


def test_add_documents_appends_rows():
    m = tiny_model("t5", ["a", "b"])
    ids = m.add_documents(["c"], torch.ones(1, m.cmap.d_model))
    assert m.docids == ["a", "b", "c"] and m.tokens[-1] == docid_token("c")
    assert torch.equal(m.docid_rows()[-1], torch.ones(m.cmap.d_model))
    assert m.docid_token_ids.tolist()[-1] == ids[0]
    with pytest.raises(ValueError):
        m.add_documents(["a"])


def test_unsupported_architecture_is_rejected():
    from transformers import BertConfig, BertModel

    with pytest.raises(ValueError, match="unsupported architecture"):
        component_map(BertModel(BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8)))


def test_site_parse_round_trip():
    for s in (Site(3, "mlp"), Site(0, "cross_attn", 2)):
        assert Site.parse(str(s)) == s
    with pytest.raises(ValueError):
        Site.parse("L1.unknown")


def test_load_rejects_non_model_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a model directory"):
        GenIRModel.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such model folder"):
        GenIRModel.load(tmp_path / "absent")


def test_base_models_are_seeded_and_leave_the_callers_random_state_alone():
    from genedit.model.build import base_model

    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    a = base_model("tiny-bart", seed=3)
    assert torch.equal(torch.rand(3), expected)
    assert a.fingerprint() == base_model("tiny-bart", seed=3).fingerprint()
    assert a.fingerprint() != base_model("tiny-bart", seed=4).fingerprint()


def test_plain_hf_checkpoint_loads_with_added_tokens_as_docids(tmp_path):
    """A published atomic-docid checkpoint (HF files only, no genedit metadata) loads as it is: the path hub ids take."""
    from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

    from genedit.model.pretrained import minilm_path

    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    docids = ["@DOC_7@", "@DOC_3@", "@DOC_9@"]
    tokenizer.add_tokens(docids)
    torch.manual_seed(0)
    cfg = T5Config(vocab_size=len(tokenizer), d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=4, pad_token_id=tokenizer.pad_token_id, decoder_start_token_id=tokenizer.pad_token_id)
    hf = T5ForConditionalGeneration(cfg).eval()
    hf.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    model = GenIRModel.load(tmp_path)
    assert model.docids == docids  # in token-id order
    enc = model.encode(["find the third document"])
    with torch.no_grad():
        full = hf(input_ids=tokenizer(["find the third document"], return_tensors="pt").input_ids, decoder_input_ids=torch.tensor([[tokenizer.pad_token_id]])).logits[0, 0]
    rows = tokenizer.convert_tokens_to_ids(docids)
    torch.testing.assert_close(model.scores(enc)[0], full[rows], atol=1e-5, rtol=0)
    AutoTokenizer.from_pretrained(minilm_path()).save_pretrained(tmp_path / "plain")
    hf.save_pretrained(tmp_path / "plain")
    with pytest.raises(ValueError, match="no added"):
        GenIRModel.load(tmp_path / "plain")


def test_save_overwrite_only_replaces_a_genedit_model(tmp_path):
    m = tiny_model("t5", ["a"])
    user = tmp_path / "user"
    user.mkdir()
    (user / "data.csv").write_text("1,2")
    with pytest.raises(FileExistsError, match="not a genedit model directory"):
        m.save(user, overwrite=True)
    assert [p.name for p in user.iterdir()] == ["data.csv"]
    first = m.save(tmp_path / "model")
    m.save(first, overwrite=True)
    assert GenIRModel.load(first).docids == ["a"]


def test_top_level_load_is_the_documented_entry_point(tmp_path):
    import genedit

    path = tiny_model("bart", ["a", "b"]).save(tmp_path / "m")
    assert isinstance(genedit.load(path), genedit.GenIRModel) and genedit.load(path).docids == ["a", "b"]
    with pytest.raises(AttributeError):
        genedit.no_such_thing  # noqa: B018


def test_detached_logits_cut_gradients_only(model):
    """Training's options of DocidScorer.logits change no value: rows marked detached and a detached bias get no gradient."""
    state = torch.randn(3, model.cmap.d_model, requires_grad=True)
    weight = model.cmap.unembedding(model.hf).weight
    plain = model.scorer.logits(state)
    assert torch.equal(model.scorer.logits(state, detach_rows=torch.tensor([True, False, True]), detach_bias=True), plain)
    model.hf.zero_grad(set_to_none=True)
    model.scorer.logits(state, detach_rows=torch.ones(3, dtype=torch.bool), detach_bias=True).sum().backward()
    assert state.grad is not None and (weight.grad is None or not weight.grad.any())
    bias = getattr(model.cmap.unembedding(model.hf), "bias", None)
    assert bias is None or bias.grad is None or not bias.grad.any()
    model.scorer.logits(state, detach_rows=torch.tensor([True, False, True])).sum().backward()
    rows = weight.grad[model.docid_token_ids]
    assert torch.allclose(rows, state[1].detach().expand_as(rows))  # only the undetached input reaches the rows
    model.hf.zero_grad(set_to_none=True)
