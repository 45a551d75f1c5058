"""The editing benchmark: run the protocols on a collection, judge every method against base, oracle and baselines.

`run_bench(BenchConfig(...))` validates everything first (unknown protocol or method, a fraction outside
(0, 0.5], data without test queries, an output folder that holds something else: ValueError / DataError /
FileExistsError before anything is written), then per protocol
1. carves the seeded split (benchmarks.protocols), trains or reuses the base and oracle models (benchmarks.oracle);
2. ranks every query set with the unedited base and the oracle;
3. per method: edits a copy of the base with genedit.edit's Editor, timing the edit and sampling peak memory,
   then ranks the same query sets (sequential: after every `every` edits);
4. fits the baselines (dense MiniLM + faiss, TF-IDF, BM25) on the corpus after the edits;
and writes OUT/results.json, OUT/results.md and OUT/*.png (benchmarks.results) after each protocol.
Launched on several processes (`accelerate launch --multi_gpu --num_processes N -m genedit bench ...` or torchrun),
every process first trains the base and oracle models of all protocols together (data parallel, the main process
saves them); then the main process runs the protocols alone and the others return.

Row keys (results.json, one row per system; absent when a measure does not apply):
- edited: Hits@1/5/10, MRR@10 on the held-out queries of the added / updated documents (generalisation)
- efficacy: the same on the pseudo-queries an edit may use (title and sentences of the new text)
- retained / retained_train: on the test / training queries of documents no edit touched
- lost_top1: queries of untouched documents (test + train) whose rank 1 the system lost against the base
- stale (update): the old queries of updated documents, still judged against them (lower = forgot the old text)
- deleted_returned (delete, sequential): queries whose top 10 holds a deleted document (must be 0)
- oracle_agreement: share of the deleted documents' queries with the same rank 1 as the retrain-without oracle;
  oracle_agreement_old: the same on the untouched documents' queries (how much two trainings agree anyway)
- resurrection: Hits@10 of the deleted documents' queries after putting their old rows back into the model
- seconds (the editor's own timing of the edits), ms_per_doc, retrain_ratio (seconds / oracle training seconds),
  wall_seconds (the edit calls, journalling and fingerprinting included), peak_mb, peak_growth_mb, changed_params
"""

from __future__ import annotations

import copy
import logging
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import genedit
from benchmarks import measures as M
from benchmarks.oracle import CachedModel, ModelCache
from benchmarks.protocols import PROTOCOLS, EditOp, Pairs, Split, SplitSpec, efficacy_pairs, make_split
from genedit.data import load_collection
from genedit.data.types import Collection, Query
from genedit.eval.types import Run
from genedit.train.trainer import TrainConfig

log = logging.getLogger(__name__)

SCHEMA = "genedit-bench/1"
BASELINES: tuple[str, ...] = ("dense", "tfidf", "bm25")
BASELINE_LABELS = {"dense": "dense MiniLM + faiss", "tfidf": "TF-IDF", "bm25": "BM25 (bm25s)"}
ANCHOR = "row"  # always runs: each edit is judged against the better of it and the oracle
OPS = ("add", "delete", "update")
OUTPUT_NAMES = {"results.json", "results.md", "models", "data"}
LABELS = {
    "add": ("add-base", "full"),
    "delete": ("full", "delete-oracle"),
    "update": ("update-base", "update-oracle"),
    "sequential": ("sequential-base", "sequential-oracle"),
}


