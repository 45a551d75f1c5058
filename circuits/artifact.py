"""The Circuit artifact: a versioned JSON record of one localization run, tied to one exact model by fingerprint."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from circuits.lens import LensResult
from circuits.patching import PatchStats, SiteEffect
from circuits.stages import MinimalCircuit, Stages
from genedit.fileio import atomic_write
from genedit.model.components import Site

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SCHEMA_NAME = "genedit.circuit"
EDIT_SELECTIONS = ("auto", "cross_attn", "mlp", "both")  # the selections of `Circuit.editing_targets` (also the edit commands' --targets)


def shipped_circuit_path() -> Path:
    """The circuit of the default model (`genedit demo`) shipped with the package."""
    return Path(__file__).resolve().parent / "default" / "circuit.json"


@dataclass(frozen=True)
class ReferenceCheck:
    """A model's fingerprint beside the reference default model's (the one README's figures and circuits/default/ come from)."""

    fingerprint: str
    reference: str

    @property
    def is_reference(self) -> bool:
        """True when the model is the reference default model."""
        return self.fingerprint == self.reference


def reference_check(model: Any) -> ReferenceCheck:
    """Is this the reference default model? Compares its fingerprint (every weight hashed: call once) with the shipped circuit's."""
    return ReferenceCheck(model.fingerprint(), Circuit.load(shipped_circuit_path()).fingerprint)


class CircuitMismatchError(ValueError):
    """A circuit was loaded against a model it was not computed on."""


@dataclass
class CircuitSettings:
    """How the circuit was localized."""

    split: str
    n_queries: int  # queries actually analysed
    mode: str  # patching mode of the sweep: zero | mean | counterfactual
    seed: int
    heads: bool
    attribution_metric: str | None
    circuit_target: float
    circuit_ablation: str
    lens_queries: int
    interaction_frac: float
    bridging_frac: float
    min_effect: float = 0.0


@dataclass
class BridgingHead:
    """A cross-attention head of a bridging layer, ranked by its patching effect."""

    site: str
    lost_top1: float
    delta_logit_diff: float
    top_words: list[str] = field(default_factory=list)  # words it typically writes (logit lens)
    query_word_lift: float | None = None  # own-query minus shuffled-query word overlap of its top writes
    example_query: str | None = None
    example_attends: list[str] = field(default_factory=list)  # query tokens it attends to (example query)
    example_writes: list[str] = field(default_factory=list)  # words it writes (example query)


@dataclass
class AttributionSummary:
    """Attribution patching against exact patching on the same sites and queries."""

    metric: str
    spearman: float  # rank correlation of attribution scores with the exact change of the metric
    spearman_components: float  # the same over component-level sites only
    seconds: float


@dataclass
class Timings:
    """Where the localization's wall time went (seconds)."""

    total: float = 0.0
    encode: float = 0.0
    sweep: float = 0.0
    sweep_forwards: int = 0
    attribution: float = 0.0
    lens: float = 0.0
    circuit: float = 0.0


@dataclass
class Circuit:
    """Localization result of one GenIR model: per-site effects, stages, bridging heads, minimal circuit."""

    fingerprint: str
    arch: str
    n_layers: int
    n_heads: int
    post_ln: bool
    settings: CircuitSettings
    clean: PatchStats
    effects: list[SiteEffect]
    stages: Stages
    interaction_mlps: list[int]
    bridging_heads: list[BridgingHead]
    minimal: MinimalCircuit | None = None
    attribution: AttributionSummary | None = None
    lens: LensResult | None = None
    timings: Timings = field(default_factory=Timings)
    model_name: str = ""
    schema: str = SCHEMA_NAME
    schema_version: int = SCHEMA_VERSION

    # --- queries ----------------------------------------------------------------------------------
    def effect(self, site: Site | str) -> SiteEffect:
        """The patching effect of one site (KeyError if it was not measured)."""
        key = str(site)
        for e in self.effects:
            if e.site == key:
                return e
        raise KeyError(f"site {key} not in this circuit's effects")

    def ranked(self, heads: bool | None = None) -> list[SiteEffect]:
        """Effects sorted by importance; heads=True only heads, False only components, None both."""
        chosen = [e for e in self.effects if heads is None or (Site.parse(e.site).head is not None) == heads]
        return sorted(chosen, key=lambda e: e.key, reverse=True)

    def check_model(self, model: Any) -> None:
        """Raise CircuitMismatchError unless `model` (a GenIRModel) is this circuit's model, or that model edited.

        An edited model stays covered through its journal: the circuit may be of any model the journal passed through.
        """
        fp = model.fingerprint()
        journal = getattr(model, "journal", None)
        lineage = {fp} | ({journal.base_fingerprint} | {e.fingerprint_after for e in journal.entries} if journal is not None else set())
        if self.fingerprint in lineage:
            if fp != self.fingerprint:
                log.info("model %s is circuit model %s after %d journalled edits", fp, self.fingerprint, len(model.journal))
            return
        raise CircuitMismatchError(
            f"this circuit was computed on model {self.fingerprint} ({self.arch}, {self.n_layers} decoder layers) "
            f"but the given model is {fp} ({model.cmap.arch}, {model.cmap.n_layers} layers); weights or docids differ "
            f"- re-run localization on this model"
        )

    def editing_targets(self, select: str = "auto", *, frac: float = 0.25) -> list[Site]:
        """Where edits go: cross-attention and/or MLP components of the bridging and interaction layers, by effect.

        select='auto' keeps every such component whose effect (share of rank-1 queries lost when it is patched)
        is at least `frac` x the largest; 'mlp' / 'cross_attn' keep only that kind (the best layers of it);
        'both' keeps both kinds from the auto rule, at least one of each. Sites are ordered bottom-up.
        """
        if select not in EDIT_SELECTIONS:
            raise ValueError(f"unknown editing-target selection {select!r}; choose from {EDIT_SELECTIONS}")
        layers = sorted(set(self.stages.bridging) | set(self.stages.interaction)) or [self.n_layers - 1]
        kinds = ("cross_attn", "mlp") if select in ("auto", "both") else (select,)
        scored = []
        for layer in layers:
            for kind in kinds:
                try:
                    e = self.effect(Site(layer, kind))  # type: ignore[arg-type]
                except KeyError:
                    continue
                scored.append((e.lost_top1, e.delta_logit_diff, Site(layer, kind)))  # type: ignore[arg-type]
        if not scored:
            raise ValueError("the circuit measured no cross-attention or MLP effect in its bridging/interaction layers")
        top = max(s[0] for s in scored)
        keep = [s for s in scored if s[0] >= frac * top and s[0] > 0] or [max(scored, key=lambda s: (s[0], s[1]))]
        if select == "both":
            for kind in ("cross_attn", "mlp"):
                if not any(s[2].component == kind for s in keep):
                    keep.append(max((s for s in scored if s[2].component == kind), key=lambda s: (s[0], s[1])))
        return sorted((s[2] for s in keep), key=lambda site: (site.layer, site.component))

    def differences(self, other: "Circuit", *, tol: float = 1e-5) -> list[str]:
        """What differs from `other` beyond wall times: one line per field path (floats compared to `tol`)."""
        return _diff(_comparable(self), _comparable(other), "", tol)

    # --- persistence ------------------------------------------------------------------------------
    def to_json(self) -> str:
        """The artifact as JSON text."""
        return json.dumps(_plain(dataclasses.asdict(self)), indent=1)

    def save(self, path: str | Path) -> Path:
        """Write the artifact as JSON (parent folders created)."""
        return atomic_write(path, self.to_json())

    @classmethod
    def from_json(cls, text: str) -> "Circuit":
        """Parse an artifact written by to_json (schema checked)."""
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("schema") != SCHEMA_NAME:
            raise ValueError(f"not a genedit circuit artifact (schema {data.get('schema') if isinstance(data, dict) else None!r})")
        version = data.get("schema_version")
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise ValueError(f"circuit schema version {version} is newer than this genedit supports ({SCHEMA_VERSION}); upgrade genedit")
        try:
            return _build(cls, data)
        except (TypeError, AttributeError, KeyError, IndexError) as exc:
            raise ValueError(f"malformed circuit artifact: {exc}") from None

    @classmethod
    def load(cls, path: str | Path, model: Any = None) -> "Circuit":
        """Read an artifact; with `model`, also check it was computed on that exact model (fingerprint)."""
        path = Path(path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no circuit artifact there") from None
        try:
            circuit = cls.from_json(text)
        except ValueError as exc:  # also invalid JSON
            raise ValueError(f"{path}: {exc}") from None
        if model is not None:
            circuit.check_model(model)
        return circuit


def _comparable(circuit: Circuit) -> dict:
    """The artifact as plain data without its wall times (they differ on every run)."""
    data = _plain(dataclasses.asdict(circuit))
    data.pop("timings", None)
    if data.get("attribution"):
        data["attribution"].pop("seconds", None)
    return data


def _diff(a: Any, b: Any, path: str, tol: float) -> list[str]:
    """Paths where two plain-data trees differ; numbers within `tol` (absolute or relative) count as equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in a or key not in b:
                out.append(f"{sub}: only in {'this' if key in a else 'other'} circuit")
            else:
                out += _diff(a[key], b[key], sub, tol)
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} vs {len(b)} entries"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _diff(x, y, f"{path}[{i}]", tol)]
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        return [] if abs(a - b) <= tol * max(1.0, abs(a), abs(b)) else [f"{path}: {a!r} vs {b!r}"]
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


def _plain(x: Any) -> Any:
    """JSON-safe copy: NaN/inf floats become None."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def _build(tp: Any, value: Any) -> Any:
    """Rebuild a value of type `tp` (dataclass, list, optional, primitive) from its JSON form."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return float("nan") if args == [float] else None
        return _build(args[0], value)
    if value is None:
        return float("nan") if tp is float else None
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise TypeError(f"{tp.__name__}: expected an object, got {type(value).__name__}")
        required = [f.name for f in dataclasses.fields(tp) if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        missing = [name for name in required if name not in value]
        if missing:
            raise TypeError(f"{tp.__name__} lacks {', '.join(missing)}")
        hints = typing.get_type_hints(tp)
        kwargs = {f.name: _build(hints[f.name], value[f.name]) for f in dataclasses.fields(tp) if f.name in value}
        return tp(**kwargs)
    if origin is list:
        (inner,) = typing.get_args(tp)
        return [_build(inner, v) for v in value]
    if tp is float:
        return float(value)
    return value
