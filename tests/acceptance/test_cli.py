"""End to end through the CLI on tiny models and synthetic BEIR folders."""

import json

import pytest

from genedit.cli import main
from genedit.data import synthetic_collection, write_beir

pytestmark = pytest.mark.acceptance


@pytest.fixture(scope="module")
def beir_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "synth"
    write_beir(synthetic_collection(40, queries_per_doc=2, seed=1), path)
    return path


def test_train_then_eval_writes_measures(beir_dir, tmp_path, capsys):
    out = tmp_path / "model"
    assert main(["train", "--data", str(beir_dir), "--out", str(out), "--base", "tiny-t5", "--epochs", "3"]) == 0
    assert (out / "model.safetensors").exists() and (out / "docids.json").exists()
    js = tmp_path / "m.json"
    run = tmp_path / "run.trec"
    assert main(["eval", "--model", str(out), "--data", str(beir_dir), "--split", "test", "--json", str(js), "--run", str(run)]) == 0
    measures = json.loads(js.read_text())
    assert {"hits@1", "hits@5", "hits@10", "mrr@10"} <= set(measures)
    assert 0.0 <= measures["hits@1"] <= measures["hits@10"] <= 1.0
    assert len(run.read_text().splitlines()) > 0


def test_train_refuses_existing_output(beir_dir, tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "x").write_text("keep")
    assert main(["train", "--data", str(beir_dir), "--out", str(out), "--base", "tiny-t5", "--epochs", "1"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["x"]


def test_bad_data_exits_2_with_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "corpus.jsonl").write_text('{"_id": "d1", "text": "ok"}\n{not json\n')
    (bad / "queries.jsonl").write_text('{"_id": "q1", "text": "q"}\n')
    out = tmp_path / "never"
    assert main(["train", "--data", str(bad), "--out", str(out), "--base", "tiny-t5"]) == 2
    err = capsys.readouterr().err
    assert f"{bad / 'corpus.jsonl'}, line 2: invalid JSON" in err  # the reference itself: the tmp path holds digits too
    assert not out.exists()


def test_missing_model_dir_says_so_in_one_line(beir_dir, tmp_path, capsys):
    """Not the hub's repo-id rules: the folder does not exist (and a hub id would need the network)."""
    missing = tmp_path / "no" / "such" / "dir"
    assert main(["eval", "--model", str(missing), "--data", str(beir_dir)]) == 2
    err = capsys.readouterr().err
    assert err == f"genedit: error: {missing}: no such model folder\n"
    assert main(["localize", "--model", "no-such-org/no-such-model", "--data", str(beir_dir), "--out", str(tmp_path / "c.json")]) == 2
    err = capsys.readouterr().err  # tests run with HF_HUB_OFFLINE=1: the hub cannot be reached
    assert err.startswith("genedit: error: no-such-org/no-such-model: no such model folder") and "network" in err
    assert err.count("\n") == 1 and not (tmp_path / "c.json").exists()
    assert main(["train", "--data", str(beir_dir), "--out", str(tmp_path / "m"), "--base", str(missing)]) == 2
    assert capsys.readouterr().err == f"genedit: error: {missing}: no such model folder\n"


def test_tfidf_baseline(beir_dir, tmp_path, capsys):
    js = tmp_path / "b.json"
    assert main(["baseline", "tfidf", "--data", str(beir_dir), "--json", str(js)]) == 0
    assert json.loads(js.read_text())["hits@10"] > 0.5  # synthetic queries share key words with their document


def test_localize_compare_reports_identical_then_differences(beir_dir, tmp_path, capsys):
    model = tmp_path / "model"
    assert main(["train", "--data", str(beir_dir), "--out", str(model), "--base", "tiny-bart", "--epochs", "2"]) == 0
    first = tmp_path / "first.json"
    args = ["localize", "--model", str(model), "--data", str(beir_dir)]
    assert main([*args, "--queries", "16", "--out", str(first)]) == 0
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "again.json"), "--compare", str(first)]) == 0
    assert "identical to" in capsys.readouterr().out
    data = json.loads(first.read_text())
    data["effects"][0]["lost_top1"] += 0.25
    first.write_text(json.dumps(data))
    assert main([*args, "--out", str(tmp_path / "third.json"), "--compare", str(first)]) == 1
    assert "effects[0].lost_top1" in capsys.readouterr().err


