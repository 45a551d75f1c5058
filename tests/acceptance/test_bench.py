"""`genedit bench` end to end on a tiny model: every protocol, outputs, model reuse, bad input (exit 2, nothing written)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from genedit.cli import main
from genedit.data import synthetic_collection, write_beir
from genedit.edit import methods_for


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "synth"
    write_beir(synthetic_collection(60, queries_per_doc=2, seed=1), path)
    return path


def _snapshot(folder: Path) -> dict[str, str]:
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir" for p in sorted(folder.rglob("*"))}


def test_quick_bench_runs_every_protocol_and_reuses_its_models(data, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["bench", "--data", str(data), "--protocol", "all", "--base", "tiny-t5", "--quick", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    for protocol in ("add", "delete", "update", "sequential"):
        assert f"\n{protocol} (" in printed
    doc = json.loads((out / "results.json").read_text())
    assert doc["schema"] == "genedit-bench/1" and doc["versions"]["genedit"] and doc["seeds"] == {"split": 0, "train": 0}
    assert set(doc["protocols"]) == {"add", "delete", "update", "sequential"}
    for protocol, section in doc["protocols"].items():
        kinds = [r["kind"] for r in section["rows"]]
        assert kinds[:2] == ["base", "oracle"] and kinds.count("baseline") == 2
        assert not [r for r in section["rows"] if "error" in r], section["rows"]
        edits = [r for r in section["rows"] if r["kind"] == "edit"]
        # every registered method of the protocol's op ran (a stream: row and the default add method)
        expected = {"row", methods_for("add")[0]} if protocol == "sequential" else set(methods_for(protocol))
        assert {r["system"] for r in edits} == expected
        for row in edits:
            assert {"retained", "lost_top1", "ms_per_doc", "peak_mb", "changed_params", "retrain_ratio"} <= set(row)
            if protocol != "delete":
                assert {"edited", "efficacy"} <= set(row)
                h = row["edited"]
                assert set(h) == {"hits@1", "hits@5", "hits@10", "mrr@10"} and 0 <= h["hits@1"] <= h["hits@5"] <= h["hits@10"] <= 1
            else:
                assert row["deleted_returned"] == 0 and {"oracle_agreement", "oracle_agreement_old", "resurrection"} <= set(row)
        if protocol == "delete":
            base_row = section["rows"][0]
            assert base_row["deleted_returned"] > 0 and base_row["resurrection"] is not None  # before the delete
        for name in (section["base_model"], section["oracle_model"]):
            assert (out / "models" / name / "genedit.json").exists()
    seq = doc["protocols"]["sequential"]
    curve = next(iter(seq["curves"].values()))
    assert [ck["edits"] for ck in curve] == [0, 10, 20]
    assert all(len(ck["tasks"]) == i + 1 for i, ck in enumerate(curve))
    assert {"ap", "forgetting", "la"} <= set(next(r for r in seq["rows"] if r["kind"] == "edit"))
    md = (out / "results.md").read_text()
    assert "## add" in md and "## sequential" in md and "| system |" in md
    assert {"add.png", "delete.png", "update.png", "sequential.png", "sequential-curves.png"} <= {p.name for p in out.iterdir()}
    assert not any(m["reused"] for m in doc["models"].values())
    # a second run into the same folder reuses every model and gives the same measures
    assert main([*args[:4], "add", *args[5:]]) == 0
    again = json.loads((out / "results.json").read_text())
    assert all(m["reused"] for m in again["models"].values())
    first_rows = {r["system"]: r.get("edited") for r in doc["protocols"]["add"]["rows"]}
    assert {r["system"]: r.get("edited") for r in again["protocols"]["add"]["rows"]} == first_rows


def test_a_failing_method_is_written_named_and_exits_1(data, tmp_path, capsys, monkeypatch):
    import benchmarks.harness

    real = benchmarks.harness.edit

    def edit(base_model, method, *args, **kwargs):
        if method == "mask":
            raise RuntimeError("boom")
        return real(base_model, method, *args, **kwargs)

    monkeypatch.setattr(benchmarks.harness, "edit", edit)
    out = tmp_path / "out"
    args = ["bench", "--data", str(data), "--protocol", "delete", "--methods", "mask", "--base", "tiny-t5", "--quick", "--baselines", "",
            "--out", str(out)]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "1 systems failed" in err and "delete/mask: RuntimeError: boom" in err
    rows = {r["system"]: r for r in json.loads((out / "results.json").read_text())["protocols"]["delete"]["rows"]}
    assert rows["mask"]["error"] == "RuntimeError: boom" and "error" not in rows["oracle (retrain)"]
    assert "mask failed: RuntimeError: boom" in (out / "results.md").read_text()


@pytest.mark.parametrize("extra, message", [
    (["--protocol", "rename"], "unknown protocol"),
    (["--protocol", "add", "--methods", "row,telepathy"], "unknown method telepathy"),
    (["--protocol", "add", "--baselines", "splade"], "unknown baseline"),
    (["--protocol", "add", "--methods", "rank-one@elbow"], "unknown editing-target selection 'elbow'"),
])
def test_bad_input_exits_2_and_writes_nothing(data, tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    assert main(["bench", "--data", str(data), "--base", "tiny-t5", "--quick", "--out", str(out), *extra]) == 2
    assert message in capsys.readouterr().err and not out.exists()


def test_a_method_runs_on_each_target_selection_it_is_given(data, tmp_path):
    out = tmp_path / "out"
    args = ["bench", "--data", str(data), "--protocol", "add", "--base", "tiny-t5", "--quick", "--baselines", "",
            "--methods", "rank-one@mlp,rank-one@cross_attn", "--out", str(out)]
    assert main(args) == 0
    rows = {r["system"]: r for r in json.loads((out / "results.json").read_text())["protocols"]["add"]["rows"]}
    assert {"row", "rank-one@mlp", "rank-one@cross_attn"} <= set(rows)
    mlp, xattn = rows["rank-one@mlp"], rows["rank-one@cross_attn"]
    assert mlp["method"] == xattn["method"] == "rank-one" and (mlp["targets"], xattn["targets"]) == ("mlp", "cross_attn")
    assert mlp["sites"] and all(s.endswith(".mlp") for s in mlp["sites"])
    assert xattn["sites"] and all(s.endswith(".cross_attn") for s in xattn["sites"])
    assert rows["row"]["sites"] == []


@pytest.mark.parametrize("fraction", ["0", "0.7", "-1"])
def test_a_fraction_outside_the_range_exits_2(data, tmp_path, capsys, fraction):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--data", str(data), "--protocol", "add", "--fraction", fraction, "--out", str(out)])
    assert exc.value.code == 2 and "(0, 0.5]" in capsys.readouterr().err and not out.exists()


def test_data_without_test_queries_exits_2(tmp_path, capsys):
    from genedit.data.types import Collection

    coll = synthetic_collection(20, seed=1)
    path = tmp_path / "notest"
    write_beir(Collection(coll.name, coll.documents, coll.queries, {"train": coll.qrels["train"]}), path)
    out = tmp_path / "out"
    assert main(["bench", "--data", str(path), "--protocol", "add", "--base", "tiny-t5", "--quick", "--out", str(out)]) == 2
    assert "no test queries" in capsys.readouterr().err and not out.exists()


def test_an_output_folder_that_holds_something_else_is_refused_untouched(data, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    (out / "models").mkdir()
    before = _snapshot(out)
    assert main(["bench", "--data", str(data), "--protocol", "add", "--base", "tiny-t5", "--quick", "--out", str(out)]) == 2
    assert "not a genedit bench output" in capsys.readouterr().err
    assert _snapshot(out) == before
    fake = tmp_path / "other"
    fake.mkdir()
    (fake / "results.json").write_text(json.dumps({"schema": "something-else"}))
    before = _snapshot(fake)
    assert main(["bench", "--data", str(data), "--protocol", "add", "--base", "tiny-t5", "--quick", "--out", str(fake)]) == 2
    assert _snapshot(fake) == before
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["bench", "--data", str(data), "--protocol", "add", "--base", "tiny-t5", "--quick", "--out", str(afile)]) == 2
    assert afile.read_text() == "x"
