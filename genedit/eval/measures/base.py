"""Measure base class and the registry that parses measures from strings like "hits@10"."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass
from typing import ClassVar, TypeVar

_SPEC = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_]*)\s*@\s*(\S+)\s*$")

M = TypeVar("M", bound="type[Measure]")


@dataclass(frozen=True)
class Measure(ABC):
    """A per-query measure at a rank cutoff; the aggregate is the mean over queries."""

    cutoff: int
    name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        if isinstance(self.cutoff, bool) or not isinstance(self.cutoff, int) or self.cutoff < 1:
            raise ValueError(f"{self.name}: cutoff must be a positive integer, got {self.cutoff!r}")

    def __str__(self) -> str:
        return f"{self.name}@{self.cutoff}"

    @abstractmethod
    def compute(self, ranking: Sequence[str], relevant: Set[str]) -> float:
        """Value for one query: ranking is best first, relevant the ids with grade > 0."""


# The measure registry: lower-case name or alias -> measure class.
_REGISTRY: dict[str, type[Measure]] = {}


def register_measure(cls: M) -> M:
    """Class decorator adding a Measure subclass to the registry under its name and aliases."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    for key in (cls.name, *cls.aliases):
        key = key.lower()
        if key in _REGISTRY and _REGISTRY[key] is not cls:
            raise ValueError(f"measure name {key!r} already registered by {_REGISTRY[key].__name__}")
        _REGISTRY[key] = cls
    return cls


def known_measures() -> list[str]:
    """Canonical names of the registered measures, sorted."""
    return sorted({cls.name for cls in _REGISTRY.values()})


def _describe_known() -> str:
    parts = []
    for name in known_measures():
        cls = _REGISTRY[name]
        alias = f" (aliases: {', '.join(cls.aliases)})" if cls.aliases else ""
        parts.append(f"{name}@K{alias}")
    return "; ".join(parts)


def parse_measure(spec: str | Measure) -> Measure:
    """A measure from a string like "hits@10" or "MRR@10" (case-insensitive); ValueError if unknown or malformed."""
    if isinstance(spec, Measure):
        return spec
    if not isinstance(spec, str):
        raise ValueError(f"measure must be a string like 'hits@10', got {type(spec).__name__}")
    match = _SPEC.match(spec)
    if match is None:
        raise ValueError(f"cannot parse measure {spec!r}: expected NAME@K with a positive integer K; known measures: {_describe_known()}")
    name, cutoff_text = match.group(1).lower(), match.group(2)
    if name not in _REGISTRY:
        raise ValueError(f"unknown measure {match.group(1)!r} in {spec!r}; known measures: {_describe_known()}")
    if not cutoff_text.isdigit() or int(cutoff_text) < 1:
        raise ValueError(f"bad cutoff {cutoff_text!r} in measure {spec!r}: expected a positive integer, as in '{_REGISTRY[name].name}@10'")
    return _REGISTRY[name](int(cutoff_text))


def parse_measures(specs: Iterable[str | Measure]) -> list[Measure]:
    """Parse several measures, dropping duplicates while keeping order; a bare string is one measure."""
    if isinstance(specs, (str, Measure)):
        specs = [specs]
    out: list[Measure] = []
    for spec in specs:
        measure = parse_measure(spec)
        if measure not in out:
            out.append(measure)
    if not out:
        raise ValueError("no measures given")
    return out
