"""bench_quality's option parsing and table, without training anything."""

from __future__ import annotations

import pytest

from benchmarks import bench_quality as bq


def test_parse_variant_types_values_like_the_trainconfig_field() -> None:
    assert bq.parse_variant("row_tokens=256, dev_fraction=0.2") == {"row_tokens": 256, "dev_fraction": 0.2}
    assert bq.parse_variant("minutes=3") == {"minutes": 3.0}
    assert bq.parse_variant("plain") == {"distinct_text": False, "row_tokens": 128, "distill_epochs": 3, "lr_decay": False, "patience": 4, "decoder_init": "random"}
    assert bq.parse_variant("distinct") == {}  # the default recipe's former name: the default itself
    assert bq.variant_label("plain") == "recipe plain" and bq.variant_label("row_tokens=64") == "row_tokens=64"
    assert bq.parse_variant("distinct_text=true") == {"distinct_text": True}
    for bad in ("row_tokens", "no_such_field=1", ","):
        with pytest.raises(ValueError):
            bq.parse_variant(bad)


def test_parse_args_rejects_unknown_corpora_and_baselines() -> None:
    args = bq.parse_args(["--corpora", "pysource", "--baselines", "none", "--variant", "row_tokens=256"])
    assert args.corpora == ["pysource"] and args.baselines == [] and args.overrides == [{"row_tokens": 256}]
    assert args.labels == ["row_tokens=256"]
    for argv in (["--corpora", "nope"], ["--baselines", "splade"], ["--variant", "decoder_init=teacher"]):
        with pytest.raises(SystemExit):
            bq.parse_args(argv)


def test_format_report_lists_every_system_and_genir_gaps() -> None:
    report = bq.QualityReport(command="x", seed=0, train_config={}, variants=[], environment={})
    report.corpora.append(bq.CorpusInfo("tiny", "", 10, 8, 2, 5.0, "h", 0.1))

    def m(h1: float, h10: float) -> dict[str, float]:
        return {"hits@1": h1, "hits@10": h10, "mrr@10": h1}

    report.results += [bq.SystemResult("tiny", bq.GENIR, m(0.5, 0.9), 12.0, 1.0),
                       bq.SystemResult("tiny", "dense MiniLM + faiss", m(0.6, 0.8), None, 2.0),
                       bq.SystemResult("tiny", "TF-IDF", m(0.4, 1.0), None, 0.0),
                       bq.SystemResult("tiny", f"{bq.GENIR} (lr_decay=True)", m(0.7, 1.0), 13.0, 1.0)]
    text = bq.format_report(report)
    assert "| tiny (10 / 8 / 2, 5) | GenIR | 0.500 | 0.900 | 0.500 | 12 | 1 |" in text
    assert "| TF-IDF | 0.400 | 1.000 | 0.400 | - | 0 |" in text
    assert "GenIR - dense MiniLM + faiss: Hits@1 -0.100, Hits@10 +0.100; GenIR - TF-IDF: Hits@1 +0.100, Hits@10 -0.100" in text
    assert "GenIR (lr_decay=True) - dense MiniLM + faiss: Hits@1 +0.100, Hits@10 +0.200; GenIR (lr_decay=True) - TF-IDF: Hits@1 +0.300, Hits@10 +0.000" in text


def test_train_trace_rejects_bad_input_before_training(tmp_path) -> None:
    from benchmarks import train_trace

    for argv in ([str(tmp_path / "missing")], ["default", "--set", "no_such_field=1"], ["default", "--set", "row_init=bogus"]):
        with pytest.raises(SystemExit) as exc:
            train_trace.main(argv)
        assert exc.value.code == 2
