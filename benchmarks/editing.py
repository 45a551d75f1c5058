"""Running one method's edits on a copy of a base model: timed, memory sampled, a stream measured as it goes."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from benchmarks import judge
from benchmarks.protocols import EditOp, Pairs, Split
from benchmarks.ranking import Ranker
from benchmarks.rows import checkpoint_quality
from genedit.edit import Editor, EditSettings
from genedit.edit.methods import method_class
from genedit.eval.types import Run


@dataclass
class EditOutcome:
    """An edited model and what the edits cost."""

    model: Any
    seconds: float  # wall time of the edit calls (validation, journalling and fingerprinting included)
    edit_seconds: float  # sum of the editor's own timings of the edits themselves
    peak_mb: float  # the process's resident memory, or on a GPU torch's peak allocation there
    peak_growth_mb: float
    changed_params: int
    weight_norm: float
    n_edits: int
    sites: list[str] = field(default_factory=list)  # the linears circuit methods edited (empty for row-only methods)
    checkpoints: list[dict] = field(default_factory=list)  # a stream: the measures after every `every` edits


def method_for(method: str, op: str, available: dict[str, list[str]]) -> str:
    """The method a stream uses for an op: itself if it can, else for deletes the row-only `mask`, else the op's default."""
    if method in available[op]:
        return method
    if op == "delete" and "mask" in available[op]:
        return "mask"
    return available[op][0]


def apply(editor: Editor, op: EditOp, method: str) -> Any:
    """Carry out one edit op with the editor; its journal entry."""
    if op.op == "add":
        return editor.add(list(op.docs), method=method)
    if op.op == "update":
        return editor.update(list(op.docs), method=method)
    return editor.delete(list(op.ids), method=method)


def edit(base_model: Any, method: str, targets: str | None, split: Split, circuit: Any, *, stream: bool,
         available: dict[str, list[str]], base_run: Run, sets: dict[str, Pairs], ranker: Ranker) -> EditOutcome:
    """Edit a copy of the base with one method (`targets`: its editing-target selection); a stream is measured every `every` edits."""
    model = copy.deepcopy(base_model)  # on the base's device, in its dtype (BenchConfig.device / dtype)
    device = model.device
    if device.type == "cuda":  # the GPU's own peak: resident memory of the process says nothing about it
        torch.cuda.reset_peak_memory_stats(device)
        gpu_start_mb = torch.cuda.memory_allocated(device) / 2**20
    options: dict[str, Any] = {"fingerprints": False} if stream else {}  # hashing the weights: ~0.3 s an edit
    if targets is not None:
        options["settings"] = EditSettings(targets=targets)
    editor = Editor(model, corpus=split.base, history=False, circuit=circuit, **options)
    checkpoints: list[dict] = []
    entries = []
    clock = judge.Stopwatch()
    deleted: list[str] = []
    with judge.PeakMemory() as memory:
        if not stream:
            with clock:
                entries.append(apply(editor, split.ops[0], method))
        else:
            every = split.spec.every or 1
            checkpoints.append({"edits": 0, "seconds": 0.0, "weight_norm": 0.0, **checkpoint_quality(base_run, sets, split, 0, base_run, [])})
            for n, op in enumerate(tqdm(split.ops, desc=f"{split.spec.protocol} {method}"), start=1):
                with clock:
                    entries.append(apply(editor, op, method_for(method, op.op, available)))
                deleted += list(op.ids)
                if n % every == 0 or n == len(split.ops):
                    run = ranker.rank(model, sets, f"{split.spec.protocol}: checkpoint {n}")  # every stream query: encoder states cached once
                    checkpoints.append({"edits": n, "seconds": round(clock.seconds, 3), "weight_norm": _norm(entries[-1]),
                                        **checkpoint_quality(run, sets, split, n, base_run, deleted)})
    peak_mb, growth_mb = memory.peak_mb, memory.growth_mb
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated(device) / 2**20
        growth_mb = peak_mb - gpu_start_mb
    return EditOutcome(
        model=model,
        seconds=clock.seconds,
        edit_seconds=sum(float(getattr(e, "seconds", 0.0) or 0.0) for e in entries),
        peak_mb=peak_mb,
        peak_growth_mb=growth_mb,
        changed_params=int(sum(int(getattr(e, "changed_params", 0) or 0) for e in entries)),
        weight_norm=_norm(entries[-1]) if entries else 0.0,
        n_edits=len(entries),
        sites=[str(t) for t in editor.targets] if method_class(method).uses_circuit else [],
        checkpoints=checkpoints,
    )


def _norm(entry: Any) -> float:
    value = getattr(entry, "weight_norm", 0.0) if entry is not None else 0.0
    return round(float(value or 0.0), 6)
