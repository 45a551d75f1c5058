"""Editing methods: one file each, behind one registry (like ir_measures' measures).

A method is a dataclass of its hyper-parameters with `name`, the operations it supports (`ops`) and
`apply(ctx, request)`, which writes the model through the context (so the journal can undo it).
`methods_for(op)` lists the methods of an operation, the default (best measured) first.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import ClassVar

from genedit.edit.context import EditContext, EditRequest

OPS = ("add", "delete", "update")


class EditMethod(ABC):
    """Base of every editing method (subclasses are dataclasses of their hyper-parameters)."""

    name: ClassVar[str]
    ops: ClassVar[tuple[str, ...]]
    uses_circuit: ClassVar[bool] = False  # edits the circuit's target linears
    summary: ClassVar[str] = ""

    def prepare(self, ctx: EditContext, req: EditRequest) -> None:
        """Compute the per-model statistics the edit reads (cached in the context; not part of an edit's cost)."""
        return None

    @abstractmethod
    def apply(self, ctx: EditContext, req: EditRequest) -> None:
        """Carry out the edit on ctx.model."""

    def params(self) -> dict:
        """Hyper-parameters, for the journal."""
        return dataclasses.asdict(self) if dataclasses.is_dataclass(self) else {}


_REGISTRY: dict[str, type[EditMethod]] = {}
# default first; the order is the measured ranking of `genedit bench` on the bundled corpus (README)
_PREFERENCE = ("rank-one", "row-solve", "row", "lora", "finetune-replay", "finetune", "mask")


def register(cls: type[EditMethod]) -> type[EditMethod]:
    """Class decorator adding a method to the registry."""
    _REGISTRY[cls.name] = cls
    return cls


def _load() -> None:
    from genedit.edit.methods import incdsi, mask, rank_one, row  # noqa: F401  (registration side effect)

    try:
        from genedit.edit.methods import finetune, lora  # noqa: F401
    except ImportError:  # pragma: no cover - optional methods not present
        pass


def method_names() -> list[str]:
    """Every registered method name."""
    _load()
    return sorted(_REGISTRY)


def methods_for(op: str) -> list[str]:
    """Methods that implement an operation, the default first."""
    if op not in OPS:
        raise ValueError(f"unknown operation {op!r}; choose from {OPS}")
    _load()
    names = [n for n, cls in _REGISTRY.items() if op in cls.ops]
    return sorted(names, key=lambda n: (_PREFERENCE.index(n) if n in _PREFERENCE else len(_PREFERENCE), n))


def method_class(name: str) -> type[EditMethod]:
    """The registered class of a method (KeyError names the known ones)."""
    _load()
    if name not in _REGISTRY:
        raise KeyError(f"unknown method {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def make_method(name: str, op: str, **params: object) -> EditMethod:
    """An instance of a method for an operation (ValueError names the choices)."""
    choices = methods_for(op)
    if name not in choices:
        raise ValueError(f"method {name!r} cannot {op}; choose from {', '.join(choices)}")
    cls = _REGISTRY[name]
    fields: set[str] = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    unknown = sorted(set(params) - fields)
    if unknown:
        raise ValueError(f"method {name!r} has no parameter {', '.join(unknown)}; it has {', '.join(sorted(fields)) or 'none'}")
    return cls(**params)  # type: ignore[call-arg]
