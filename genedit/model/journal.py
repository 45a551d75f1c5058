"""The edit journal a GenIR model carries: what every edit changed, precisely enough to undo it bit for bit.

Each entry records the operation (add / delete / update / rollback-free), its documents, method, parameters,
fingerprints before and after, wall time, how the docid list and vocabulary changed, and the touched tensors'
values before and after the edit (whole tensors, or only the touched rows of the output matrix). Undo restores
the saved previous values (never "subtract the delta": floating-point addition is not exactly invertible).

On disk (see `GenIRModel.save`) the entries' metadata is `journal.json` inside a model version, and their tensors
are `journal/<entry file>.safetensors` in the model folder, written once and shared by the versions.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from genedit.fileio import atomic_path

JOURNAL_FILE = "journal.json"
JOURNAL_DIR = "journal"


@dataclass
class TensorChange:
    """One touched tensor (a parameter or buffer by state-dict name): values before and after, whole or by rows."""

    name: str
    before: torch.Tensor | None  # None: the rows did not exist before (vocabulary grown)
    after: torch.Tensor
    rows: list[int] | None = None  # row indices of a row-wise change; None = the whole tensor

    @property
    def numel(self) -> int:
        """Number of values this change covers."""
        return self.after.numel()


@dataclass
class JournalEntry:
    """What one edit did (metadata; `changes` hold the tensors and are stored apart)."""

    index: int
    op: str  # add | delete | update
    method: str
    doc_ids: list[str]
    params: dict = field(default_factory=dict)
    seconds: float = 0.0  # wall time of the edit itself (fingerprinting and journalling excluded)
    fingerprint_before: str = ""
    fingerprint_after: str = ""
    changed_params: int = 0  # values of the model the edit wrote
    weight_norm: float = 0.0  # Frobenius norm of the change of the edited decoder weights (rows excluded)
    vocab_before: int = 0  # rows of the output matrix before the edit
    tokens_before: int = 0  # length of the tokenizer before the edit
    docids_added: int = 0  # docids appended at the end of the list
    docids_removed: list[list] = field(default_factory=list)  # [position, docid, token] of removed docids, ascending
    documents: list[dict] = field(default_factory=list)  # the new text of added / updated documents (id, title, text)
    previous: list[dict] = field(default_factory=list)  # updated documents' text before the edit, where known
    created: float = field(default_factory=time.time)
    file: str = ""  # tensor file of this entry under journal/ (set when saved)
    changes: list[TensorChange] = field(default_factory=list, repr=False)

    def summary(self) -> str:
        """One line for `genedit log`."""
        ids = ", ".join(self.doc_ids[:3]) + (f" (+{len(self.doc_ids) - 3} more)" if len(self.doc_ids) > 3 else "")
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.created))
        return (f"{self.index:>4}  {when}  {self.op:<6} {self.method:<15} {len(self.doc_ids):>5} docs  "
                f"{self.seconds * 1000:>9.1f} ms  {self.fingerprint_before} -> {self.fingerprint_after}  [{ids}]")

    def to_json(self) -> dict:
        """Metadata as plain JSON (tensors excluded)."""
        data = asdict(self)
        data.pop("changes")
        return data

    @classmethod
    def from_json(cls, data: dict) -> "JournalEntry":
        """Inverse of to_json (tensors are loaded on demand by `Journal.tensors`)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "changes"}
        return cls(**known)


def _key(i: int, kind: str, name: str) -> str:
    return f"{i}|{kind}|{name}"


def write_changes(entry: JournalEntry, folder: Path) -> str:
    """Write an entry's tensors to `folder/<file>` (once; the name is unique per entry) and return the file name."""
    if entry.file and (folder / entry.file).exists():
        return entry.file
    name = entry.file or f"{entry.index:04d}-{int(entry.created * 1e6):x}.safetensors"
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, str] = {}
    for i, change in enumerate(entry.changes):
        tensors[_key(i, "after", change.name)] = change.after.detach().cpu().contiguous()
        if change.before is not None:
            tensors[_key(i, "before", change.name)] = change.before.detach().cpu().contiguous()
        if change.rows is not None:
            tensors[_key(i, "rows", change.name)] = torch.tensor(change.rows, dtype=torch.long)
    meta["n_changes"] = str(len(entry.changes))
    with atomic_path(folder / name) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    entry.file = name
    return name


