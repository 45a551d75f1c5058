"""How a model folder is stored: versions under `versions/`, the current one named by `HEAD`, crash-safe saves.

A folder `genedit train` wrote holds one model's files. Saving into it again (an edit in place) writes a new
version `versions/vNNNN` beside the current one, flushes it to disk, and makes it current by one atomic rename of
the `HEAD` pointer file: a crash at any moment leaves the previous version or the new one loadable. Readers
follow `HEAD`; they never need to write anything.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from genedit.model.journal import JOURNAL_DIR

log = logging.getLogger(__name__)

META_FILE = "genedit.json"
DOCIDS_FILE = "docids.json"
HEAD_FILE = "HEAD"  # in a folder edited in place: the relative path of the current version
VERSIONS_DIR = "versions"


def default_model_dir() -> Path:
    """Where `genedit demo` caches its trained default model (GENEDIT_CACHE overrides)."""
    root = Path(os.environ.get("GENEDIT_CACHE", Path.home() / ".cache" / "genedit"))
    return root / "default-model"


def current_version(path: str | Path) -> Path:
    """The folder holding a model's current files: the version HEAD names, or the folder itself."""
    path = Path(path)
    head = path / HEAD_FILE
    if not head.is_file():
        return path
    target = path / head.read_text().strip()
    if not target.is_dir() or target.resolve().parent != (path / VERSIONS_DIR).resolve():
        raise FileNotFoundError(f"{head} names {target}, which is not a model version of {path}")
    return target


def is_model_dir(path: str | Path) -> bool:
    """Whether `path` holds a model genedit saved (its metadata and docids files next to the weights)."""
    path = Path(path)
    try:
        path = current_version(path)
    except FileNotFoundError:
        return False
    return (path / META_FILE).is_file() and (path / DOCIDS_FILE).is_file() and (path / "config.json").is_file()


def check_writable_model_dir(path: str | Path, *, overwrite: bool = False) -> None:
    """Raise FileExistsError unless a model may be saved to `path`: absent, empty, or (with overwrite) a genedit model.

    Overwriting replaces the whole directory, so it is refused for anything but a model genedit saved there.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{path} exists and is not a directory")
    if not path.exists() or not any(path.iterdir()):
        return
    if not overwrite:
        raise FileExistsError(f"{path} exists and is not empty; choose another directory or pass overwrite")
    if not is_model_dir(path):
        raise FileExistsError(f"{path} is not empty and is not a genedit model directory; refusing to replace it")


def write_new_folder(path: Path, write: Callable[[Path], None]) -> Path:
    """Write a model into a fresh (absent or empty) folder: into a temporary sibling first, then one rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        write(tmp)
        if path.exists():
            path.rmdir()  # empty (checked by the caller)
        tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def write_version(root: Path, write: Callable[[Path], None], journal_files: Callable[[], set[str]]) -> str:
    """A new version inside an existing model folder, made current by renaming the HEAD file; old ones pruned.

    `write(folder)` writes every file of the version; `journal_files()` names the journal tensors still in use.
    Returns the new version's path relative to `root` (e.g. "versions/v0003").
    """
    versions = root / VERSIONS_DIR
    versions.mkdir(exist_ok=True)
    numbers = [int(m.group(1)) for p in versions.iterdir() if (m := re.fullmatch(r"v(\d+)", p.name))]
    name = f"v{max(numbers, default=0) + 1:04d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=versions))
    try:
        write(tmp)
        _fsync_tree(tmp)
        tmp.rename(versions / name)
        head_tmp = root / f".{HEAD_FILE}.tmp"
        with open(head_tmp, "w") as f:
            f.write(f"{VERSIONS_DIR}/{name}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(head_tmp, root / HEAD_FILE)  # the commit point
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _prune(root, keep=name, journal_files=journal_files())
    log.info("saved %s as version %s", root, name)
    return f"{VERSIONS_DIR}/{name}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    """Flush a freshly written version to disk before it is made current."""
    for p in folder.rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
    _fsync_dir(folder)


def _prune(root: Path, keep: str, journal_files: set[str]) -> None:
    """Remove versions other than `keep`, leftovers of interrupted saves, and journal files no version uses."""
    for p in (root / VERSIONS_DIR).iterdir():
        if p.name != keep:
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    folder = root / JOURNAL_DIR
    if folder.is_dir():
        for p in folder.iterdir():
            if p.name not in journal_files:
                p.unlink(missing_ok=True)