@dataclass
class BenchConfig:
    """What `genedit bench` runs."""

    data: str
    out: Path
    protocols: list[str] = field(default_factory=lambda: list(PROTOCOLS))
    methods: list[str] | None = None  # None: every method registered for the protocol's op (sequential: row + defaults)
    base: str = "minilm"
    seed: int = 0
    fraction: float | None = None  # None: each protocol's default
    n_edits: int = 1000
    every: int = 100
    epochs: int = TrainConfig.max_epochs
    baselines: tuple[str, ...] = BASELINES
    k: int = 10
    recipe: str = "default"  # training recipe of base and oracle (TrainConfig.recipe): default | dsi

    def train_config(self) -> TrainConfig:
        """The training recipe of every base and oracle model."""
        return TrainConfig.recipe(self.recipe, seed=self.seed, max_epochs=self.epochs)

    def spec(self, protocol: str) -> SplitSpec:
        """The split spec of one protocol."""
        return SplitSpec(protocol, seed=self.seed, fraction=self.fraction, n_edits=self.n_edits, every=self.every)


# --- the editing API (genedit.edit), behind one function so that it is imported lazily -------------------
def editing_api() -> tuple[type, Callable[[str], list[str]]]:
    """(Editor, methods_for) of genedit.edit."""
    from genedit.edit import Editor, methods_for

    return Editor, methods_for


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
    import json

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
    """A validated benchmark: the collection, the splits and the methods per protocol."""

    config: BenchConfig
    collection: Collection
    splits: dict[str, Split]
    methods: dict[str, list[str]]
    skipped: dict[str, dict[str, str]]


def plan(config: BenchConfig) -> Plan:
    """Validate the whole configuration and carve every split; raises before anything is written."""
    from genedit.baselines import baseline_names

    check_output_folder(Path(config.out))
    config.train_config()  # ValueError for an unknown recipe
    if config.fraction is not None and not 0.0 < config.fraction <= 0.5:
        raise ValueError(f"--fraction must be in (0, 0.5], got {config.fraction}")
    unknown_baselines = [b for b in config.baselines if b not in baseline_names()]
    if unknown_baselines:
        raise ValueError(f"unknown baseline {', '.join(unknown_baselines)}; known: {', '.join(baseline_names())}")
    for protocol in config.protocols:
        config.spec(protocol).validate()
    _, methods_for = editing_api()
    available = {op: list(methods_for(op)) for op in OPS}
    known = sorted({m for ms in available.values() for m in ms})
    if config.methods is not None:
        bad = [m for m in config.methods if split_variant(m)[0] not in known]
        if bad or not config.methods:
            raise ValueError(f"unknown method {', '.join(bad) or '(none given)'}; known methods: {', '.join(known)}")
        for m in config.methods:
            split_variant(m)  # ValueError for an unknown target selection
    collection = load_collection(config.data)
    splits = {p: make_split(collection, config.spec(p)) for p in config.protocols}
    methods: dict[str, list[str]] = {}
    skipped: dict[str, dict[str, str]] = {}
    for protocol in config.protocols:
        if protocol == "sequential":
            wanted = config.methods or [ANCHOR, available["add"][0]]
            chosen = [m for m in dict.fromkeys([ANCHOR, *wanted]) if split_variant(m)[0] in available["add"] + available["update"]]
            skipped[protocol] = {m: "adds and updates only in a stream" for m in wanted if m not in chosen}
        else:
            wanted = config.methods or available[protocol]
            chosen = [m for m in dict.fromkeys([ANCHOR, *wanted]) if split_variant(m)[0] in available[protocol]]
            skipped[protocol] = {m: f"not available for {protocol}" for m in wanted if m not in chosen}
        methods[protocol] = chosen
    return Plan(config, collection, splits, methods, skipped)


# --- ranking helpers --------------------------------------------------------------------------------
def _universe(sets: dict[str, Pairs]) -> list[Query]:
    seen: dict[str, Query] = {}
    for pairs in sets.values():
        for q, _ in pairs:
            seen.setdefault(q.id, q)
    return list(seen.values())


