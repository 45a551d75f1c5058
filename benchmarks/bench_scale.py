"""Paper-scale figures without a download: a GenIR model of a published shape with random weights over a synthetic corpus.

    python -m benchmarks.bench_scale --shape t5-large --docs 10000,100000 --device cuda
    python -m benchmarks.bench_scale --shape tiny --docs 200 --device cpu        # the same code in seconds

One JSON line per corpus size: ranking queries/s, the full patching sweep (every component and head, attribution
too) on 100 queries, a rank-one add of 100 documents (prepare seconds: the preservation statistics, which read up to
3 texts per indexed document, capped at EditSettings.max_preserved; then ms/doc of the edit itself), one DSI epoch
on min(docs, --epoch-docs) documents, and the peak memory of each phase (GPU: torch's peak allocation; CPU: the
process's peak resident set).

What grows with the corpus (also in every JSON line, `grows_with_corpus`): the docid rows (one per document), the
logits every forward scores, the preservation statistics (3 texts per indexed document up to the cap,
EditSettings.max_preserved = 20,000 texts, a stable hash sample past it: prepare stops growing there) and an epoch
(4-5 examples per document). What must not: an edit's own cost beyond its one pass over the docid rows (rank-one
writes rows and one target linear).
Random weights retrieve nothing: the figures are costs, never quality.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TypeVar

import torch

from genedit.data import synthetic_collection
from genedit.data.types import Collection
from genedit.model.build import SHAPES, tiny_model
from genedit.model.device import resolve_device, resolve_dtype

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class ScaleResult:
    """Costs of one corpus size."""

    shape: str
    docs: int
    device: str
    dtype: str
    parameters: int = 0
    build_seconds: float = 0.0
    rank_queries: int = 0
    rank_qps: float = 0.0
    sweep_queries: int = 0
    sweep_sites: int = 0
    sweep_seconds: float = 0.0  # patching of every site plus attribution patching (encoding and clean run included)
    sweep_rows: int = 0  # decoder rows per patched forward (the memory bound)
    edit_docs: int = 0
    preserved_texts: int = 0  # min(3 x docs, preserved_cap): what prepare reads
    preserved_cap: int = 0  # EditSettings.max_preserved: past it prepare stops growing with the corpus
    prepare_seconds: float = 0.0
    edit_ms_per_doc: float = 0.0
    epoch_docs: int = 0
    epoch_examples: int = 0
    epoch_seconds: float | None = None
    peak_gb: dict[str, float] = field(default_factory=dict)  # per phase

    def to_dict(self) -> dict:
        """JSON-ready, with the overall peak and what grows with the corpus."""
        return {**asdict(self), "peak_gb_max": max(self.peak_gb.values(), default=0.0), "grows_with_corpus": GROWS}


GROWS = {  # what each figure does as the corpus grows (said in every JSON line, so a reader of one line knows)
    "rank_qps": "falls slowly: every query scores all docid rows (one [D, docs] product)",
    "sweep_seconds": "grows slowly: every patched forward scores all docid rows",
    "prepare_seconds": "grows with preserved_texts = min(3 x docs, preserved_cap), then stays flat (a stable hash sample)",
    "edit_ms_per_doc": "does not grow beyond its one pass over the docid rows (rank-one writes the new rows and one target linear)",
    "epoch_seconds": "grows with the documents of the epoch (4-5 examples each; min(docs, --epoch-docs) here)",
    "peak_gb": "grows with the docid rows (docs x d_model) and the logits of each batch (batch x docs)",
}


def _peak_gb(device: torch.device) -> float:
    """Peak memory since the last reset: the GPU's allocation, or the process's resident set on the CPU (never reset)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kilobytes on Linux


