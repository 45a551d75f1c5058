"""The model folder's writer lock, the stale-version check and pruning (genedit.model.storage)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from genedit.model.build import TinySpec, tiny_model
from genedit.model.genir import GenIRModel
from genedit.model.storage import HEAD_FILE, LOCK_FILE, FolderLock, FolderLocked, StaleVersion, WriteConflict, head_version, read_holder, write_version

REPO = Path(__file__).resolve().parents[2]


def _versions(folder: Path) -> list[str]:
    return sorted(p.name for p in (folder / "versions").iterdir())


def test_a_second_writer_is_refused_with_the_holder_named_and_nothing_written(tmp_path):
    with FolderLock(tmp_path) as first:
        assert first.held
        record = (tmp_path / LOCK_FILE).read_text()
        with pytest.raises(FolderLocked) as info:
            FolderLock(tmp_path).acquire()
        assert (tmp_path / LOCK_FILE).read_text() == record  # the refused writer wrote nothing
    exc = info.value
    assert isinstance(exc, WriteConflict)
    assert exc.holder is not None and exc.holder.pid == os.getpid() and exc.holder.since[:4].isdigit()
    assert "pytest" in exc.holder.command or "python" in exc.holder.command
    message = str(exc)
    assert "\n" not in message and str(tmp_path / LOCK_FILE) in message and f"pid {os.getpid()}" in message and exc.holder.since in message
    assert not first.held and read_holder(tmp_path / LOCK_FILE) is None  # released: the record is cleared
    with FolderLock(tmp_path):  # and the lock can be taken again
        pass
    assert (tmp_path / LOCK_FILE).exists()  # never deleted (deleting a flock file races with its next taker)


def test_a_waiting_writer_gets_the_lock_when_the_holder_releases_it(tmp_path):
    first = FolderLock(tmp_path).acquire()
    timer = threading.Timer(0.4, first.release)
    timer.start()
    t = time.monotonic()
    with FolderLock(tmp_path, wait=10) as second:
        waited = time.monotonic() - t
        assert second.held and not first.held
    timer.join()
    assert 0.3 < waited < 5


def test_waiting_is_bounded(tmp_path):
    with FolderLock(tmp_path):
        t = time.monotonic()
        with pytest.raises(FolderLocked, match="after waiting 0.3s"):
            FolderLock(tmp_path, wait=0.3).acquire()
        assert 0.25 < time.monotonic() - t < 3


def test_a_lock_holder_killed_with_sigkill_frees_the_lock(tmp_path):
    code = "import sys, time\nfrom genedit.model.storage import FolderLock\nlock = FolderLock(sys.argv[1]).acquire()\nprint('locked', flush=True)\ntime.sleep(120)\n"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        with pytest.raises(FolderLocked) as info:
            FolderLock(tmp_path).acquire()
        assert info.value.holder is not None and info.value.holder.pid == proc.pid
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    with FolderLock(tmp_path) as lock:  # wait 0: the kernel dropped the dead holder's lock
        assert lock.held and read_holder(tmp_path / LOCK_FILE).pid == os.getpid()


def test_lock_misuse_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such model folder"):
        FolderLock(tmp_path / "absent").acquire()
    assert not (tmp_path / "absent").exists()
    with pytest.raises(ValueError):
        FolderLock(tmp_path, wait=-1)
    with pytest.raises(RuntimeError, match="needs its FolderLock"):
        write_version(tmp_path, lambda folder: None, set, lock=FolderLock(tmp_path))


def _version_files(folder: Path, name: str, journal: list[str] | None = None) -> None:
    (folder / "versions" / name).mkdir(parents=True)
    (folder / "versions" / name / "weights").write_text(name)
    if journal is not None:
        (folder / "versions" / name / "journal.json").write_text(json.dumps({"entries": [{"file": f} for f in journal]}))


def test_prune_keeps_the_current_and_the_previous_version(tmp_path):
    for name in ("v0001", "v0002", "v0003"):
        _version_files(tmp_path, name, journal=[f"{name}.safetensors"])
    (tmp_path / "versions" / ".v0004.dead").mkdir()  # a killed writer's leftover
    (tmp_path / "journal").mkdir()
    for name in ("v0001", "v0002", "v0003", "v0004"):
        (tmp_path / "journal" / f"{name}.safetensors").write_text("t")
    (tmp_path / HEAD_FILE).write_text("versions/v0003\n")

    def write(folder: Path) -> None:
        (folder / "weights").write_text("new")

    with FolderLock(tmp_path) as lock:
        assert write_version(tmp_path, write, lambda: {"v0004.safetensors"}, lock=lock, base="versions/v0003") == "versions/v0004"
    assert head_version(tmp_path) == "versions/v0004"
    assert _versions(tmp_path) == ["v0003", "v0004"]  # v0003 stays: a reader may be loading it
    assert sorted(p.name for p in (tmp_path / "journal").iterdir()) == ["v0003.safetensors", "v0004.safetensors"]
    assert (tmp_path / "versions" / "v0004" / "weights").read_text() == "new"


def test_a_stale_base_is_refused_before_anything_is_written(tmp_path):
    _version_files(tmp_path, "v0001")
    _version_files(tmp_path, "v0002")
    (tmp_path / HEAD_FILE).write_text("versions/v0002\n")
    with FolderLock(tmp_path) as lock, pytest.raises(StaleVersion, match="versions/v0002.*loaded from versions/v0001"):
        write_version(tmp_path, lambda folder: None, set, lock=lock, base="versions/v0001")
    assert _versions(tmp_path) == ["v0001", "v0002"] and head_version(tmp_path) == "versions/v0002"


@pytest.fixture()
def folder(tmp_path) -> Path:
    model = tiny_model("t5", ["a", "b", "c"], TinySpec(n_layers=1))
    return model.save(tmp_path / "m")


def test_saving_a_model_loaded_before_another_writer_saved_raises_stale_version(folder):
    first, second = GenIRModel.load(folder), GenIRModel.load(folder)
    assert first.version == second.version == ""  # a folder without versions yet
    first.remove_documents(["a"])
    first.save(folder)
    assert first.version == "versions/v0001" == head_version(folder)
    second.remove_documents(["b"])
    with pytest.raises(StaleVersion, match="loaded from its first version"):
        second.save(folder)  # would drop the first writer's delete
    assert head_version(folder) == "versions/v0001" and GenIRModel.load(folder).docids == ["b", "c"]
    first.remove_documents(["b"])
    first.save(folder)  # the up-to-date object saves again
    assert first.version == "versions/v0002" and GenIRModel.load(folder).docids == ["c"]
    assert GenIRModel.load(folder).version == "versions/v0002"


def test_save_holds_the_folder_lock(folder):
    model = GenIRModel.load(folder)
    model.remove_documents(["a"])
    with FolderLock(folder):
        with pytest.raises(FolderLocked):
            model.save(folder)  # another writer holds the folder
        assert head_version(folder) == "" and not (folder / "versions").exists()
    with FolderLock(folder) as lock:  # the documented way: hold it across load, edit and save
        model = GenIRModel.load(folder)
        model.remove_documents(["a"])
        model.save(folder, lock=lock)
    assert GenIRModel.load(folder).docids == ["b", "c"]
    with pytest.raises(ValueError, match="not a held lock"):
        model.save(folder, lock=FolderLock(folder))


def test_an_adopted_lock_is_the_holders_lock_and_releasing_it_keeps_the_holder(tmp_path):
    """A serve edit worker writes under the server's lock through an inherited descriptor: the same flock."""
    folder = tmp_path / "m"
    folder.mkdir()
    holder = FolderLock(folder).acquire()
    shared = FolderLock.adopt(folder, os.dup(holder.fileno()))
    assert shared.covers(folder)
    with pytest.raises(FolderLocked):
        FolderLock(folder).acquire()  # a third party is still refused
    shared.release()
    assert read_holder(folder / LOCK_FILE).pid == os.getpid()  # the record of the real holder stays
    with pytest.raises(FolderLocked):
        FolderLock(folder).acquire()
    other = os.open(folder / LOCK_FILE, os.O_RDWR)
    with pytest.raises(OSError):
        FolderLock.adopt(folder, other)  # another open file of the lock is not the holder's
    os.close(other)
    holder.release()
    FolderLock(folder).acquire().release()
