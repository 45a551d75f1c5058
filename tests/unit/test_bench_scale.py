"""bench_scale's code path on the CPU in seconds (the GPU figures come from the same code with --shape t5-large)."""

from __future__ import annotations

import json

from benchmarks.bench_scale import main


def test_tiny_shape_prints_one_json_line_per_size(capsys):
    argv = ["--shape", "tiny", "--docs", "40,60", "--device", "cpu", "--queries", "8", "--rank-queries", "50", "--edit-docs", "3", "--epoch-docs", "30", "--batch-size", "32"]
    assert main(argv) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["docs"] for r in lines] == [40, 60]
    for r in lines:
        assert r["device"] == "cpu" and r["rank_qps"] > 0 and r["sweep_seconds"] > 0 and r["sweep_rows"] == 512
        assert r["sweep_sites"] == 2 * 3 + 2 * 2 * 4  # tiny: 2 layers x 3 components + 2 layers x 2 attentions x 4 heads
        assert r["edit_docs"] == 3 and r["edit_ms_per_doc"] > 0 and 0 < r["preserved_texts"] <= 3 * r["docs"] and r["preserved_cap"] == 20000
        assert set(r["grows_with_corpus"]) >= {"prepare_seconds", "edit_ms_per_doc", "rank_qps"}
        assert r["epoch_docs"] == 30 and r["epoch_examples"] > 0 and r["epoch_seconds"] > 0  # measured once, reported for both
        assert set(r["peak_gb"]) == {"epoch", "build", "rank", "sweep", "edit"}


def test_asking_for_cuda_without_it_is_refused(capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["--shape", "tiny", "--docs", "10", "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
