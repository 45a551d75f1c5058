"""genedit add | delete | update | log | rollback: edit a deployed model folder.

Without --out the model folder is edited in place: the new version is written beside the current one and made
current by one atomic rename of the folder's HEAD file, so a crash at any moment leaves a loadable model.
Everything is validated before the model is touched; bad input exits 2 and leaves the folder byte-identical.
An in-place edit holds the folder's lock (genedit.model.storage.FolderLock) from before it loads the model until
its new version is current: another writer is waited for (--wait SECONDS) or refused with exit 4, never lost.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from genedit.model.storage import FolderLock

from genedit.cli.common import indexed_corpus

log = logging.getLogger(__name__)


def _check_target(args: argparse.Namespace) -> Path:
    """The folder the edited model goes to, checked before any work (writable, and a model folder or empty)."""
    from genedit.model.storage import check_writable_model_dir, is_model_dir

    model_dir = Path(args.model)
    if not is_model_dir(model_dir):
        raise FileNotFoundError(f"{model_dir}: not a genedit model folder (no genedit.json, docids.json and config.json)")
    out = Path(args.out) if getattr(args, "out", None) else model_dir
    if out == model_dir or (out.exists() and out.resolve() == model_dir.resolve()):
        if not os.access(model_dir, os.W_OK):
            raise PermissionError(f"cannot write {model_dir}: the model folder is not writable")
        return model_dir
    check_writable_model_dir(out)
    existing = next(p for p in out.absolute().parents if p.exists())
    if not os.access(existing, os.W_OK):
        raise PermissionError(f"cannot write {out}: {existing} is not writable")
    return out


def _writer(args: argparse.Namespace, out: Path) -> contextlib.AbstractContextManager[FolderLock | None]:
    """The folder lock an edit in place holds from before loading until saved (None when writing a new folder)."""
    from genedit.model.storage import FolderLock

    if out.exists() and out.resolve() == Path(args.model).resolve():
        return FolderLock(out, wait=args.wait)
    return contextlib.nullcontext()


def _editor(args: argparse.Namespace, model):
    from genedit.edit import Editor, EditSettings

    return Editor(model, corpus=indexed_corpus(args, model), settings=EditSettings(targets=args.targets))


def _save(ed, out: Path, lock: FolderLock | None) -> None:
    """Write the edited model; a circuit localized for the edit is kept beside it for the next one."""
    ed.save(out, overwrite=False, lock=lock)  # with the preservation statistics, so the next command reads them
    if ed.localized:
        ed.circuit.save(out / "circuit.json")
        print(f"localized the model's circuit for this edit; saved it to {out / 'circuit.json'}")


def _report(entry, out: Path) -> None:
    per_doc = entry.seconds * 1000 / max(len(entry.doc_ids), 1)
    print(f"{entry.op}: {len(entry.doc_ids)} documents with {entry.method} in {entry.seconds * 1000:.0f} ms ({per_doc:.1f} ms/doc); "
          f"journal entry {entry.index}; model {entry.fingerprint_before} -> {entry.fingerprint_after}")
    print(f"saved to {out}")


def cmd_add(args: argparse.Namespace) -> int:
    """Add documents (BEIR corpus lines) to a model."""
    return _edit_docs(args, "add")


def cmd_update(args: argparse.Namespace) -> int:
    """Give indexed documents new text."""
    return _edit_docs(args, "update")


def _edit_docs(args: argparse.Namespace, op: str) -> int:
    from genedit.data import read_corpus, read_doc_queries
    from genedit.model.genir import GenIRModel

    out = _check_target(args)
    if args.docs == args.queries == "-":
        raise ValueError("--docs and --queries cannot both be '-': standard input is read once")
    docs = read_corpus(args.docs, require_text=True)
    queries = read_doc_queries(args.queries, {d.id for d in docs}) if args.queries else None
    with _writer(args, out) as lock:
        model = GenIRModel.load(args.model, device=args.device, dtype=args.dtype)
        ed = _editor(args, model)
        entry = (ed.add if op == "add" else ed.update)(docs, queries, method=args.method)
        _save(ed, out, lock)
    _report(entry, out)
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    """Delete documents from a model."""
    from genedit.data import read_ids
    from genedit.model.genir import GenIRModel

    out = _check_target(args)
    ids = list(args.ids or [])
    if args.ids_file:
        ids += read_ids(args.ids_file)
    if not ids:
        raise ValueError("no document ids to delete (give --ids or --ids-file)")
    with _writer(args, out) as lock:
        model = GenIRModel.load(args.model, device=args.device, dtype=args.dtype)
        ed = _editor(args, model)
        entry = ed.delete(ids, method=args.method)
        _save(ed, out, lock)
    _report(entry, out)
    return 0


def cmd_log(args: argparse.Namespace) -> int:
    """Print a model's edit journal."""
    from genedit.model.genir import GenIRModel
    from genedit.model.storage import is_model_dir

    if not is_model_dir(args.model):
        raise FileNotFoundError(f"{args.model}: not a genedit model folder")
    model = GenIRModel.load(args.model)
    entries = model.journal.entries
    if args.format == "json":
        print(json.dumps({"base_fingerprint": model.journal.base_fingerprint, "entries": [e.to_json() for e in entries]}, indent=1))
        return 0
    if not entries:
        print(f"{args.model}: no edits (model {model.fingerprint()})")
        return 0
    print(f"{args.model}: {len(entries)} edits since base model {model.journal.base_fingerprint} (0 = before the first edit)")
    for e in entries:
        print(e.summary())
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    """Restore a model to its state after journal entry N (0: before the first edit), bit for bit."""
    from genedit.edit import rollback_model
    from genedit.model.genir import GenIRModel

    out = _check_target(args)
    with _writer(args, out) as lock:
        model = GenIRModel.load(args.model, device=args.device)
        n = len(model.journal.entries)
        if not 0 <= args.to <= n:
            raise ValueError(f"no journal entry {args.to}: {args.model} has entries 1..{n} (0 = before the first edit)")
        t = time.perf_counter()
        undone = rollback_model(model, args.to)
        expected = undone[-1].fingerprint_before if undone else None
        fingerprint = model.fingerprint()
        if expected is not None and fingerprint != expected:
            raise RuntimeError(f"rollback produced model {fingerprint}, but the journal says {expected}")
        model.save(out, lock=lock)
    print(f"rolled back {len(undone)} edits in {time.perf_counter() - t:.1f}s: model {fingerprint} (journal entry {args.to}); saved to {out}")
    return 0


