"""`genedit check` end to end: passes against itself, fails with a diff when 5% of the rows are shuffled."""

from __future__ import annotations

import json

import pytest
import torch

from genedit.cli import main
from genedit.data import synthetic_collection, write_beir
from genedit.model.build import tiny_model
from genedit.train.trainer import TrainConfig, train


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("check")
    coll = synthetic_collection(40, queries_per_doc=3, seed=2)
    data = root / "data"
    write_beir(coll, data)
    model = tiny_model("t5", [])
    train(model, coll, TrainConfig(max_epochs=15, distill_epochs=1, batch_size=16, patience=50, lr_new=3e-3, lr_pretrained=3e-3, lr_rows=3e-3))
    good = root / "good"
    model.save(good)
    # shuffle 5% of the docid rows (2 of 40), among them every document the model ranks first for a test query
    run = model.rank([q for q, _ in coll.split("test")], k=1)
    right = sorted({run.ranking[q.id][0] for q, rel in coll.split("test") if run.ranking[q.id][0] in rel})
    assert right, "the tiny model should rank at least one test query right"
    n = max(2, round(0.05 * model.n_docs))
    chosen = (right + [d for d in model.docids if d not in right])[:max(n, len(right) + (len(right) < 2))]
    idx = model.docid_token_ids[[model.doc_index(d) for d in chosen]]
    weight = model.cmap.unembedding(model.hf).weight
    with torch.no_grad():
        weight[idx] = weight[idx.roll(1)].clone()  # a cycle: no row stays in place
    bad = root / "shuffled"
    model.save(bad)
    return root, data, good, bad


def test_check_passes_against_itself(setup, capsys):
    root, data, good, _ = setup
    assert main(["check", "--model", str(good), "--reference", str(good), "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("PASS") and "no query lost rank 1" in out


def test_check_fails_on_shuffled_rows_naming_queries_and_documents(setup, capsys):
    root, data, good, bad = setup
    js = root / "verdict.json"
    assert main(["check", "--model", str(bad), "--reference", str(good), "--data", str(data), "--json", str(js)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL") and "REGRESSION" in out and "lost rank 1" in out
    verdict = json.loads(js.read_text())
    assert verdict["passed"] is False and verdict["lost_top1"]
    lost = verdict["lost_top1"][0]
    assert f"{lost['query_id']} " in out and f"rank 1 was {lost['was']}, now {lost['now']}" in out
    assert lost["now"] != lost["was"]
    assert any(d["measure"] == "hits@1" and not d["ok"] for d in verdict["measures"])


def test_check_with_an_eval_json_and_a_trec_run_as_reference(setup, tmp_path, capsys):
    root, data, good, bad = setup
    ref_json, ref_run = tmp_path / "ref.json", tmp_path / "ref.trec"
    assert main(["eval", "--model", str(good), "--data", str(data), "--json", str(ref_json), "--run", str(ref_run)]) == 0
    capsys.readouterr()
    for ref in (ref_json, ref_run):
        assert main(["check", "--model", str(good), "--reference", str(ref), "--data", str(data)]) == 0
        assert capsys.readouterr().out.startswith("PASS")
        assert main(["check", "--model", str(bad), "--reference", str(ref), "--data", str(data)]) == 1
        out = capsys.readouterr().out
        assert "REGRESSION" in out and "rank 1 was" in out
    # an eval JSON without per-query rank 1 (older genedit) still gates on the measures
    stripped = tmp_path / "old.json"
    stripped.write_text(json.dumps({k: v for k, v in json.loads(ref_json.read_text()).items() if k != "top1"}))
    assert main(["check", "--model", str(bad), "--reference", str(stripped), "--data", str(data)]) == 1
    assert "only the measures are compared" in capsys.readouterr().out


def test_a_generous_allowed_drop_passes(setup, capsys):
    root, data, good, bad = setup
    drops = "hits@1=1,hits@5=1,hits@10=1,mrr@10=1"
    assert main(["check", "--model", str(bad), "--reference", str(good), "--data", str(data), "--max-drop", drops]) == 0
    assert "PASS" in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    (["--max-drop", "hits@1=-0.1"], ">= 0"),
    (["--max-drop", "bogus@1=0.1"], "unknown measure"),
    (["--max-drop", "hits@1"], "MEASURE=DROP"),
    (["--split", "dev"], "no 'dev' queries"),
])
def test_bad_input_exits_2(setup, tmp_path, capsys, extra, message):
    root, data, good, bad = setup
    js = tmp_path / "v.json"
    assert main(["check", "--model", str(bad), "--reference", str(good), "--data", str(data), "--json", str(js), *extra]) == 2
    assert message in capsys.readouterr().err and not js.exists()


def test_bad_references_exit_2(setup, tmp_path, capsys):
    root, data, good, bad = setup
    args = ["check", "--model", str(good), "--data", str(data), "--reference"]
    assert main([*args, str(tmp_path / "absent")]) == 2
    assert "does not exist" in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert main([*args, str(broken)]) == 2
    trec = tmp_path / "bad.trec"
    trec.write_text("q1 Q0 d1 1\n")
    assert main([*args, str(trec)]) == 2
    assert "6 columns" in capsys.readouterr().err
    other_split = tmp_path / "train.json"
    other_split.write_text(json.dumps({"split": "train", "n_queries": 3, "hits@1": 1.0}))
    assert main([*args, str(other_split)]) == 2
    assert "--split train" in capsys.readouterr().err
    folder = tmp_path / "notamodel"
    folder.mkdir()
    assert main([*args, str(folder)]) == 2