class Ranker:
    """Ranks query sets with many models that share one frozen encoder: encoder states are computed once.

    The trainer never changes the encoder and edits work on the decoder and the docid rows, so the base, the
    oracle and every edited model usually have the same encoder; a hash of its weights decides (a method that
    touched it gets its own states). Scoring over the cached states is one decoder step per query.
    """

    def __init__(self, k: int, keep: int = 2) -> None:
        self.k = k
        self.keep = keep
        self._states: dict[tuple[str, str], object] = {}
        self._fingerprints: dict[int, tuple[int, str]] = {}

    @staticmethod
    def encoder_fingerprint(model) -> str:
        """Hash of the encoder's weights."""
        import hashlib

        h = hashlib.sha256()
        for name, tensor in sorted(model.hf.get_encoder().state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().to("cpu").contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    def rank(self, model, sets: dict[str, Pairs], desc: str) -> Run:
        """Top-k documents for every query of the sets."""
        import hashlib

        import torch

        queries = sorted(_universe(sets), key=lambda q: (len(q.text), q.id))  # similar lengths side by side: less padding
        if not queries:
            return Run({}, {})
        log.info("%s: ranking %d queries", desc, len(queries))
        ids = hashlib.sha256("\n".join(f"{q.id}\t{q.text}" for q in queries).encode()).hexdigest()
        key = (self.encoder_fingerprint(model), ids)
        enc = self._states.get(key)
        if enc is None:
            enc = model.encode([q.text for q in queries], progress=True)
            self._states[key] = enc
            while len(self._states) > self.keep:
                self._states.pop(next(iter(self._states)))
        kk = min(self.k, model.n_docs)
        ranking: dict[str, list[str]] = {}
        scores: dict[str, list[float]] = {}
        with torch.no_grad():
            for start in range(0, len(queries), 256):
                top = model.scores(enc.select(slice(start, start + 256))).topk(kk, dim=-1)
                for q, idx, val in zip(queries[start : start + 256], top.indices.tolist(), top.values.tolist()):
                    ranking[q.id] = [model.docids[i] for i in idx]
                    scores[q.id] = val
        return Run(ranking, scores, name=model.meta.get("name", "genir"))


def _quality(run: Run, sets: dict[str, Pairs], base_run: Run | None) -> dict:
    row: dict = {}
    for name in ("edited", "efficacy", "retained", "retained_train", "stale"):
        if name in sets:
            row[name] = M.set_measures(run, sets[name])
    if base_run is not None:
        old = sets.get("retained", []) + sets.get("retained_train", [])
        lost = M.lost_top1(base_run, run, old)
        row["lost_top1"] = len(lost)
        row["gained_top1"] = M.gained_top1(base_run, run, old)
        row["lost_top1_examples"] = [asdict(x) for x in lost[:5]]
    return row


def _cost(seconds: float, n_docs: int, oracle_seconds: float) -> dict:
    return {
        "seconds": round(seconds, 3),
        "ms_per_doc": round(1000 * seconds / max(n_docs, 1), 2),
        "retrain_ratio": round(seconds / oracle_seconds, 5) if oracle_seconds else None,
    }


# --- edits --------------------------------------------------------------------------------------------
@dataclass
class EditOutcome:
    """An edited model and what the edits cost."""

    model: object
    seconds: float  # wall time of the edit calls (validation, journalling and fingerprinting included)
    edit_seconds: float  # sum of the editor's own timings of the edits themselves
    peak_mb: float
    peak_growth_mb: float
    changed_params: int
    weight_norm: float
    n_edits: int
    sites: list[str] = field(default_factory=list)  # the linears circuit methods edited (empty for row-only methods)


def _method_for(method: str, op: str, available: dict[str, list[str]]) -> str:
    """The method a stream uses for an op: itself if it can, else for deletes the row-only `mask`, else the op's default."""
    if method in available[op]:
        return method
    if op == "delete" and "mask" in available[op]:
        return "mask"
    return available[op][0]


def _apply(editor, op: EditOp, method: str) -> object:
    if op.op == "add":
        return editor.add(list(op.docs), method=method)
    if op.op == "update":
        return editor.update(list(op.docs), method=method)
    return editor.delete(list(op.ids), method=method)


# --- protocols ---------------------------------------------------------------------------------------------
class Bench:
    """Runs a validated plan."""

    def __init__(self, the_plan: Plan, on_protocol: Callable[[dict], None] | None = None, command: str = "") -> None:
        self.plan = the_plan
        self.command = command or " ".join(sys.argv)
        self.config = the_plan.config
        self.out = Path(self.config.out)
        self.cache = ModelCache(self.out, self.config.base, self.config.train_config())
        self.Editor, methods_for = editing_api()
        self.available = {op: list(methods_for(op)) for op in OPS}
        self.on_protocol = on_protocol
        self.models: dict[str, dict] = {}
        self.ranker = Ranker(self.config.k)
        self.circuits: dict[Path, object] = {}
        self.trained: dict[tuple[str, int], CachedModel] = {}  # models trained before the protocols (several processes)

    def run(self) -> dict | None:
        """Every protocol of the plan; returns the results document (also written by on_protocol), None off the main process."""
        import torch

        from genedit.train.trainer import processes

        with processes(torch.get_default_device()) as state:  # base_model builds on torch's default device
            if state.num_processes > 1:
                for protocol, split in self.plan.splits.items():  # the part worth sharing: training, all processes together
                    for collection, label in zip((split.base, split.final), LABELS[protocol]):
                        self.trained[(label, id(collection))] = self.cache.get(collection, label)
                if not state.is_main_process:
                    return None
        doc = self._header()
        for protocol, split in self.plan.splits.items():
            t = time.monotonic()
            section = self._protocol(protocol, split)
            section["wall_seconds"] = round(time.monotonic() - t, 1)
            doc["protocols"][protocol] = section
            doc["models"] = self.models
            if self.on_protocol is not None:
                self.on_protocol(doc)
        return doc

    def _header(self) -> dict:
        from benchmarks.protocols import collection_hash

        return {
            "schema": SCHEMA,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": self.command,
            "data": {"spec": str(self.config.data), "name": self.plan.collection.name, "n_docs": len(self.plan.collection.documents),
                     "hash": collection_hash(self.plan.collection)[:16]},
            "config": {**{k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self.config).items()}, "train": asdict(self.config.train_config())},
            "seeds": {"split": self.config.seed, "train": self.config.seed},
            "versions": _versions(),
            "machine": {"python": platform.python_version(), "platform": platform.platform(), "threads": _threads()},
            "models": {},
            "protocols": {},
        }

    def _model(self, collection: Collection, label: str) -> CachedModel:
        cached = self.trained.pop((label, id(collection)), None) or self.cache.get(collection, label)
        self.models[cached.path.name] = cached.describe(self.out)
        return cached

    def _protocol(self, protocol: str, split: Split) -> dict:
        base_label, oracle_label = LABELS[protocol]
        base = self._model(split.base, base_label)
        oracle = self._model(split.final, oracle_label)
        sets = dict(split.sets)
        new_docs = [d for op in split.ops if op.op != "delete" for d in op.docs]
        if new_docs:
            sets["efficacy"] = self._efficacy(base, split, new_docs)
        n_edited = sum(len(op.doc_ids) for op in split.ops)
        deleted = [d for op in split.ops if op.op == "delete" for d in op.ids]
        base_run = self.ranker.rank(base.model, sets, f"{protocol}: base")
        oracle_run = self.ranker.rank(oracle.model, sets, f"{protocol}: oracle")
        base_rows = base.model.docid_rows().detach().clone()
        deleted_rows = base_rows[[base.model.doc_index(d) for d in deleted]] if deleted else None

        def delete_measures(model, run: Run) -> dict:
            if not deleted:
                return {}
            old = sets.get("retained", []) + sets.get("retained_train", [])
            out = {"deleted_returned": M.returned(run, _all_pairs(sets), deleted),
                   "oracle_agreement": M.top1_agreement(run, oracle_run, sets["deleted"]),
                   # how often two trainings agree anyway: the scale oracle_agreement is read on
                   "oracle_agreement_old": M.top1_agreement(run, oracle_run, old)}
            probe = M.restore_rows(model, deleted, deleted_rows)
            res = M.set_measures(self.ranker.rank(probe, {"deleted": sets["deleted"]}, "resurrection"), sets["deleted"])
            out["resurrection"] = res["hits@10"] if res else None
            del probe
            return out

        rows = []
        base_row = {"system": "base (unedited)", "kind": "base", "model": base.path.name, **_quality(base_run, sets, None),
                    **delete_measures(base.model, base_run)}  # before the delete: what the deleted documents' queries found
        rows.append(base_row)
        oracle_row = {"system": "oracle (retrain)", "kind": "oracle", "model": oracle.path.name, **_quality(oracle_run, sets, base_run),
                      **delete_measures(oracle.model, oracle_run), **_cost(oracle.train_seconds, n_edited, oracle.train_seconds)}
        rows.append(oracle_row)
        curves: dict[str, list[dict]] = {}
        for method in self.plan.methods[protocol]:
            log.info("%s: method %s", protocol, method)
            try:
                outcome, checkpoints = self._edit(protocol, method, split, base, base_run, sets)
            except Exception as exc:  # one failing method must not lose an hour of measurements
                log.exception("%s: method %s failed", protocol, method)
                rows.append({"system": method, "kind": "edit", "method": split_variant(method)[0], "error": f"{type(exc).__name__}: {exc}"})
                continue
            run = self.ranker.rank(outcome.model, sets, f"{protocol}: {method}")
            name, targets = split_variant(method)
            row = {"system": method, "kind": "edit", "method": name, **({"targets": targets} if targets else {}), "sites": outcome.sites,
                   **_quality(run, sets, base_run), **delete_measures(outcome.model, run),
                   **_cost(outcome.edit_seconds, n_edited, oracle.train_seconds),
                   "wall_seconds": round(outcome.seconds, 3), "peak_mb": round(outcome.peak_mb, 1),
                   "peak_growth_mb": round(outcome.peak_growth_mb, 1), "changed_params": outcome.changed_params,
                   "weight_norm": outcome.weight_norm, "n_edits": outcome.n_edits}
            if protocol == "sequential":
                row["methods_used"] = {op: _method_for(name, op, self.available) for op in OPS}
                curves[method] = checkpoints
                row.update(_continual_summary(checkpoints))
            rows.append(row)
            del outcome
        for name in self.config.baselines:
            rows.append(self._baseline(name, split, sets, base_run, n_edited, oracle.train_seconds, deleted))
        section = {
            "split": split.summary(),
            "base_model": base.path.name,
            "oracle_model": oracle.path.name,
            "methods": self.plan.methods[protocol],
            "skipped": self.plan.skipped.get(protocol, {}),
            "rows": rows,
            "reference": _reference(rows),
        }
        if protocol == "sequential":
            section["curves"] = curves
        return section

    def _edit(self, protocol: str, method: str, split: Split, base: CachedModel, base_run: Run, sets: dict[str, Pairs]) -> tuple[EditOutcome, list[dict]]:
        from tqdm.auto import tqdm

        from genedit.edit.context import EditSettings

        method, targets = split_variant(method)
        model = copy.deepcopy(base.model)
        circuit = self._circuit(base, split)
        options = {"fingerprints": False} if protocol == "sequential" else {}  # hashing the weights: ~0.3 s an edit
        if targets is not None:
            options["settings"] = EditSettings(targets=targets)
        editor = self.Editor(model, corpus=split.base, history=False, **options, **({"circuit": circuit} if circuit is not None else {}))
        checkpoints: list[dict] = []
        entries = []
        clock = M.Stopwatch()
        deleted: list[str] = []
        with M.PeakMemory() as memory:
            if protocol != "sequential":
                with clock:
                    entries.append(_apply(editor, split.ops[0], method))
            else:
                every = split.spec.every
                checkpoints.append({"edits": 0, "seconds": 0.0, "weight_norm": 0.0, **_checkpoint_quality(base_run, sets, split, 0, base_run, [])})
                for n, op in enumerate(tqdm(split.ops, desc=f"sequential {method}"), start=1):
                    with clock:
                        entries.append(_apply(editor, op, _method_for(method, op.op, self.available)))
                    deleted += list(op.ids)
                    if n % every == 0 or n == len(split.ops):
                        ck = {"edits": n, "seconds": round(clock.seconds, 3), "weight_norm": _norm(entries[-1]),
                              **_checkpoint_quality(None, sets, split, n, base_run, deleted, model=model, ranker=self.ranker)}
                        checkpoints.append(ck)
        outcome = EditOutcome(
            model=model,
            seconds=clock.seconds,
            edit_seconds=sum(float(getattr(e, "seconds", 0.0) or 0.0) for e in entries),
            peak_mb=memory.peak_mb,
            peak_growth_mb=memory.growth_mb,
            changed_params=_changed(entries),
            weight_norm=_norm(entries[-1]) if entries else 0.0,
            n_edits=len(entries),
            sites=[str(t) for t in editor.targets] if _uses_circuit(method) else [],
        )
        return outcome, checkpoints

    def _efficacy(self, base: CachedModel, split: Split, docs: list) -> Pairs:
        """The queries an edit of these documents trains on: the editor's own pseudo-queries, else title and sentences."""
        try:
            probe = self.Editor(base.model, corpus=split.base, history=False)
            texts = probe.ctx.queries_for(docs)
        except AttributeError:
            return efficacy_pairs(docs)
        return [(Query(f"pq:{d.id}:{i}", t), {d.id}) for d, ts in zip(docs, texts) for i, t in enumerate(ts)]

    def _circuit(self, base: CachedModel, split: Split) -> object | None:
        """The base model's circuit, localized once (by the editor's own rule) and kept beside the cached model."""
        if base.path in self.circuits:
            return self.circuits[base.path]
        circuit = None
        if isinstance(getattr(self.Editor, "circuit", None), property):
            from circuits import Circuit

            path = base.path / "circuit.json"
            t = time.monotonic()
            if path.exists():
                circuit = Circuit.load(path)
            else:
                circuit = self.Editor(base.model, corpus=split.base, history=False).circuit  # no edit: only finds or localizes
                circuit.save(path)
            self.models[base.path.name]["circuit_seconds"] = round(time.monotonic() - t, 1)
        self.circuits[base.path] = circuit
        return circuit

    def _baseline(self, name: str, split: Split, sets: dict[str, Pairs], base_run: Run, n_edited: int, oracle_seconds: float, deleted: list[str]) -> dict:
        from genedit.baselines import make_baseline

        label = BASELINE_LABELS.get(name, name)
        try:
            retriever = make_baseline(name)
            t = time.perf_counter()
            retriever.fit(split.final)  # a lexical or dense index is rebuilt on the corpus after the edits
            seconds = time.perf_counter() - t
            run = retriever.search(_universe(sets), k=self.config.k)
        except Exception as exc:
            log.exception("baseline %s failed", name)
            return {"system": label, "kind": "baseline", "error": f"{type(exc).__name__}: {exc}"}
        row = {"system": label, "kind": "baseline", "baseline": name, **_quality(run, sets, base_run), **_cost(seconds, n_edited, oracle_seconds)}
        if deleted:
            row["deleted_returned"] = M.returned(run, list({q.id: (q, r) for pairs in sets.values() for q, r in pairs}.values()), deleted)
        return row


