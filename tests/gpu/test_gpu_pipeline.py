"""The whole pipeline on CUDA (issue 21): train, every edit method, undo and rollback bit-exact, localize, the CLI, bench.

Skipped with a reason where CUDA is absent (CI runs on CPUs); `python -m pytest -m gpu` on a GPU machine proves the
GPU path (benchmarks/gpu_check.sh runs it there).
"""

from __future__ import annotations

import json

import pytest
import torch

from genedit.data import synthetic_collection
from genedit.data.beir import write_beir
from genedit.data.types import Document
from genedit.edit import Editor, methods_for
from genedit.model.build import TINY_ARCHS, base_model
from genedit.model.genir import GenIRModel
from genedit.train.trainer import TrainConfig, train

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: proves the GPU path where a GPU is present")]
CUDA = torch.device("cuda", 0)


@pytest.fixture(scope="module")
def corpus():
    """24 documents with 2 queries each."""
    return synthetic_collection(24, queries_per_doc=2, seed=3)


def _trained(base: str, corpus, n: int = 20) -> GenIRModel:
    """A base trained for two epochs on CUDA over the first n documents."""
    model = base_model(base, device="cuda")
    assert model.device.type == "cuda"
    sub = type(corpus)(corpus.name, corpus.documents[:n], corpus.queries, {k: v for k, v in corpus.qrels.items()})
    result = train(model, sub, TrainConfig(max_epochs=2, distill_epochs=1))
    assert len(result.history) == 2 and model.device.type == "cuda"
    return model


@pytest.mark.parametrize("base", [f"tiny-{a}" for a in TINY_ARCHS] + ["minilm"])
def test_train_edit_undo_rollback_localize_on_cuda(base, corpus):
    from circuits import LocalizeConfig, localize
    from genedit.edit import rollback_model

    model = _trained(base, corpus)
    start = model.fingerprint()
    ed = Editor(model, corpus=corpus, targets=[f"L{model.cmap.n_layers - 1}.mlp", f"L{model.cmap.n_layers - 1}.cross_attn"])
    for method in methods_for("add"):
        ed.add(corpus.documents[20:22], method=method)
        assert model.device.type == "cuda"
        ed.undo()
        assert model.fingerprint() == start, method
    for method in methods_for("delete"):
        ed.delete(["d001"], method=method)
        ed.undo()
        assert model.fingerprint() == start, method
    for method in methods_for("update"):
        ed.update([Document("d002", "new title", "an entirely new text about sailing boats. it has two sentences.")], method=method)
        ed.undo()
        assert model.fingerprint() == start, method
    ed.add(corpus.documents[20:21], method="rank-one")
    ed.delete(["d003"], method="rank-one")
    rollback_model(model, 0)
    assert model.fingerprint() == start
    circuit = localize(model, corpus, LocalizeConfig(split="train", n_queries=16, lens_queries=4))
    assert circuit.effects


def test_row_solve_add_on_cuda(corpus):
    """The crash that opened issue 21: `expected self and mask to be on the same device`."""
    model = _trained("tiny-t5", corpus)
    Editor(model, corpus=corpus).add(corpus.documents[20:22], method="row-solve")
    assert model.docids[-2:] == ["d020", "d021"]


def test_bfloat16_edits_on_cuda(corpus, tmp_path):
    _trained("tiny-t5", corpus).save(tmp_path / "m")
    model = GenIRModel.load(tmp_path / "m", device="cuda", dtype="bfloat16")
    assert model.dtype is torch.bfloat16 and model.device.type == "cuda"
    start = model.fingerprint()
    ed = Editor(model, corpus=corpus, targets=["L1.mlp"])
    ed.add(corpus.documents[20:22], method="rank-one")
    ed.undo()
    assert model.fingerprint() == start


def test_cli_train_eval_check_bench_on_cuda(corpus, tmp_path):
    from genedit.cli import main

    data = tmp_path / "data"
    write_beir(corpus, data)
    torch.cuda.reset_peak_memory_stats(CUDA)
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "m"), "--base", "tiny-t5", "--epochs", "2", "--device", "cuda"]) == 0
    assert torch.cuda.max_memory_allocated(CUDA) > 0  # trained on the GPU, not the CPU
    assert main(["eval", "--model", str(tmp_path / "m"), "--data", str(data), "--device", "cuda", "--json", str(tmp_path / "e.json")]) == 0
    assert main(["check", "--model", str(tmp_path / "m"), "--reference", str(tmp_path / "e.json"), "--data", str(data), "--device", "cuda"]) == 0
    assert main(["localize", "--model", str(tmp_path / "m"), "--data", str(data), "--out", str(tmp_path / "c.json"), "--queries", "16", "--device", "cuda"]) == 0
    assert main(["delete", "--model", str(tmp_path / "m"), "--ids", "d001", "--device", "cuda"]) == 0
    assert main(["rollback", "--model", str(tmp_path / "m"), "--to", "0", "--device", "cuda"]) == 0
    out = tmp_path / "bench"
    assert main(["bench", "--data", str(data), "--protocol", "add", "--out", str(out), "--base", "tiny-t5", "--quick", "--baselines", "tfidf", "--device", "cuda"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert not [r for s in results["protocols"].values() for r in s["rows"] if "error" in r]


def test_bench_scale_tiny_on_cuda(capsys):
    from benchmarks.bench_scale import main

    assert main(["--shape", "tiny", "--docs", "200", "--device", "cuda", "--queries", "16", "--edit-docs", "5", "--epoch-docs", "100"]) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert result["device"].startswith("cuda") and result["peak_gb_max"] > 0
