"""Byte-identity of model folders in tests: every file under a folder with its content hash."""

from __future__ import annotations

import hashlib
from pathlib import Path

from genedit.model.storage import LOCK_FILE


def tree(folder: Path, *, lock: bool = False) -> dict[str, str]:
    """Every file under `folder` -> sha256; the writers' lock file only if `lock` (it names the current holder, not the model)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file() and (lock or p.name != LOCK_FILE)}


def tiny_folder(root: Path, model: str = "model"):
    """A synthetic corpus of 24 documents as a BEIR folder `root/data`, and a tiny T5 indexing its first 20 at `root/model`."""
    from genedit.data import synthetic_collection, write_beir
    from genedit.model.build import TinySpec, tiny_model

    collection = synthetic_collection(24, queries_per_doc=2, seed=5)
    write_beir(collection, Path(root) / "data")
    tiny_model("t5", [d.id for d in collection.documents[:20]], TinySpec(n_layers=2)).save(Path(root) / model)
    return collection
