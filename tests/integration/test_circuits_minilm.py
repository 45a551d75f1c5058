"""Circuits on the real MiniLM BERT2BERT architecture (embedded weights, default corpus): parity and a small run.

Set GENEDIT_CIRCUIT_MODEL to the default model trained by `genedit demo` (deterministic, ~9 minutes) to also
localize it and check that the shipped circuit in circuits/default/ is exactly what localization regenerates.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from circuits.artifact import Circuit, shipped_circuit_path
from circuits.localize import LocalizeConfig, localize
from circuits.patching import PatchSource, capture, run_patched
from circuits.reference import hook_patched
from circuits.report import summary_markdown, write_report
from circuits.runner import Runner
from genedit.data import load_collection
from genedit.model.build import base_model
from genedit.model.components import Site
from genedit.model.genir import GenIRModel

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def minilm() -> GenIRModel:
    collection = load_collection("default")
    model = base_model("minilm")
    docs = collection.documents[:64]
    texts = [d.indexing_text() for d in docs]
    enc = model.encode(texts, max_length=64)
    pooled = (enc.hidden * enc.mask.unsqueeze(-1)).sum(1) / enc.mask.sum(1, keepdim=True)
    model.add_documents([d.id for d in docs], pooled / pooled.norm(dim=-1, keepdim=True))
    return model


def test_patching_parity_on_minilm(minilm: GenIRModel) -> None:
    """Batched nnsight patching with cached cross-attention K/V equals a torch hook on the full model."""
    texts = ["Serialize obj to a JSON formatted str.", "Return the current time.", "Open a file."]
    enc = minilm.encode(texts)
    runner = Runner(minilm)
    acts, logits = capture(runner, runner.cross_kv(enc))
    torch.testing.assert_close(logits, minilm.scores(enc), atol=1e-4, rtol=0)
    repl = PatchSource.rolled(len(texts)).replacement(acts, torch.arange(len(texts)))
    sites = [Site(0, "mlp"), Site(3, "cross_attn"), Site(5, "cross_attn", 7), Site(4, "self_attn", 11), Site(5, "mlp")]
    patched = run_patched(runner, runner.cross_kv(enc), [[s] for s in sites], repl)
    for i, site in enumerate(sites):
        ref = hook_patched(minilm, enc.hidden, enc.mask, {site: repl.site(site, minilm.cmap.d_head)})
        torch.testing.assert_close(patched[i], ref, atol=1e-4, rtol=0, msg=lambda m, s=site: f"{s}: {m}")


def test_localize_runs_on_minilm(minilm: GenIRModel, tmp_path: Path) -> None:
    collection = load_collection("default")
    config = LocalizeConfig(split="train", n_queries=16, lens_queries=4, batch_size=8, max_rows=256)
    # only queries whose document is indexed count: the first 64 documents
    circuit = localize(minilm, collection, config)
    assert circuit.settings.n_queries <= 16 and len(circuit.effects) == 6 * 3 + 6 * 2 * 12
    assert circuit.post_ln and "post-LN" in summary_markdown(circuit)
    assert len(write_report(circuit, tmp_path)) == 4


needs_trained = pytest.mark.skipif(not os.environ.get("GENEDIT_CIRCUIT_MODEL"), reason="set GENEDIT_CIRCUIT_MODEL to the model `genedit demo` trains")


@needs_trained
def test_shipped_circuit_is_what_localize_regenerates() -> None:
    model = GenIRModel.load(os.environ["GENEDIT_CIRCUIT_MODEL"])
    shipped = Circuit.load(shipped_circuit_path())
    assert model.fingerprint() == shipped.fingerprint, (
        f"model {model.fingerprint()} is not the default model {shipped.fingerprint} the shipped circuit was computed on: "
        "default training (`genedit demo --retrain`, no --minutes cap) did not reproduce it on this machine"
    )
    circuit = localize(model, load_collection("default"), LocalizeConfig.matching(shipped.settings))
    assert circuit.differences(shipped) == []
    assert circuit.minimal is not None and circuit.minimal.met
    assert circuit.stages.priming + circuit.stages.bridging + circuit.stages.interaction == list(range(model.cmap.n_layers))


def test_minilm_base_is_seeded() -> None:
    """The fresh decoder weights (cross-attention, prediction head) depend on the seed only: training can reproduce."""
    assert base_model("minilm").fingerprint() == base_model("minilm", seed=0).fingerprint() != base_model("minilm", seed=1).fingerprint()
