"""How a model folder is stored: versions under `versions/`, the current one named by `HEAD`, crash-safe saves.

A folder `genedit train` wrote holds one model's files. Saving into it again (an edit in place) writes a new
version `versions/vNNNN` beside the current one, flushes it to disk, and makes it current by one atomic rename of
the `HEAD` pointer file: a crash at any moment leaves the previous version or the new one loadable. Readers
follow `HEAD`; they never need to write anything, nor the lock.

Writers take the folder's lock (`FolderLock`: an exclusive `fcntl.flock` on `DIR/LOCK`, released by the kernel when
its process dies, so a `kill -9` never leaves a stale lock) from before they read the version they edit until their
HEAD rename is done; a second writer waits for it or is refused (`FolderLocked`). A save in place also refuses a
model loaded from a version that is no longer current (`StaleVersion`: saving it would drop the edits made since).
Pruning, done under the lock, keeps the current version and the previous one, which a reader may still be loading.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType

from genedit.model.journal import JOURNAL_DIR, JOURNAL_FILE

log = logging.getLogger(__name__)

META_FILE = "genedit.json"
DOCIDS_FILE = "docids.json"
HEAD_FILE = "HEAD"  # in a folder edited in place: the relative path of the current version
VERSIONS_DIR = "versions"
LOCK_FILE = "LOCK"  # the writers' lock (fcntl.flock); never deleted: deleting a flock file races with its next taker
_VERSION = re.compile(r"v(\d+)")


class WriteConflict(Exception):
    """Another writer of the model folder stands in the way (the CLI exits 4; a server answers 409)."""


@dataclass
class LockHolder:
    """Who holds a model folder's lock, as the holder wrote it into the lock file."""

    pid: int
    command: str
    since: str  # ISO time the lock was taken

    def describe(self) -> str:
        """'pid 123 (genedit add ...) since 2025-01-01T10:00:00+00:00'."""
        return f"pid {self.pid} ({_one_line(self.command)}) since {_one_line(self.since)}"


class FolderLocked(WriteConflict):
    """The folder's lock is held by another writer (after waiting as long as asked)."""

    def __init__(self, lock_file: Path, holder: LockHolder | None, waited: float) -> None:
        self.lock_file = lock_file
        self.holder = holder
        who = holder.describe() if holder is not None else "another process (it has not written its name yet)"
        after = f" after waiting {waited:g}s" if waited > 0 else ""
        super().__init__(f"{lock_file} is held by {who}: another writer is editing this model folder; nothing was written{after} "
                         "(retry when it is done, or wait for it: --wait SECONDS)")


class StaleVersion(WriteConflict):
    """HEAD moved since the model was loaded: saving it would silently drop the edits saved in between."""

    def __init__(self, folder: Path, loaded: str, current: str) -> None:
        self.folder, self.loaded, self.current = folder, loaded, current
        super().__init__(f"{folder} is now at {current or 'its first version'}, but this model was loaded from "
                         f"{loaded or 'its first version'}: another writer saved in between and saving would discard that edit; "
                         "nothing was written (load the folder again and redo the edit; hold a FolderLock across load, edit and save)")


def _one_line(text: str, limit: int = 160) -> str:
    """Text on one line (whitespace runs collapsed), shortened to `limit` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _holder_command() -> str:
    """The command line of this process, for the lock file (one line, shortened)."""
    argv = list(getattr(sys, "orig_argv", None) or sys.argv)
    if argv:
        argv[0] = Path(argv[0]).name
    return _one_line(" ".join(argv))


def read_holder(lock_file: str | Path) -> LockHolder | None:
    """The holder a lock file names; None when it is empty, partial or unreadable (being written, or released)."""
    try:
        data = json.loads(Path(lock_file).read_text())
        return LockHolder(int(data["pid"]), str(data["command"]), str(data["since"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


class FolderLock:
    """The exclusive writer's lock of a model folder: `fcntl.flock` on `DIR/LOCK`; the kernel frees it when the process dies.

    `wait` is how many seconds `acquire` polls for a held lock before raising FolderLocked (0: refuse at once).
    Locks are per open file: a second FolderLock on the same folder conflicts even in the same process. The folder
    must exist (a fresh folder needs no lock: it is created by one atomic rename).
    """

    def __init__(self, folder: str | Path, *, wait: float = 0.0) -> None:
        if not wait >= 0:
            raise ValueError(f"wait must be >= 0 seconds, got {wait}")
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self.wait = float(wait)
        self._fd: int | None = None
        self._adopted = False  # a lock this process shares with the one that took it (an edit worker)

    @classmethod
    def adopt(cls, folder: str | Path, fd: int) -> "FolderLock":
        """The lock another process took, shared through its inherited file descriptor (an edit worker of `genedit serve`).

        Both processes hold the same open file, hence the same flock: it is freed only when both have closed it.
        Releasing an adopted lock closes this process's descriptor and leaves the holder's record alone.
        """
        lock = cls(folder)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the same open file: succeeds at once; anything else is refused
        if os.fstat(fd).st_ino != os.stat(lock.path).st_ino:
            raise RuntimeError(f"descriptor {fd} is not the lock file of {lock.folder}")
        lock._fd, lock._adopted = fd, True
        return lock

    def fileno(self) -> int:
        """The descriptor holding the flock (to share it with a worker process)."""
        if self._fd is None:
            raise RuntimeError(f"{self.path} is not held by this FolderLock")
        return self._fd

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def covers(self, folder: str | Path) -> bool:
        """Whether this lock is held and is the lock of `folder`."""
        return self.held and Path(folder).resolve() == self.folder.resolve()

    def acquire(self) -> "FolderLock":
        """Take the lock, polling up to `wait` seconds; FolderLocked (naming the holder) if it stays held."""
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this FolderLock")
        if not self.folder.is_dir():
            raise FileNotFoundError(f"{self.folder}: no such model folder to lock")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            deadline = time.monotonic() + self.wait
            pause = 0.02
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise FolderLocked(self.path, read_holder(self.path), self.wait) from None
                    time.sleep(min(pause, left))
                    pause = min(pause * 2, 0.25)
            since = datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")
            record = json.dumps({"pid": os.getpid(), "command": _holder_command(), "since": since}) + "\n"
            os.ftruncate(fd, 0)
            os.pwrite(fd, record.encode(), 0)
        except BaseException:
            os.close(fd)  # closing drops the flock too, if it was taken
            raise
        self._fd = fd
        log.info("locked %s", self.path)
        return self

    def release(self) -> None:
        """Drop the lock (the holder record is cleared first, while still held); a no-op when not held."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if self._adopted:
            os.close(fd)  # the taker still holds it
            return
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        finally:
            os.close(fd)  # releases the flock

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)  # type: ignore[arg-type]