def test_localize_with_a_bad_reference_fails_before_writing(beir_dir, tmp_path, capsys):
    model = tmp_path / "model"
    assert main(["train", "--data", str(beir_dir), "--out", str(model), "--base", "tiny-t5", "--epochs", "1"]) == 0
    out = tmp_path / "c.json"
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["localize", "--model", str(model), "--data", str(beir_dir), "--out", str(out), "--compare", str(bad)]) == 2
    assert "genedit: error" in capsys.readouterr().err and not out.exists()
    assert main(["localize", "--model", str(model), "--data", str(beir_dir), "--out", str(out), "--compare", str(tmp_path / "missing.json")]) == 2
    assert not out.exists()
    assert main(["localize", "--model", str(model), "--data", str(beir_dir), "--out", str(out), "--compare", str(bad), "--queries", "4"]) == 2
    assert "drop --queries" in capsys.readouterr().err and not out.exists()


def test_localize_refuses_to_write_over_the_circuit_it_compares_with(beir_dir, tmp_path, capsys, monkeypatch):
    """--out == --compare would replace the reference before the differences are reported: refused before any work."""
    reference = tmp_path / "ref.json"
    reference.write_text("the reference")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    for out in (str(reference), "ref.json", str(tmp_path / "sub" / ".." / "ref.json")):
        # the model does not exist: refusing first shows that nothing else ran
        assert main(["localize", "--model", str(tmp_path / "absent"), "--data", str(beir_dir), "--out", out, "--compare", str(reference)]) == 2
        err = capsys.readouterr().err
        assert "same file" in err and err.count("\n") == 1, err
    assert reference.read_text() == "the reference"


def test_epochs_must_be_positive(beir_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--data", str(beir_dir), "--out", str(tmp_path / "m"), "--epochs", "0"])
    assert exc.value.code == 2 and "positive integer" in capsys.readouterr().err


def test_overwrite_never_replaces_a_folder_that_is_not_a_model(beir_dir, tmp_path, capsys):
    """--overwrite replaces an earlier model, never a user's folder (the check runs before training)."""
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    assert main(["train", "--data", str(beir_dir), "--out", str(folder), "--base", "tiny-t5", "--epochs", "1", "--overwrite"]) == 2
    assert "not a genedit model directory" in capsys.readouterr().err
    assert main(["demo", "--model-dir", str(folder), "--no-localize"]) == 2
    assert [p.name for p in folder.iterdir()] == ["keep.txt"] and (folder / "keep.txt").read_text() == "mine"
    model = tmp_path / "model"
    assert main(["train", "--data", str(beir_dir), "--out", str(model), "--base", "tiny-t5", "--epochs", "1"]) == 0
    assert main(["train", "--data", str(beir_dir), "--out", str(model), "--base", "tiny-t5", "--epochs", "1", "--overwrite"]) == 0


def test_localize_refuses_an_unwritable_output_before_working(beir_dir, tmp_path, capsys):
    assert main(["localize", "--model", str(tmp_path / "absent"), "--data", str(beir_dir), "--out", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_output_files_are_checked_before_the_work(beir_dir, tmp_path, capsys):
    assert main(["baseline", "tfidf", "--data", str(beir_dir), "--json", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_a_failed_command_creates_no_output_folders(beir_dir, tmp_path, capsys):
    out = tmp_path / "new" / "deeper" / "c.json"
    assert main(["localize", "--model", str(tmp_path / "absent"), "--data", str(beir_dir), "--out", str(out)]) == 2
    assert not (tmp_path / "new").exists()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["baseline", "tfidf", "--data", str(beir_dir), "--json", str(blocker / "m.json")]) == 2
    assert "not a writable directory" in capsys.readouterr().err
