"""Byte-identity of model folders in tests: every file under a folder with its content hash."""

from __future__ import annotations

import hashlib
from pathlib import Path

from genedit.model.storage import LOCK_FILE


def tree(folder: Path, *, lock: bool = False) -> dict[str, str]:
    """Every file under `folder` -> sha256; the writers' lock file only if `lock` (it names the current holder, not the model)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file() and (lock or p.name != LOCK_FILE)}