def _checkpoint_quality(run: Run | None, sets: dict[str, Pairs], split: Split, n: int, base_run: Run, deleted: list[str], *, model=None, ranker: Ranker | None = None) -> dict:
    """Measures of a sequential stream after its first n edits (run given, or ranked here with `model`)."""
    every = split.spec.every
    done = (n + every - 1) // every  # chunks completed or started
    chunk_sets = split.chunks[:done]
    last = split.ops[max(0, (done - 1) * every) : n] if n else []
    last_docs = {d.id for op in last if op.op != "delete" for d in op.docs}
    own = {
        "retained": sets["retained"],
        "retained_train": sets["retained_train"],
        "efficacy": [(q, r) for q, r in sets.get("efficacy", []) if r & last_docs],
        "deleted": [(q, r) for q, r in sets.get("deleted", []) if r & set(deleted)],
    }
    for i, pairs in enumerate(chunk_sets, start=1):
        own[f"chunk{i}"] = pairs
    if run is None:
        run = ranker.rank(model, sets, f"sequential: checkpoint {n}")  # the whole stream's queries: encoder states cached once
    out = {
        "retained": M.set_measures(run, own["retained"]),
        "retained_train": M.set_measures(run, own["retained_train"]),
        "edited": M.set_measures(run, [p for pairs in chunk_sets for p in pairs]),
        "efficacy": M.set_measures(run, own["efficacy"]),
        "lost_top1": len(M.lost_top1(base_run, run, own["retained"] + own["retained_train"])),
        "deleted_returned": M.returned(run, _all_pairs(own), deleted) if deleted else 0,
        "tasks": [_h10(run, own["retained"])] + [_h10(run, pairs) for pairs in chunk_sets],
    }
    return out