def read_changes(path: Path) -> list[TensorChange]:
    """The tensor changes stored in one entry file."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: journal tensors missing; the model folder is incomplete")
    data = load_file(str(path))
    by_index: dict[int, dict[str, object]] = {}
    for key, tensor in data.items():
        i, kind, name = key.split("|", 2)
        slot = by_index.setdefault(int(i), {"name": name})
        slot[kind] = tensor
    out = []
    for i in sorted(by_index):
        slot = by_index[i]
        rows = slot.get("rows")
        out.append(TensorChange(str(slot["name"]), slot.get("before"), slot["after"], rows.tolist() if rows is not None else None))  # type: ignore[union-attr, arg-type]
    return out


@dataclass
class Journal:
    """The ordered edits applied to a model since its base version (the fingerprint before the first edit)."""

    base_fingerprint: str = ""
    entries: list[JournalEntry] = field(default_factory=list)
    source: Path | None = None  # folder whose journal/ holds the tensors of entries loaded from disk

    @property
    def fingerprint(self) -> str:
        """The fingerprint the journal records for the model now (after its last entry); '' if it records none."""
        return self.entries[-1].fingerprint_after if self.entries else self.base_fingerprint

    def __len__(self) -> int:
        return len(self.entries)

    def changes(self, entry: JournalEntry) -> list[TensorChange]:
        """An entry's tensor changes, from memory or from the folder it was loaded from."""
        if entry.changes or entry.changed_params == 0:
            return entry.changes
        if not entry.file or self.source is None:
            raise ValueError(f"edit {entry.index} kept no undo data (edited with history=False)")
        return read_changes(self.source / JOURNAL_DIR / entry.file)

    def to_json(self) -> str:
        """Metadata of every entry as JSON text."""
        return json.dumps({"base_fingerprint": self.base_fingerprint, "entries": [e.to_json() for e in self.entries]}, indent=1)

    @classmethod
    def read(cls, version_dir: Path, root: Path) -> "Journal":
        """The journal of a saved model version (empty when the version has none); tensors read from root/journal."""
        path = version_dir / JOURNAL_FILE
        if not path.exists():
            return cls(source=root)
        try:
            data = json.loads(path.read_text())
            return cls(data.get("base_fingerprint", ""), [JournalEntry.from_json(e) for e in data.get("entries", [])], root)
        except (json.JSONDecodeError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path}: malformed journal ({exc})") from None

    def write(self, version_dir: Path, root: Path) -> None:
        """Write the metadata into a version folder and every entry's tensors (not yet on disk) under root/journal."""
        folder = root / JOURNAL_DIR
        for entry in self.entries:
            if entry.changes:
                write_changes(entry, folder)
            elif entry.file and self.source is not None and self.source.resolve() != root.resolve():
                src = self.source / JOURNAL_DIR / entry.file
                if src.exists() and not (folder / entry.file).exists():
                    folder.mkdir(parents=True, exist_ok=True)
                    (folder / entry.file).write_bytes(src.read_bytes())
        (version_dir / JOURNAL_FILE).write_text(self.to_json())

    def deleted(self) -> set[str]:
        """Docids that a journalled edit removed and no later edit added back: their queries are misses, not bad data."""
        gone: set[str] = set()
        for entry in self.entries:
            gone |= {str(docid) for _, docid, _ in entry.docids_removed}
            gone -= {str(d["id"]) for d in entry.documents if "id" in d} if entry.op == "add" else set()
        return gone

    def files(self) -> set[str]:
        """Tensor files the entries reference."""
        return {e.file for e in self.entries if e.file}
