"""Helpers every command shares: output files checked before the work, JSON written atomically, --data specs."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from genedit.fileio import atomic_write_json


def write_json(path: str | None, payload: object) -> None:
    """Write a command's JSON output (--json), atomically; nothing when no path was given."""
    if path:
        atomic_write_json(path, payload)


def resolve_options(args) -> None:
    """Turn --device / --dtype (where a command has them) into a torch device and dtype; ValueError if unusable."""
    from genedit.model.device import resolve_device, resolve_dtype

    if hasattr(args, "device"):
        args.device = resolve_device(args.device)
    if hasattr(args, "dtype"):
        args.dtype = resolve_dtype(args.dtype)


def check_output_file(path: str) -> None:
    """Fail before any long computation if `path` cannot be written as a file."""
    out = Path(path).absolute()
    if out.is_dir():
        raise IsADirectoryError(f"{out} is a directory; give a file path")
    existing = next(p for p in out.parents if p.exists())  # nothing is created here: a failed run leaves no trace
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise PermissionError(f"cannot write {out}: {existing} is not a writable directory")


def evaluate_model(model, collection, split: str):
    """Rank a split's queries with the model: (run, evaluation, seconds); every relevant document must be indexed."""
    from genedit.eval import evaluate
    from genedit.eval.evaluate import check_judgeable

    check_judgeable(collection.split(split), set(model.docids), model.journal.deleted(), model.meta.get("name", "the model"), split)
    t = time.monotonic()
    run = model.rank([q for q, _ in collection.split(split)], k=100)
    return run, evaluate(run, collection.qrels[split]), time.monotonic() - t


def data_spec(spec: str) -> str:
    """A --data value that still means the same collection from another working directory."""
    return spec if spec == "default" or spec.startswith("irds:") else str(Path(spec).resolve())


def indexed_corpus(args: argparse.Namespace, model):
    """The collection the model indexes: --data, else the data the model was trained on (recorded by genedit train)."""
    from genedit.data import load_indexed

    spec = args.data or model.meta.get("data")
    return load_indexed(spec, model.docids) if spec is not None else None