def _all_pairs(sets: dict[str, Pairs]) -> Pairs:
    return list({q.id: (q, r) for pairs in sets.values() for q, r in pairs}.values())


def _h10(run: Run, pairs: Pairs) -> float | None:
    m = M.set_measures(run, pairs)
    return m["hits@10"] if m else None


def _continual_summary(checkpoints: list[dict]) -> dict:
    """AP / forgetting / LA at every checkpoint (written into it) and at the end; checkpoint t holds tasks 0..t."""
    if not checkpoints:
        return {}
    c = M.continual([ck["tasks"] for ck in checkpoints])
    for ck, ap, fg, la in zip(checkpoints, c.ap, c.forgetting, c.la):
        ck["ap"], ck["forgetting"], ck["la"] = ap, fg, la
    return {"ap": c.ap[-1], "forgetting": c.forgetting[-1], "la": c.la[-1]}


def _reference(rows: list[dict]) -> dict:
    """Per measure of `edited` and `efficacy`: the better of the oracle and the row method (what edits are judged against)."""
    oracle = next((r for r in rows if r.get("kind") == "oracle"), {})
    anchor = next((r for r in rows if r.get("method") == ANCHOR and "error" not in r), {})
    ref: dict = {}
    for key in ("edited", "efficacy"):
        a, b = oracle.get(key), anchor.get(key)
        if a or b:
            ref[key] = {m: max(v for v in ((a or {}).get(m), (b or {}).get(m)) if v is not None) for m in (a or b)}
    return ref


def _uses_circuit(method: str) -> bool:
    from genedit.edit.methods import method_class

    return method_class(method).uses_circuit


def _changed(entries: list) -> int:
    return int(sum(int(getattr(e, "changed_params", 0) or 0) for e in entries))


def _norm(entry) -> float:
    value = getattr(entry, "weight_norm", 0.0) if entry is not None else 0.0
    return round(float(value or 0.0), 6)


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def _versions() -> dict:
    from importlib import metadata

    out = {"genedit": genedit.__version__}
    for name in ("torch", "transformers", "bm25s", "faiss-cpu", "scikit-learn", "numpy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def run_bench(config: BenchConfig, *, write: bool = True, command: str = "") -> dict | None:
    """Validate, run every protocol and (with write) keep OUT/results.json, results.md and plots up to date.

    Launched on several processes, they train the models together and the main process alone runs the protocols: it
    returns the results, the others None.
    """
    from benchmarks.results import write_results

    the_plan = plan(config)
    out = Path(config.out)
    bench = Bench(the_plan, on_protocol=(lambda doc: write_results(doc, out)) if write else None, command=command)
    return bench.run()
