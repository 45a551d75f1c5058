"""What `genedit bench` runs (BenchConfig) and its validated plan: splits and methods per protocol, checked before anything is written."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from benchmarks.protocols import PROTOCOLS, Split, SplitSpec, make_split, protocol, resolve
from benchmarks.protocols.sequential import max_edits
from genedit.data import load_collection
from genedit.data.types import Collection
from genedit.edit import OPS, methods_for
from genedit.model.device import resolve_device, resolve_dtype
from genedit.train.trainer import TrainConfig

BASELINES: tuple[str, ...] = ("dense", "tfidf", "bm25")
ANCHOR = "row"  # always runs: each edit is judged against the better of it and the oracle
OUTPUT_NAMES = {"results.json", "results.md", "models", "data"}
DEFAULT_EDITS = 1000  # a stream's length unless told (fewer when the corpus cannot take it)
DEFAULT_EVERY = 100  # a stream is measured after every so many edits unless told (a tenth of a stream shortened to fit)


@dataclass
class BenchConfig:
    """What `genedit bench` runs."""

    data: str
    out: Path
    protocols: list[str] = field(default_factory=lambda: list(PROTOCOLS))
    methods: list[str] | None = None  # None: every method registered for the protocol's op (streams: row + the default add method)
    base: str = "minilm"
    seed: int = 0
    fraction: float | None = None  # None: each protocol's default
    n_edits: int | None = None  # streams; None: DEFAULT_EDITS, or as many as the corpus can take
    every: int | None = None  # streams; None: DEFAULT_EVERY, or a tenth of a stream shortened to fit the corpus
    epochs: int = TrainConfig.max_epochs
    baselines: tuple[str, ...] = BASELINES
    k: int = 10
    recipe: str = "default"  # training recipe of base and oracle (TrainConfig.recipe): default | dsi
    device: str = "cpu"  # where every model the bench trains, loads, ranks and edits lives: auto | cpu | cuda | cuda:N
    dtype: str | None = None  # weights of the models ranked and edited: float32 | bfloat16 (None: float32; training stays float32)

    def torch_device(self) -> torch.device:
        """The resolved device of every model of the run (ValueError when unusable, e.g. CUDA asked for where there is none)."""
        return resolve_device(self.device)

    def torch_dtype(self) -> torch.dtype | None:
        """The resolved dtype models are ranked and edited in (None: as trained, float32)."""
        return resolve_dtype(self.dtype)

    def train_config(self) -> TrainConfig:
        """The training recipe of every base and oracle model."""
        return TrainConfig.recipe(self.recipe, seed=self.seed, max_epochs=self.epochs)

    def spec(self, name: str) -> SplitSpec:
        """The split spec of one protocol (a stream's length and step as given, else the defaults)."""
        return SplitSpec(name, seed=self.seed, fraction=self.fraction, n_edits=self.n_edits or DEFAULT_EDITS, every=self.every or DEFAULT_EVERY)


def split_variant(system: str) -> tuple[str, str | None]:
    """'rank-one@mlp' -> ('rank-one', 'mlp'): a method run on one editing-target selection of the circuit."""
    from circuits.artifact import EDIT_SELECTIONS

    method, sep, targets = system.partition("@")
    if sep and targets not in EDIT_SELECTIONS:
        raise ValueError(f"unknown editing-target selection {targets!r} in {system!r}; choose from {', '.join(EDIT_SELECTIONS)}")
    return method, (targets if sep else None)


def parse_protocols(text: str) -> list[str]:
    """'all' or a comma-separated list of protocols; ValueError names the known ones."""
    names = [p.strip() for p in text.split(",") if p.strip()]
    if names == ["all"]:
        return list(PROTOCOLS)
    unknown = [p for p in names if p not in PROTOCOLS]
    if unknown or not names:
        raise ValueError(f"unknown protocol {', '.join(unknown) or repr(text)}; choose from {', '.join(PROTOCOLS)} or all")
    return names


def check_output_folder(out: Path) -> None:
    """FileExistsError unless `out` is absent, empty, or holds only an earlier bench run's files."""
    if not out.exists():
        return
    if not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a directory")
    foreign = [p.name for p in out.iterdir() if p.name not in OUTPUT_NAMES and not p.name.endswith(".png")]
    results = out / "results.json"
    if results.exists():
        try:
            schema = json.loads(results.read_text()).get("schema", "")
        except (OSError, ValueError, AttributeError):
            schema = ""
        if not str(schema).startswith("genedit-bench/"):
            foreign.append("results.json (not a genedit bench result)")
    if foreign:
        raise FileExistsError(f"{out} holds files that are not a genedit bench output ({', '.join(sorted(foreign)[:5])}); choose another --out")


@dataclass
class Plan:
    """A validated benchmark: the collection, the splits and the methods per protocol, and what was sized for the corpus."""

    config: BenchConfig
    collection: Collection
    splits: dict[str, Split]
    methods: dict[str, list[str]]
    skipped: dict[str, dict[str, str]]
    notes: list[str] = field(default_factory=list)  # defaults changed to fit the corpus (printed and in results.md)


def available_methods() -> dict[str, list[str]]:
    """The registered editing methods of every operation, the default first."""
    return {op: list(methods_for(op)) for op in OPS}


def fit_stream(config: BenchConfig, collection: Collection) -> tuple[BenchConfig, list[str]]:
    """The config with a default-length stream shortened to what the corpus can take, and a note saying so."""
    if config.n_edits is not None or not any(protocol(p).stream for p in config.protocols):
        return replace(config, n_edits=config.n_edits or DEFAULT_EDITS, every=config.every or DEFAULT_EVERY), []
    n = max_edits(len(collection.documents), DEFAULT_EDITS)
    if n == DEFAULT_EDITS:
        return replace(config, n_edits=n, every=config.every or DEFAULT_EVERY), []
    every = config.every or max(1, n // 10)
    fitted = replace(config, n_edits=n, every=every)
    return fitted, [f"a stream of {DEFAULT_EDITS:,} edits does not fit a corpus of {len(collection.documents):,} documents: "
                    f"the sequential protocol runs {n:,} edits, measured every {every} (--edits N to choose)"]


def plan(config: BenchConfig) -> Plan:
    """Validate the whole configuration and carve every split; raises before anything is written."""
    from genedit.baselines import baseline_names

    check_output_folder(Path(config.out))
    config.train_config()  # ValueError for an unknown recipe
    config.torch_device()  # ValueError for an unusable device or dtype
    config.torch_dtype()
    if config.fraction is not None and not 0.0 < config.fraction <= 0.5:
        raise ValueError(f"--fraction must be in (0, 0.5], got {config.fraction}")
    unknown_baselines = [b for b in config.baselines if b not in baseline_names()]
    if unknown_baselines:
        raise ValueError(f"unknown baseline {', '.join(unknown_baselines)}; known: {', '.join(baseline_names())}")
    for name in config.protocols:
        resolve(config.spec(name))
    available = available_methods()
    known = sorted({m for ms in available.values() for m in ms})
    if config.methods is not None:
        bad = [m for m in config.methods if split_variant(m)[0] not in known]
        if bad or not config.methods:
            raise ValueError(f"unknown method {', '.join(bad) or '(none given)'}; known methods: {', '.join(known)}")
        for m in config.methods:
            split_variant(m)  # ValueError for an unknown target selection
    collection = load_collection(config.data)
    config, notes = fit_stream(config, collection)
    splits = {p: make_split(collection, config.spec(p)) for p in config.protocols}
    methods: dict[str, list[str]] = {}
    skipped: dict[str, dict[str, str]] = {}
    for name in config.protocols:
        methods[name], skipped[name] = protocol(name).methods(config.methods, available, ANCHOR)
    return Plan(config, collection, splits, methods, skipped, notes)
