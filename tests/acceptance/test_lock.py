"""Issue 19: two `genedit add` processes on one model folder never lose an acknowledged edit, whatever the timing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from folder_files import tiny_folder, tree

from genedit.cli import main
from genedit.model.genir import GenIRModel
from genedit.model.storage import LOCK_FILE, FolderLock

pytestmark = pytest.mark.acceptance
REPO = Path(__file__).resolve().parents[2]
NEW = ("d020", "d021")  # one new document per writer


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("lock")
    collection = tiny_folder(root)
    for doc in collection.documents[20:22]:
        (root / f"{doc.id}.jsonl").write_text(json.dumps({"_id": doc.id, "title": doc.title, "text": doc.text}) + "\n")
    return root


def _copy(root: Path, name: str) -> Path:
    target = root / name
    shutil.copytree(root / "model", target)
    return target


def _add(root: Path, folder: Path, doc: str, *extra: str) -> list[str]:
    return ["add", "--model", str(folder), "--docs", str(root / f"{doc}.jsonl"), "--data", str(root / "data"), "--method", "row", *extra]


def _race(root: Path, folder: Path, delay: float, wait: str) -> list[tuple[int, str]]:
    """Start two writers `delay` seconds apart, each adding one document; (exit code, stderr) of each."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    procs = []
    for i, doc in enumerate(NEW):
        if i:
            time.sleep(delay)
        procs.append(subprocess.Popen([sys.executable, "-m", "genedit", *_add(root, folder, doc, "--wait", wait)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return [(p.returncode, err) for p in procs for _, err in [p.communicate(timeout=120)]]


@pytest.mark.parametrize("delay", [0, 0.3, 1, 2])
def test_two_waiting_writers_both_land(setup, delay):
    folder = _copy(setup, f"wait-{delay}")
    results = _race(setup, folder, delay, "30")
    assert [code for code, _ in results] == [0, 0], results
    model = GenIRModel.load(folder)
    assert set(NEW) <= set(model.docids) and model.n_docs == 22
    assert sorted(d for e in model.journal.entries for d in e.doc_ids) == sorted(NEW)


@pytest.mark.parametrize("delay", [0, 0.3, 1])
def test_a_refused_writer_exits_4_and_no_acknowledged_edit_is_lost(setup, delay):
    folder = _copy(setup, f"nowait-{delay}")
    results = _race(setup, folder, delay, "0")
    model = GenIRModel.load(folder)
    acknowledged = [doc for doc, (code, _) in zip(NEW, results) if code == 0]
    assert acknowledged, results
    for code, err in results:
        assert code in (0, 4), results
        if code == 4:
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("genedit: conflict: ") and str(folder / LOCK_FILE) in lines[0] and " pid " in lines[0]
    assert [d for d in NEW if d in model.docids] == acknowledged  # every exit 0 is in the model, nothing else
    assert sorted(d for e in model.journal.entries for d in e.doc_ids) == acknowledged



def test_a_held_folder_refuses_every_writer_with_exit_4_and_one_line(setup, capsys):
    folder = _copy(setup, "held")
    with FolderLock(folder):
        before = tree(folder, lock=True)
        commands = [_add(setup, folder, "d020"), ["delete", "--model", str(folder), "--ids", "d000", "--data", str(setup / "data")],
                    ["rollback", "--model", str(folder), "--to", "0"]]
        for argv in commands:
            assert main(argv) == 4, argv
            lines = capsys.readouterr().err.strip().splitlines()
            assert len(lines) == 1, lines
            assert lines[0].startswith(f"genedit: conflict: {folder / LOCK_FILE} is held by pid {os.getpid()} (")
            assert "since 20" in lines[0] and "--wait" in lines[0]
        assert tree(folder, lock=True) == before  # nothing written, not even the lock file's holder record
    assert main(_add(setup, folder, "d020", "--out", str(setup / "held-copy"))) == 0  # a new folder needs no lock


def test_a_waiting_writer_proceeds_when_the_holder_is_done(setup, capsys):
    folder = _copy(setup, "waits")
    holder = FolderLock(folder).acquire()
    timer = threading.Timer(1.0, holder.release)
    timer.start()
    t = time.monotonic()
    assert main(_add(setup, folder, "d021", "--wait", "20")) == 0
    timer.join()
    assert time.monotonic() - t >= 1.0 and "saved to" in capsys.readouterr().out
    assert "d021" in GenIRModel.load(folder).docids
