"""nnsight patching (batched over sites, cached cross-attention K/V) equals plain torch hooks on the HF model."""

from __future__ import annotations

import pytest
import torch

from circuits.attribution import gradients, spearman
from circuits.metrics import metric_value
from circuits.patching import Activations, CleanRun, PatchSource, capture, evaluate_patches, run_patched
from circuits.reference import hook_capture, hook_patched
from circuits.runner import Runner
from genedit.model.build import TinySpec, tiny_model
from genedit.model.components import Site
from genedit.model.genir import GenIRModel

ARCHS = ("t5", "bart", "bert2bert", "t5-wide-heads")
QUERIES = ["hello world", "foo bar baz qux", "a b c d e f g", "x", "open the file and read it", "sort a list"]
N_DOCS = 12


@pytest.fixture(scope="module", params=ARCHS)
def model(request: pytest.FixtureRequest) -> GenIRModel:
    if request.param == "t5-wide-heads":  # num_heads * d_kv != d_model, as in t5-3b / t5-11b
        return tiny_model("t5", [f"d{i}" for i in range(N_DOCS)], TinySpec(n_layers=3, d_kv=16, seed=1))
    return tiny_model(request.param, [f"d{i}" for i in range(N_DOCS)], TinySpec(n_layers=3, seed=1))


def _replacement(mode: str, clean: Activations) -> Activations:
    n = len(clean)
    if mode == "zero":
        return PatchSource.zero().replacement(clean, torch.arange(n))
    if mode == "mean":
        return PatchSource.of_mean(clean).replacement(clean, torch.arange(n))
    return PatchSource.rolled(n, 1).replacement(clean, torch.arange(n))


def test_capture_matches_hooks(model: GenIRModel) -> None:
    enc = model.encode(QUERIES)
    runner = Runner(model)
    acts, logits = capture(runner, runner.cross_kv(enc))
    ref_acts, ref_logits = hook_capture(model, enc.hidden, enc.mask)
    torch.testing.assert_close(logits, ref_logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(acts.out, ref_acts.out, atol=1e-5, rtol=0)
    torch.testing.assert_close(acts.head_in, ref_acts.head_in, atol=1e-5, rtol=0)


@pytest.mark.parametrize("mode", ["zero", "mean", "counterfactual"])
def test_patching_matches_hooks(model: GenIRModel, mode: str) -> None:
    enc = model.encode(QUERIES)
    runner = Runner(model)
    clean, _ = hook_capture(model, enc.hidden, enc.mask)
    repl = _replacement(mode, clean)
    sites = model.cmap.sites(heads=True)
    patched = run_patched(runner, runner.cross_kv(enc), [[s] for s in sites], repl)  # one forward, all sites
    assert patched.shape == (len(sites), len(QUERIES), N_DOCS)
    clean_logits = model.scores(enc)
    changed = 0
    for i, site in enumerate(sites):
        ref = hook_patched(model, enc.hidden, enc.mask, {site: repl.site(site, model.cmap.d_head)})
        torch.testing.assert_close(patched[i], ref, atol=1e-5, rtol=0, msg=lambda m, s=site: f"{s} ({mode}): {m}")
        changed += int((ref - clean_logits).abs().max() > 1e-4)
    assert changed >= len(sites) // 2  # the comparison is not vacuous


def test_multi_site_patch_matches_nested_hooks(model: GenIRModel) -> None:
    """A copy patching several sites at once equals all the hooks at once (used by the minimal circuit search)."""
    enc = model.encode(QUERIES)
    runner = Runner(model)
    clean, _ = hook_capture(model, enc.hidden, enc.mask)
    repl = _replacement("mean", clean)
    group = [Site(0, "mlp"), Site(1, "cross_attn", 1), Site(2, "self_attn")]
    patched = run_patched(runner, runner.cross_kv(enc), [group, []], repl)
    ref = hook_patched(model, enc.hidden, enc.mask, {site: repl.site(site, model.cmap.d_head) for site in group})
    torch.testing.assert_close(patched[0], ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(patched[1], model.scores(enc), atol=1e-5, rtol=0)


def test_batched_sweep_independent_of_chunking(model: GenIRModel) -> None:
    """Query batch size and rows per forward change nothing in the measures."""
    enc = model.encode(QUERIES)
    runner = Runner(model)
    acts, logits = capture(runner, runner.cross_kv(enc))
    clean = CleanRun(acts, logits)
    relevant = torch.zeros(len(QUERIES), N_DOCS, dtype=torch.bool)
    relevant[torch.arange(len(QUERIES)), logits.argmax(-1)] = True  # every query correct in the clean run
    sites = model.cmap.sites(heads=True)
    source = PatchSource.of_mean(acts)
    a = evaluate_patches(runner, enc, relevant, [[s] for s in sites], source, clean, batch_size=len(QUERIES), max_rows=10_000)
    b = evaluate_patches(runner, enc, relevant, [[s] for s in sites], source, clean, batch_size=4, max_rows=9)
    assert a.n_forwards == 1 and b.n_forwards > a.n_forwards
    for x, y in zip(a.patched, b.patched):
        assert x.hits1 == pytest.approx(y.hits1) and x.lost_top1 == pytest.approx(y.lost_top1)
        assert x.logit_diff == pytest.approx(y.logit_diff, abs=1e-5)
    assert a.clean.hits1 == 1.0


def test_attribution_matches_exact_for_small_perturbations(model: GenIRModel) -> None:
    """Gradient check: for tiny patches the first-order estimate equals the exact change of the metric."""
    enc = model.encode(QUERIES)
    runner = Runner(model)
    kv = runner.cross_kv(enc)
    relevant = torch.zeros(len(QUERIES), N_DOCS, dtype=torch.bool)
    relevant[torch.arange(len(QUERIES)), torch.arange(len(QUERIES)) % N_DOCS] = True
    for metric in ("logprob", "logit_diff"):
        acts, grad, base = gradients(runner, kv, relevant, metric)
        gen = torch.Generator().manual_seed(0)
        eps = 1e-3
        repl = Activations(acts.out + eps * torch.randn(acts.out.shape, generator=gen), acts.head_in + eps * torch.randn(acts.head_in.shape, generator=gen))
        sites = model.cmap.sites(heads=True)
        patched = run_patched(runner, kv, [[s] for s in sites], repl)
        exact = (metric_value(patched, relevant, metric) - base).sum(-1)
        dh = model.cmap.d_head
        estimate = torch.stack([((repl.site(s, dh) - acts.site(s, dh)) * grad.site(s, dh)).sum() for s in sites])
        scale = exact.abs().max()
        assert scale > 0
        assert (exact - estimate).abs().max() <= 0.05 * scale, metric
        assert spearman(estimate.tolist(), exact.tolist()) > 0.95


def test_frozen_weights_still_get_gradients(model: GenIRModel) -> None:
    enc = model.encode(QUERIES[:2])
    runner = Runner(model)
    flags = [p.requires_grad for p in model.hf.parameters()]
    for p in model.hf.parameters():
        p.requires_grad_(False)
    try:
        relevant = torch.zeros(2, N_DOCS, dtype=torch.bool)
        relevant[:, 0] = True
        _, grad, _ = gradients(runner, runner.cross_kv(enc), relevant)
        assert grad.out.abs().sum() > 0
        assert all(not p.requires_grad for p in model.hf.parameters())
    finally:
        for p, f in zip(model.hf.parameters(), flags):
            p.requires_grad_(f)
