"""Where the edit engine runs: a worker process (`genedit serve`: no shared GIL, lowest CPU priority) or a thread.

Both take a `WriteRequest` and return the engine's `EditOutcome` (or raise its RequestError / error), so the server
applies an acknowledged write the same way whichever runs it. The process worker shares the server's folder lock
through an inherited descriptor and dies with the server (Linux: parent-death signal; elsewhere at the next request).
"""

from __future__ import annotations

import logging
import multiprocessing.connection
import os
import signal
import socket
import subprocess
import sys
import traceback
from pathlib import Path

import torch

from genedit.model.storage import FolderLock
from genedit.serve.engine import Corpus, EditEngine, EditOutcome, RequestError, WriteRequest

log = logging.getLogger(__name__)

WORKER_NICE = 19  # the worker yields the CPU to queries whenever they want it
START_TIMEOUT = 600.0  # seconds a worker may take to load the model and its corpus


class WorkerDied(RuntimeError):
    """The edit worker process exited (killed, out of memory) before answering."""


class ThreadWorker:
    """The engine in this process (called from the index's writer thread): simple, shares the GIL with queries."""

    def __init__(self, folder: Path, corpus: Corpus, device: torch.device, lock: FolderLock) -> None:
        self.engine = EditEngine(folder, corpus, device, lock)

    @property
    def version(self) -> str | None:
        """The version the engine's working model equals."""
        return self.engine.version

    def call(self, request: WriteRequest) -> EditOutcome:
        """Apply one write durably (RequestError when refused)."""
        return self.engine.run(request)

    alive = True  # runs in the server's own process

    def close(self) -> None:
        """Nothing to stop."""


class ProcessWorker:
    """The engine in a child process (a fresh interpreter running `genedit.serve.worker.run`) at the lowest CPU priority; requests and outcomes go through a socket pair.

    The child is a fresh interpreter (not a fork of this one, which runs torch threads; not multiprocessing's spawn,
    which re-runs the caller's main script): it inherits only the socket and the folder lock's descriptor.
    """

    def __init__(self, folder: Path, corpus: Corpus, device: torch.device, lock: FolderLock, *, start_timeout: float = START_TIMEOUT) -> None:
        mine, theirs = socket.socketpair()
        lock_fd = lock.fileno()
        package_root = str(Path(__file__).resolve().parents[2])  # the child imports this very genedit
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)}
        with theirs:
            self.process = subprocess.Popen([sys.executable, "-c", "import sys; from genedit.serve.worker import run; run(sys.argv[1:])",
                                             str(theirs.fileno()), str(lock_fd), str(os.getpid())],
                                            pass_fds=(theirs.fileno(), lock_fd), env=env, stdin=subprocess.DEVNULL)
        self._conn = multiprocessing.connection.Connection(mine.detach())
        try:
            self._conn.send((str(folder), corpus, str(device)))
            if not self._conn.poll(start_timeout):
                raise WorkerDied(f"the edit worker did not start within {start_timeout:.0f} s")
            self.version = self._receive()
        except BaseException:
            self.close(timeout=5)
            raise

    def call(self, request: WriteRequest) -> EditOutcome:
        """Apply one write durably in the worker (RequestError when refused, WorkerDied if it exits meanwhile)."""
        try:
            self._conn.send(request)
        except (BrokenPipeError, ConnectionResetError, EOFError) as exc:
            raise WorkerDied(f"the edit worker is gone (exit code {self._exit_code()})") from exc
        outcome = self._receive()
        self.version = outcome.version
        return outcome

    def _receive(self):
        try:
            kind, payload = self._conn.recv()
        except (EOFError, ConnectionResetError, OSError) as exc:
            raise WorkerDied(f"the edit worker exited (exit code {self._exit_code()}) before answering") from exc
        if kind == "ok":
            return payload
        if kind == "refused":
            raise payload
        raise RuntimeError(f"the edit worker failed:\n{payload}")

    def _exit_code(self) -> int | None:
        try:
            return self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return None

    @property
    def alive(self) -> bool:
        """Whether the worker process runs."""
        return self.process.poll() is None

    def close(self, timeout: float = 60.0) -> None:
        """Let the worker finish the write in progress and exit (killed after `timeout` seconds)."""
        try:
            self._conn.send(None)
        except (OSError, ValueError):
            pass
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("the edit worker did not stop within %.0f s; killing it", timeout)
            self.process.kill()
            self.process.wait(5)
        self._conn.close()


def _die_with_parent(parent: int) -> None:
    """Linux: SIGKILL this process when the server dies (a kill -9 of the server leaves no orphan holding the lock)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError) as exc:
            log.info("no parent-death signal: %s", exc)
    if os.getppid() != parent:  # the server died before the signal was armed
        os._exit(0)


def _worker_main(conn: multiprocessing.connection.Connection, lock_fd: int, parent: int) -> None:
    """The worker process: load the engine, then answer requests until told to stop or the server goes away."""
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C of the server's terminal: the server stops the worker itself
    try:
        os.nice(WORKER_NICE)
    except OSError as exc:
        log.info("could not lower the edit worker's priority: %s", exc)
    try:
        folder, corpus, device = conn.recv()
        lock = FolderLock.adopt(folder, lock_fd)
        engine = EditEngine(folder, corpus, torch.device(device), lock)
    except BaseException:  # noqa: BLE001 (reported to the server, which raises it)
        conn.send(("error", traceback.format_exc()))
        return
    conn.send(("ok", engine.version))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            break  # the server is gone
        if request is None:
            break
        reply: tuple[str, object]
        try:
            reply = ("ok", engine.run(request))
        except RequestError as exc:
            reply = ("refused", exc)
        except BaseException:  # noqa: BLE001 (the server reports it as an internal error)
            reply = ("error", traceback.format_exc())
        try:
            conn.send(reply)
        except (OSError, ValueError):
            break
    lock.release()


def run(argv: list[str]) -> None:
    """Entry point of the worker process: argv = [socket fd, lock fd, server pid]."""
    logging.basicConfig(level=logging.WARNING, format="genedit edit worker: %(levelname)s %(name)s: %(message)s")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Writing model shards" bar in the server's log for every edit
    _worker_main(multiprocessing.connection.Connection(int(argv[0])), int(argv[1]), int(argv[2]))
