"""Train-or-reuse of the base and oracle models of the protocols, kept as ordinary genedit model folders.

A model is reused only if its cache key matches: the hash of the exact collection it was trained on (so the
source data and the split that carved it out), the base model name, the full TrainConfig, the source of the
training code, and the genedit and torch versions. Two protocols that train on the same corpus (the add oracle and the delete base are both the
full corpus) share one model. Models live in OUT/models/<label>-<key12>/ and the collection each was trained
on in OUT/data/<label>-<key12>/ (a BEIR folder), so anyone can run
`genedit eval --model OUT/models/X --data OUT/data/X`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from accelerate import PartialState

import genedit
from benchmarks.protocols import collection_hash
from genedit.data import write_beir
from genedit.data.types import Collection
from genedit.model.genir import GenIRModel
from genedit.model.storage import META_FILE, is_model_dir
from genedit.train.trainer import TrainConfig, processes

log = logging.getLogger(__name__)

MODELS = "models"
DATA = "data"


RECIPE_MODULES = ("genedit.train.trainer", "genedit.model.build", "genedit.model.pretrained")


def recipe_source_hash() -> str:
    """Hash of the training code (trainer, base-model builders): a change between releases also retrains."""
    import importlib

    h = hashlib.sha256()
    for name in RECIPE_MODULES:
        h.update(Path(importlib.import_module(name).__file__).read_bytes())
    return h.hexdigest()[:16]


def cache_key_parts(collection: Collection, base: str, config: TrainConfig, processes: int = 1, device: str = "cpu") -> dict:
    """Everything a trained model depends on, as a JSON-able dict.

    A model trained on several processes sums its gradients in another order (and draws other dropout masks): it is
    another model, with its own key; one process keeps the key it always had. So is one trained on a GPU (its device
    type is in the key; a CPU-trained model keeps the key it always had).
    """
    import torch

    parts = {
        "data": collection_hash(collection),
        "base": base,
        "train": asdict(config),
        "recipe_code": recipe_source_hash(),
        "genedit": genedit.__version__,
        "torch": torch.__version__,
    }
    if processes > 1:
        parts["processes"] = processes
    if device != "cpu":
        parts["device"] = device
    return parts


def cache_key(parts: dict) -> str:
    """Hash of the key parts."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


@dataclass
class CachedModel:
    """A base or oracle model with where it lives and what it cost to train."""

    model: GenIRModel
    label: str
    path: Path
    data_path: Path
    key: str
    fingerprint: str
    train_seconds: float
    reused: bool

    def describe(self, root: Path) -> dict:
        """JSON form for results.json (paths relative to the output folder)."""
        return {
            "label": self.label,
            "path": str(self.path.relative_to(root)),
            "data": str(self.data_path.relative_to(root)),
            "key": self.key,
            "fingerprint": self.fingerprint,
            "train_seconds": round(self.train_seconds, 1),
            "reused": self.reused,
            "n_docs": self.model.n_docs,
        }


class ModelCache:
    """Trains a model on a collection once per cache key and reloads it afterwards."""

    def __init__(self, root: str | Path, base: str, config: TrainConfig, device: torch.device | None = None, dtype: torch.dtype | None = None) -> None:
        self.root = Path(root)
        self.base = base
        self.config = config
        self.device = device if device is not None else torch.device("cpu")  # where models are trained and loaded
        self.dtype = dtype  # what they are handed back in (trained and saved in float32)

    def find(self, key: str) -> Path | None:
        """The model folder under OUT/models whose recorded key is `key`, if any."""
        folder = self.root / MODELS
        if not folder.is_dir():
            return None
        for path in sorted(folder.iterdir()):
            if not is_model_dir(path):
                continue
            try:
                meta = json.loads((path / META_FILE).read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if meta.get("bench", {}).get("key") == key:
                return path
        return None

    def get(self, collection: Collection, label: str) -> CachedModel:
        """The model trained on `collection` (reused on a matching key, else trained and saved).

        Launched on several processes, every process trains (data parallel) and only the main one writes.
        """
        with processes(self.device) as state:
            return self._get(collection, label, state)

    def _get(self, collection: Collection, label: str, state: PartialState) -> CachedModel:
        from genedit.model.build import base_model
        from genedit.train.trainer import train

        parts = cache_key_parts(collection, self.base, self.config, state.num_processes, self.device.type)
        key = cache_key(parts)
        found = self.find(key)
        if found is not None:
            model = GenIRModel.load(found, device=self.device, dtype=self.dtype)
            bench = model.meta["bench"]
            log.info("reusing %s for %s (key %s)", found, label, key[:12])
            return CachedModel(model, bench["label"], found, self.root / bench["data"], key, bench["fingerprint"],
                               float(model.meta.get("train", {}).get("seconds", 0.0)), True)
        name = f"{label}-{key[:12]}"
        data_path = self.root / DATA / name
        path = self.root / MODELS / name
        if state.is_main_process:
            if not data_path.exists():
                write_beir(collection, data_path)
            log.info("training %s on %d documents (key %s)", label, len(collection.documents), key[:12])
        t = time.monotonic()
        model = base_model(self.base, seed=self.config.seed, device=self.device)
        result = train(model, collection, self.config)
        seconds = result.seconds or time.monotonic() - t
        fingerprint = model.fingerprint()
        model.meta["name"] = f"genir-{label}"
        model.meta["bench"] = {"key": key, "key_parts": parts, "label": label, "data": f"{DATA}/{name}", "fingerprint": fingerprint}
        try:
            if state.is_main_process:
                model.save(path, overwrite=True)
        finally:
            state.wait_for_everyone()  # every process finds the folder complete afterwards
        if self.dtype is not None:
            model.to(dtype=self.dtype)  # ranked and edited like the reloaded one
        return CachedModel(model, label, path, data_path, key, fingerprint, seconds, False)
