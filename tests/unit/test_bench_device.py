"""BenchConfig.device / dtype: every model the bench trains, loads, ranks and edits lives there (no default-device context)."""

from __future__ import annotations

import pytest
import torch

from benchmarks import harness
from benchmarks.harness import run_bench
from benchmarks.plan import BenchConfig, plan
from genedit.data import synthetic_collection, write_beir


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench-device") / "synth"
    write_beir(synthetic_collection(40, queries_per_doc=2, seed=1), path)
    return path


def _spy(monkeypatch) -> list[tuple[str, torch.device, torch.dtype]]:
    """Record the device and dtype of every model the bench ranks (base, oracle and each edited copy)."""
    seen: list[tuple[str, torch.device, torch.dtype]] = []
    rank = harness.Ranker.rank

    def spy(self, model, sets, desc):
        seen.append((desc, model.device, model.dtype))
        return rank(self, model, sets, desc)

    monkeypatch.setattr(harness.Ranker, "rank", spy)
    return seen


def _config(data, out, **kw) -> BenchConfig:
    return BenchConfig(data=str(data), out=out, protocols=["add"], methods=["row", "rank-one"], base="tiny-t5", epochs=1,
                       baselines=(), n_edits=4, every=2, **kw)


@pytest.mark.parametrize("dtype", [None, "bfloat16"])
def test_every_model_of_a_quick_bench_is_on_the_configured_device_and_dtype(data, tmp_path, monkeypatch, dtype):
    seen = _spy(monkeypatch)
    doc = run_bench(_config(data, tmp_path / "out", device="cpu", dtype=dtype), write=False)
    want = torch.bfloat16 if dtype else torch.float32
    descs = [d for d, _, _ in seen]
    assert "add: base" in descs and "add: oracle" in descs and "add: rank-one" in descs and "add: row" in descs
    assert all(dev == torch.device("cpu") and dt == want for _, dev, dt in seen), seen
    rows = {r["system"]: r for r in doc["protocols"]["add"]["rows"]}
    assert "error" not in rows["rank-one"] and "error" not in rows["row"]  # a bf16 edit is judged like any other
    assert rows["rank-one"]["edited"]["hits@10"] >= 0.0
    assert doc["config"]["device"] == "cpu" and doc["config"]["dtype"] == dtype


def test_cuda_without_it_and_an_unknown_dtype_are_refused_before_anything_is_written(data, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available"):
        plan(_config(data, tmp_path / "a", device="cuda"))
    with pytest.raises(ValueError, match="unknown dtype"):
        plan(_config(data, tmp_path / "b", dtype="float16"))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_no_default_device_context_is_left_in_the_bench():
    import inspect

    import benchmarks.oracle
    import genedit.cli.bench

    for module in (harness, benchmarks.oracle, genedit.cli.bench):
        source = inspect.getsource(module)
        assert "get_default_device" not in source and "with torch.device(" not in source
