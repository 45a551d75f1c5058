"""Atomic file writes: a reader (or a crash) sees the old file or the new one, never half of one.

The one home for this idea: results, circuits, journal tensors and JSON reports all write through it. Each write
goes to a uniquely named temporary file in the target's folder (two writers never share a temporary name), is
optionally flushed to disk, and is moved over the target with one `os.replace`.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path, *, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block ends without error it replaces `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | Path, data: str | bytes, *, fsync: bool = False) -> Path:
    """Write text or bytes to `path` atomically (parent folders created)."""
    with atomic_path(path, fsync=fsync) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data)
    return Path(path)


def atomic_write_json(path: str | Path, payload: object, *, indent: int | None = 2) -> Path:
    """Write `payload` as JSON to `path` atomically."""
    return atomic_write(path, json.dumps(payload, indent=indent) + "\n")
