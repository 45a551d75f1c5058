"""genedit add | delete | update | log | rollback end to end on a tiny saved model, including kill -9 during an add."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from folder_files import tiny_folder, tree

from genedit.cli import main
from genedit.model.genir import GenIRModel

pytestmark = pytest.mark.acceptance



@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("edit-cli")
    collection = tiny_folder(root)
    new = root / "new.jsonl"
    new.write_text("".join(json.dumps({"_id": d.id, "title": d.title, "text": d.text}) + "\n" for d in collection.documents[20:]))
    return root, collection


def _copy(setup, name: str) -> Path:
    root, _ = setup
    target = root / name
    shutil.copytree(root / "model", target)
    return target


def test_add_delete_update_log_and_rollback_in_place(setup, capsys):
    root, collection = setup
    model_dir = _copy(setup, "m1")
    base = GenIRModel.load(model_dir).fingerprint()
    data = str(root / "data")
    assert main(["add", "--model", str(model_dir), "--docs", str(root / "new.jsonl"), "--data", data]) == 0
    assert "add: 4 documents with rank-one" in capsys.readouterr().out
    assert (model_dir / "HEAD").is_file() and (model_dir / "circuit.json").is_file()  # the localized circuit is kept
    assert main(["eval", "--model", str(model_dir), "--data", data]) == 0  # an edited folder evaluates unchanged
    assert main(["delete", "--model", str(model_dir), "--ids", "d000", "d003", "--data", data, "--method", "mask"]) == 0
    upd = root / "upd.jsonl"
    upd.write_text(json.dumps({"_id": "d001", "title": "", "text": "entirely new words about zebras and lattices here."}) + "\n")
    assert main(["update", "--model", str(model_dir), "--docs", str(upd), "--data", data, "--method", "row"]) == 0
    model = GenIRModel.load(model_dir)
    assert model.n_docs == 22 and "d000" not in model.docids and [e.op for e in model.journal.entries] == ["add", "delete", "update"]
    capsys.readouterr()
    assert main(["log", "--model", str(model_dir)]) == 0
    out = capsys.readouterr().out
    assert "3 edits since base model " + base in out and "rank-one" in out and "mask" in out
    assert main(["rollback", "--model", str(model_dir), "--to", "1"]) == 0
    assert GenIRModel.load(model_dir).fingerprint() == model.journal.entries[0].fingerprint_after
    assert main(["rollback", "--model", str(model_dir), "--to", "0"]) == 0
    restored = GenIRModel.load(model_dir)
    assert restored.fingerprint() == base and restored.n_docs == 20


def test_add_to_a_new_folder_leaves_the_original_untouched(setup):
    root, _ = setup
    model_dir = _copy(setup, "m2")
    before = tree(model_dir)
    out = root / "m2-edited"
    assert main(["add", "--model", str(model_dir), "--docs", str(root / "new.jsonl"), "--data", str(root / "data"), "--method", "row", "--out", str(out)]) == 0
    assert tree(model_dir) == before
    assert GenIRModel.load(out).n_docs == 24 and len(GenIRModel.load(out).journal) == 1


@pytest.mark.parametrize(
    "lines, args, message",
    [
        (['{"_id": "d000", "title": "", "text": "already there"}'], [], "already indexed"),
        (['{"_id": "n1", "title": "", "text": "x"}', '{"_id": "n1", "title": "", "text": "y"}'], [], "line 2: duplicate document id"),
        (['{"_id": "n1", "title": "", "text": ""}'], [], "line 1: document 'n1' has empty text"),
        (['{"_id": "n1", "text": "fine"}', "{not json"], [], "line 2: invalid JSON"),
        (['{"_id": "n1", "title": "", "text": "fine"}'], ["--method", "mask"], "invalid choice"),
        (['{"_id": "n1", "title": "", "text": "fine"}'], ["--model", "/no/such/model"], "not a genedit model folder"),
    ],
)
def test_bad_add_input_exits_2_with_one_line_and_leaves_the_folder_byte_identical(setup, capsys, lines, args, message):
    root, _ = setup
    model_dir = root / "model"
    before = tree(model_dir)
    docs = root / "bad.jsonl"
    docs.write_text("\n".join(lines) + "\n")
    argv = ["add", "--model", str(model_dir), "--docs", str(docs), "--data", str(root / "data"), *args]
    with pytest.raises(SystemExit) if "--method" in args else _nothing():
        code = main(argv)
        assert code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert message in lines[-1] and sum("error" in line for line in lines) == 1  # argparse prints its usage above
    assert tree(model_dir) == before


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_bad_delete_and_rollback_input_exit_2(setup, capsys):
    root, _ = setup
    model_dir = root / "model"
    before = tree(model_dir)
    assert main(["delete", "--model", str(model_dir), "--ids", "nope", "--data", str(root / "data")]) == 2
    assert "not indexed" in capsys.readouterr().err
    assert main(["rollback", "--model", str(model_dir), "--to", "3"]) == 2
    assert "no journal entry 3" in capsys.readouterr().err
    assert tree(model_dir) == before


def test_a_circuit_of_another_model_beside_it_is_refused(setup, capsys):
    root, collection = setup
    model_dir = _copy(setup, "m3")
    shutil.copy(Path(__file__).resolve().parents[2] / "circuits" / "default" / "circuit.json", model_dir / "circuit.json")
    before = tree(model_dir)
    assert main(["add", "--model", str(model_dir), "--docs", str(root / "new.jsonl"), "--data", str(root / "data")]) == 2
    assert "this circuit was computed on model" in capsys.readouterr().err
    assert tree(model_dir) == before


def test_kill_9_during_add_leaves_a_loadable_model(setup):
    root, _ = setup
    reference = _copy(setup, "m-ref")
    base = GenIRModel.load(reference).fingerprint()
    cmd = [sys.executable, "-m", "genedit", "add", "--model", "MODEL", "--docs", str(root / "new.jsonl"), "--data", str(root / "data"), "--method", "row"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    t = time.monotonic()
    subprocess.run([c if c != "MODEL" else str(reference) for c in cmd], check=True, env=env, capture_output=True)
    duration = time.monotonic() - t
    after = GenIRModel.load(reference).fingerprint()
    seen = set()
    for i, frac in enumerate((0.6, 0.75, 0.85, 0.92, 0.97, 1.02)):
        folder = _copy(setup, f"m-kill{i}")
        proc = subprocess.Popen([c if c != "MODEL" else str(folder) for c in cmd], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(duration * frac)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        fingerprint = GenIRModel.load(folder).fingerprint()  # loadable whatever the moment of the kill
        assert fingerprint in (base, after)
        seen.add(fingerprint)
    assert base in seen  # at least one kill landed before the commit point


def test_inputs_may_be_pipes_or_standard_input(setup):
    """`--docs <(...)` (a pipe) and `-` (standard input) are read like files, as Unix tools read them."""
    root, _ = setup
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    added = root / "piped"
    script = f'{sys.executable} -m genedit add --model {root / "model"} --out {added} --data {root / "data"} --method row --docs <(cat {root / "new.jsonl"})'
    proc = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert GenIRModel.load(added).n_docs == 24
    cmd = [sys.executable, "-m", "genedit", "delete", "--model", str(added), "--ids-file", "-", "--method", "mask"]
    proc = subprocess.run(cmd, env=env, input="d020\nd021\n", capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert GenIRModel.load(added).n_docs == 22 and "d020" not in GenIRModel.load(added).docids