def default_model_dir() -> Path:
    """Where `genedit demo` caches its trained default model (GENEDIT_CACHE overrides)."""
    root = Path(os.environ.get("GENEDIT_CACHE", Path.home() / ".cache" / "genedit"))
    return root / "default-model"


def head_version(path: str | Path) -> str:
    """The version HEAD names, relative to the folder ("versions/v0003"); "" for a folder without versions."""
    head = Path(path) / HEAD_FILE
    return head.read_text().strip() if head.is_file() else ""


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


def write_version(root: Path, write: Callable[[Path], None], journal_files: Callable[[], set[str]], *, lock: FolderLock,
                  base: str | None = None) -> str:
    """A new version inside an existing model folder, made current by renaming the HEAD file; old ones pruned.

    The caller holds `lock` (the folder's FolderLock). `base`, when given, is the version the model was loaded from:
    if HEAD names another one now, StaleVersion is raised before anything is written. `write(folder)` writes every
    file of the version; `journal_files()` names the journal tensors still in use. The version and the journal
    tensors are on disk (fsync) before HEAD names it. Returns its path relative to `root` (e.g. "versions/v0003").
    """
    if not lock.covers(root):
        raise RuntimeError(f"writing a version of {root} needs its FolderLock held")
    previous = head_version(root)
    if base is not None and previous != base:
        raise StaleVersion(root, base, previous)
    versions = root / VERSIONS_DIR
    versions.mkdir(exist_ok=True)
    numbers = [int(m.group(1)) for p in versions.iterdir() if (m := _VERSION.fullmatch(p.name))]
    name = f"v{max(numbers, default=0) + 1:04d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=versions))
    try:
        write(tmp)
        _fsync_tree(tmp)
        for file in sorted(journal_files()):
            _fsync_file(root / JOURNAL_DIR / file)
        if (root / JOURNAL_DIR).is_dir():
            _fsync_dir(root / JOURNAL_DIR)
        tmp.rename(versions / name)
        _fsync_dir(versions)
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
    _prune(root, keep={name, Path(previous).name} if previous else {name}, journal_files=journal_files())
    log.info("saved %s as version %s", root, name)
    return f"{VERSIONS_DIR}/{name}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    if path.is_file():
        with open(path, "rb") as f:
            os.fsync(f.fileno())


def _fsync_tree(folder: Path) -> None:
    """Flush a freshly written version to disk before it is made current."""
    for p in folder.rglob("*"):
        _fsync_file(p)
    for p in [d for d in folder.rglob("*") if d.is_dir()] + [folder]:
        _fsync_dir(p)


def _prune(root: Path, keep: set[str], journal_files: set[str]) -> None:
    """Remove versions but `keep` (current and previous), leftovers of interrupted saves, and unused journal files.

    Called under the folder's lock, so no other writer's temporary version is in `versions/`. Journal tensors that a
    kept version's journal names stay.
    """
    used = set(journal_files)
    for p in (root / VERSIONS_DIR).iterdir():
        if p.name in keep:
            used |= _journal_files_of(p)
        else:
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    folder = root / JOURNAL_DIR
    if folder.is_dir():
        for p in folder.iterdir():
            if p.name not in used:
                p.unlink(missing_ok=True)


def _journal_files_of(version: Path) -> set[str]:
    """Journal tensor files a saved version's journal names (none when it has no readable journal)."""
    try:
        data = json.loads((version / JOURNAL_FILE).read_text())
        return {e["file"] for e in data.get("entries", []) if e.get("file")}
    except (OSError, ValueError, TypeError, AttributeError, KeyError):
        return set()