def _phase(result: ScaleResult, name: str, device: torch.device, fn: Callable[[], T]) -> tuple[T, float]:
    """Run one phase; record its peak memory; return its value and wall seconds (the GPU synchronised)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    t = time.perf_counter()
    value = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t
    result.peak_gb[name] = round(_peak_gb(device), 2)
    return value, seconds


def _epoch(result: ScaleResult, shape: str, corpus: Collection, device: torch.device, batch_size: int) -> None:
    """One classic-DSI epoch (random rows, no teacher) of a fresh model of the shape over `corpus`."""
    from genedit.train.trainer import TrainConfig, train

    model = tiny_model("t5", [], SHAPES[shape], device=device)
    model.meta["fresh_parameters"] = [n for n, _ in model.hf.named_parameters()]
    cfg = TrainConfig.recipe("dsi", max_epochs=1, batch_size=batch_size, dev_fraction=0.0)
    trained, _ = _phase(result, "epoch", device, lambda: train(model, corpus, cfg))
    result.epoch_docs = len(corpus.documents)
    result.epoch_examples = sum(trained.examples_per_process)
    result.epoch_seconds = round(trained.history[0].seconds, 2) if trained.history else None


def run_size(shape: str, n_docs: int, device: torch.device, dtype: torch.dtype | None, *, sweep_queries: int = 100, rank_queries: int = 2000,
             edit_docs: int = 100, epoch_docs: int = 10000, batch_size: int = 256, epoch: bool = True) -> ScaleResult:
    """Every measurement at one corpus size."""
    from circuits import LocalizeConfig, localize
    from genedit.edit import Editor

    result = ScaleResult(shape, n_docs, str(device), str(dtype or torch.float32).removeprefix("torch."))
    corpus = synthetic_collection(n_docs + edit_docs, queries_per_doc=1, seed=0)
    indexed = Collection(corpus.name, corpus.documents[:n_docs], corpus.queries, corpus.qrels)
    if epoch:
        small = synthetic_collection(min(n_docs, epoch_docs), queries_per_doc=1, seed=1)
        _epoch(result, shape, small, device, batch_size)
        gc.collect()  # the epoch's model and optimizer state go before the indexed model is built
        if device.type == "cuda":
            torch.cuda.empty_cache()

    model, seconds = _phase(result, "build", device, lambda: tiny_model("t5", [d.id for d in indexed.documents], SHAPES[shape], device=device))
    result.build_seconds = round(seconds, 2)
    if dtype is not None:
        model.to(dtype=dtype)
    result.parameters = sum(p.numel() for p in model.hf.parameters())

    texts = [q.text for q in corpus.queries.values()]
    texts = (texts * (rank_queries // max(len(texts), 1) + 1))[:rank_queries]
    _, seconds = _phase(result, "rank", device, lambda: model.rank(texts, k=10, batch_size=batch_size))
    result.rank_queries, result.rank_qps = len(texts), round(len(texts) / seconds, 1)

    config = LocalizeConfig(split="train", n_queries=sweep_queries, lens=False, circuit=False, attribution=True)
    circuit, _ = _phase(result, "sweep", device, lambda: localize(model, indexed, config))
    t = circuit.timings
    result.sweep_queries, result.sweep_sites = circuit.settings.n_queries, len(circuit.effects)
    result.sweep_seconds = round(t.encode + t.sweep + (t.attribution or 0.0), 2)
    from circuits.patching import patch_rows
    from circuits.runner import Runner

    result.sweep_rows = patch_rows(Runner(model), model.max_query_length)

    last = model.cmap.n_layers - 1
    editor = Editor(model, corpus=indexed, targets=[f"L{last}.mlp"], fingerprints=False)
    new = corpus.documents[n_docs : n_docs + edit_docs]
    entry, _ = _phase(result, "edit", device, lambda: editor.add(new, method="rank-one"))
    result.edit_docs = len(new)
    result.preserved_texts = len(editor.ctx.preserved_texts()[0])
    result.preserved_cap = editor.ctx.settings.max_preserved
    result.prepare_seconds = round(float(entry.params.get("prepare_seconds", 0.0)), 2)
    result.edit_ms_per_doc = round(entry.seconds * 1000 / max(len(new), 1), 2)
    return result


def main(argv: list[str] | None = None) -> int:
    """Print one JSON line per corpus size."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shape", choices=list(SHAPES), default="t5-large", help="model shape (random weights, T5's dimensions)")
    p.add_argument("--docs", default="10000,100000", help="comma-separated corpus sizes (docids)")
    p.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), help="weights of the indexed model (the epoch trains in float32)")
    p.add_argument("--queries", type=int, default=100, help="queries of the patching sweep")
    p.add_argument("--rank-queries", type=int, default=2000)
    p.add_argument("--edit-docs", type=int, default=100)
    p.add_argument("--epoch-docs", type=int, default=10000, help="documents of the DSI epoch (the issue's epoch: 10,000 documents, 38,800 examples)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--no-epoch", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    try:
        device = resolve_device(args.device)
        dtype = resolve_dtype(args.dtype)
        sizes = [int(x) for x in args.docs.split(",") if x.strip()]
    except ValueError as exc:
        print(f"bench_scale: error: {exc}", file=sys.stderr)
        return 2
    epochs: dict[int, ScaleResult] = {}  # the epoch runs on min(docs, --epoch-docs) documents: once per distinct size
    for n in sizes:
        size = min(n, args.epoch_docs)
        result = run_size(args.shape, n, device, dtype, sweep_queries=args.queries, rank_queries=args.rank_queries, edit_docs=args.edit_docs,
                          epoch_docs=args.epoch_docs, batch_size=args.batch_size, epoch=not args.no_epoch and size not in epochs)
        if size in epochs:
            done = epochs[size]
            result.epoch_docs, result.epoch_examples, result.epoch_seconds = done.epoch_docs, done.epoch_examples, done.epoch_seconds
            result.peak_gb["epoch"] = done.peak_gb["epoch"]
        elif not args.no_epoch:
            epochs[size] = result
        print(json.dumps(result.to_dict()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
