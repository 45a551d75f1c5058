"""The editing benchmark: run the protocols on a collection, judge every method against base, oracle and baselines.

`run_bench(BenchConfig(...))` validates everything first (unknown protocol or method, a fraction outside
(0, 0.5], data without test queries, an output folder that holds something else: ValueError / DataError /
FileExistsError before anything is written), then per protocol
1. carves the seeded split (benchmarks.plan, benchmarks.protocols), trains or reuses the base and oracle models
   (benchmarks.oracle);
2. ranks every query set with the unedited base and the oracle (benchmarks.ranking);
3. per method: edits a copy of the base with genedit.edit's Editor, timing the edit and sampling peak memory
   (benchmarks.editing), then ranks the same query sets (a stream: after every `every` edits);
4. fits the baselines (dense MiniLM + faiss, TF-IDF, BM25) on the corpus after the edits;
and writes OUT/results.json, OUT/results.md and OUT/*.png (benchmarks.results) after each protocol; a row per
system (benchmarks.rows). A method or baseline that raises becomes a row with its `error`: the run goes on, and
`failures(doc)` names them (`genedit bench` exits 1).
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

import logging
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import genedit
from benchmarks import judge
from benchmarks.editing import EditOutcome, edit, method_for
from benchmarks.oracle import CachedModel, ModelCache
from benchmarks.plan import ANCHOR, BenchConfig, Plan, available_methods, plan, split_variant
from benchmarks.protocols import PROTOCOLS, Pairs, Split, collection_hash
from benchmarks.ranking import Ranker, all_pairs, query_universe
from benchmarks.rows import DeleteJudge, continual_summary, cost, quality, reference
from circuits import Circuit
from genedit.data.types import Document, Query
from genedit.edit import OPS, Editor
from genedit.eval.types import Run

log = logging.getLogger(__name__)

SCHEMA = "genedit-bench/1"
BASELINE_LABELS = {"dense": "dense MiniLM + faiss", "tfidf": "TF-IDF", "bm25": "BM25 (bm25s)"}


class Bench:
    """Runs a validated plan."""

    def __init__(self, the_plan: Plan, on_protocol: Callable[[dict], None] | None = None, command: str = "") -> None:
        self.plan = the_plan
        self.command = command or " ".join(sys.argv)
        self.config = the_plan.config
        self.out = Path(self.config.out)
        self.device = self.config.torch_device()  # every model of the run lives here
        self.cache = ModelCache(self.out, self.config.base, self.config.train_config(), self.device, self.config.torch_dtype())
        self.available = available_methods()
        self.on_protocol = on_protocol
        self.models: dict[str, dict] = {}
        self.ranker = Ranker(self.config.k)
        self.circuits: dict[Path, Circuit] = {}
        self.trained: dict[tuple[str, int], CachedModel] = {}  # models trained before the protocols (several processes)

    def run(self) -> dict | None:
        """Every protocol of the plan; returns the results document (also written by on_protocol), None off the main process."""
        from genedit.train.trainer import processes

        with processes(self.device) as state:
            if state.num_processes > 1:
                for name, split in self.plan.splits.items():  # the part worth sharing: training, all processes together
                    for collection, label in zip((split.base, split.final), PROTOCOLS[name].labels):
                        self.trained[(label, id(collection))] = self.cache.get(collection, label)
                if not state.is_main_process:
                    return None
        doc = self._header()
        for name, split in self.plan.splits.items():
            t = time.monotonic()
            section = self._protocol(name, split)
            section["wall_seconds"] = round(time.monotonic() - t, 1)
            doc["protocols"][name] = section
            doc["models"] = self.models
            if self.on_protocol is not None:
                self.on_protocol(doc)
        return doc

    def _header(self) -> dict:
        doc = {
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
        if self.plan.notes:
            doc["notes"] = list(self.plan.notes)
        return doc

    def _model(self, collection: Any, label: str) -> CachedModel:
        cached = self.trained.pop((label, id(collection)), None) or self.cache.get(collection, label)
        self.models[cached.path.name] = cached.describe(self.out)
        return cached

    def _protocol(self, name: str, split: Split) -> dict:
        protocol = PROTOCOLS[name]
        base_label, oracle_label = protocol.labels
        base = self._model(split.base, base_label)
        oracle = self._model(split.final, oracle_label)
        sets = dict(split.sets)
        new_docs = [d for op in split.ops if op.op != "delete" for d in op.docs]
        if new_docs:
            sets["efficacy"] = self._efficacy(base, split, new_docs)
        n_edited = sum(len(op.doc_ids) for op in split.ops)
        deleted = [d for op in split.ops if op.op == "delete" for d in op.ids]
        base_run = self.ranker.rank(base.model, sets, f"{name}: base")
        oracle_run = self.ranker.rank(oracle.model, sets, f"{name}: oracle")
        base_rows = base.model.docid_rows().detach().clone()
        deleted_rows = base_rows[[base.model.doc_index(d) for d in deleted]] if deleted else None
        delete_measures = DeleteJudge(sets, deleted, oracle_run, deleted_rows, self.ranker)

        rows = []
        base_row = {"system": "base (unedited)", "kind": "base", "model": base.path.name, **quality(base_run, sets, None),
                    **delete_measures(base.model, base_run)}  # before the delete: what the deleted documents' queries found
        rows.append(base_row)
        oracle_row = {"system": "oracle (retrain)", "kind": "oracle", "model": oracle.path.name, **quality(oracle_run, sets, base_run),
                      **delete_measures(oracle.model, oracle_run), **cost(oracle.train_seconds, n_edited, oracle.train_seconds)}
        rows.append(oracle_row)
        curves: dict[str, list[dict]] = {}
        for system in self.plan.methods[name]:
            log.info("%s: method %s", name, system)
            method, targets = split_variant(system)
            try:
                circuit = self._circuit(base, split)
                outcome = edit(base.model, method, targets, split, circuit, stream=protocol.stream, available=self.available,
                               base_run=base_run, sets=sets, ranker=self.ranker)
            except Exception as exc:  # one failing method must not lose an hour of measurements (and is named at the end)
                log.exception("%s: method %s failed", name, system)
                rows.append({"system": system, "kind": "edit", "method": method, "error": f"{type(exc).__name__}: {exc}"})
                continue
            run = self.ranker.rank(outcome.model, sets, f"{name}: {system}")
            row = {"system": system, "kind": "edit", "method": method, **({"targets": targets} if targets else {}), "sites": outcome.sites,
                   **quality(run, sets, base_run), **delete_measures(outcome.model, run),
                   **cost(outcome.edit_seconds, n_edited, oracle.train_seconds), **_outcome_cells(outcome)}
            if protocol.stream:
                row["methods_used"] = {op: method_for(method, op, self.available) for op in OPS}
                curves[system] = outcome.checkpoints
                row.update(continual_summary(outcome.checkpoints))
            rows.append(row)
            del outcome
        for baseline in self.config.baselines:
            rows.append(self._baseline(baseline, split, sets, base_run, n_edited, oracle.train_seconds, deleted))
        section = {
            "split": split.summary(),
            "base_model": base.path.name,
            "oracle_model": oracle.path.name,
            "methods": self.plan.methods[name],
            "skipped": self.plan.skipped.get(name, {}),
            "rows": rows,
            "reference": reference(rows, ANCHOR),
        }
        if protocol.stream:
            section["curves"] = curves
        return section

    def _efficacy(self, base: CachedModel, split: Split, docs: list[Document]) -> Pairs:
        """The queries an edit of these documents trains on: the editor's own pseudo-queries."""
        texts = Editor(base.model, corpus=split.base, history=False).pseudo_queries(docs)
        return [(Query(f"pq:{d.id}:{i}", t), {d.id}) for d, ts in zip(docs, texts) for i, t in enumerate(ts)]

    def _circuit(self, base: CachedModel, split: Split) -> Circuit:
        """The base model's circuit, localized once (by the editor's own rule) and kept beside the cached model."""
        if base.path in self.circuits:
            return self.circuits[base.path]
        path = base.path / "circuit.json"
        t = time.monotonic()
        if path.exists():
            circuit = Circuit.load(path)
        else:
            circuit = Editor(base.model, corpus=split.base, history=False).circuit  # no edit: only finds or localizes
            circuit.save(path)
        self.models[base.path.name]["circuit_seconds"] = round(time.monotonic() - t, 1)
        self.circuits[base.path] = circuit
        return circuit

    def _baseline(self, name: str, split: Split, sets: dict[str, Pairs], base_run: Run, n_edited: int, oracle_seconds: float, deleted: list[str]) -> dict:
        from genedit.baselines import make_baseline

        label = BASELINE_LABELS.get(name, name)
        try:
            retriever = make_baseline(name, **({"device": self.device} if name.strip().lower() == "dense" else {}))  # the lexical ones run on the CPU
            t = time.perf_counter()
            retriever.fit(split.final)  # a lexical or dense index is rebuilt on the corpus after the edits
            seconds = time.perf_counter() - t
            run = retriever.search(query_universe(sets), k=self.config.k)
        except Exception as exc:  # named at the end like a failing method
            log.exception("baseline %s failed", name)
            return {"system": label, "kind": "baseline", "error": f"{type(exc).__name__}: {exc}"}
        row = {"system": label, "kind": "baseline", "baseline": name, **quality(run, sets, base_run), **cost(seconds, n_edited, oracle_seconds)}
        if deleted:
            row["deleted_returned"] = judge.returned(run, all_pairs(sets), deleted)
        return row


def _outcome_cells(outcome: EditOutcome) -> dict:
    """What an edit cost beyond its seconds: wall time, memory, changed parameters, weight norm, number of edits."""
    return {"wall_seconds": round(outcome.seconds, 3), "peak_mb": round(outcome.peak_mb, 1),
            "peak_growth_mb": round(outcome.peak_growth_mb, 1), "changed_params": outcome.changed_params,
            "weight_norm": outcome.weight_norm, "n_edits": outcome.n_edits}


def failures(doc: dict) -> list[str]:
    """'protocol/system: error' for every system of a results document that failed."""
    return [f"{p}/{r['system']}: {r['error']}" for p, s in doc["protocols"].items() for r in s["rows"] if "error" in r]


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
