"""Base-model quality (issue 9): GenIR against dense MiniLM, TF-IDF and BM25 on several real corpora, in one table.

    python -m benchmarks.bench_quality [--corpora default,docstrings,pysource,shortdocs] [--cache DIR] [--out FILE]
                                       [--variant row_tokens=256 | --variant plain] [--baselines dense,tfidf,bm25] [--seed 0]

Per corpus: build it (each builder is deterministic and takes seconds: default = the bundled pydocs, docstrings =
networkx + scipy docstrings, pysource = long source files that open with a licence header, shortdocs = one-idea
docstring paragraphs), train GenIR with the default recipe (`TrainConfig(seed=SEED)` on `base_model("minilm")`), rank
the test queries, and run the baselines on the same queries. Models are reused from `--cache` when the data, the
TrainConfig, the training code and the versions match (benchmarks.oracle.ModelCache). On the bundled corpus the
default model of `genedit demo` (~/.cache/genedit/default-model) is reused if it is the reference model (the shipped
circuit's fingerprint) instead of being retrained. Each `--variant` adds a GenIR row trained with those TrainConfig
overrides (comma-separated FIELD=VALUE) or with a named recipe (`--variant plain`: the default before issue 9). The table is printed in markdown; `--out` writes it as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from genedit.data import load_beir, load_collection  # noqa: E402  (after the offline default)
from genedit.data.types import Collection  # noqa: E402
from genedit.eval.evaluate import evaluate  # noqa: E402
from genedit.fileio import atomic_write_json  # noqa: E402
from genedit.train.trainer import TrainConfig  # noqa: E402

log = logging.getLogger("bench_quality")

REPO_ROOT = Path(__file__).resolve().parent.parent
MEASURES: tuple[str, ...] = ("hits@1", "hits@10", "mrr@10")
BASELINES: tuple[str, ...] = ("dense", "tfidf", "bm25")
BASELINE_LABELS = {"dense": "dense MiniLM + faiss", "tfidf": "TF-IDF", "bm25": "BM25"}
GENIR = "GenIR"


@dataclass(frozen=True)
class CorpusSpec:
    """A benchmark corpus: the bundled one (no builder) or a module run as `python -m MODULE OUT_DIR`."""

    name: str
    builder: str | None
    description: str


CORPORA: tuple[CorpusSpec, ...] = (
    CorpusSpec("default", None, "bundled pydocs: stdlib docstring bodies; query = the summary"),
    CorpusSpec("docstrings", "benchmarks.build_docstring_corpus", "networkx + scipy docstring bodies; query = the summary"),
    CorpusSpec("pysource", "benchmarks.build_source_corpus", "long source files opening with a licence header; query = the module summary"),
    CorpusSpec("shortdocs", "benchmarks.build_shortdoc_corpus", "1-3 sentence docstring paragraphs; query = the summary"),
)


@dataclass
class CorpusInfo:
    """Size and shape of one benchmarked corpus."""

    name: str
    description: str
    documents: int
    train_queries: int
    test_queries: int
    mean_doc_words: float
    data_hash: str
    build_seconds: float


@dataclass
class SystemResult:
    """One system's test figures on one corpus."""

    corpus: str
    system: str
    measures: dict[str, float]
    train_seconds: float | None  # GenIR training (None for the baselines, which only index)
    run_seconds: float  # ranking the test queries (baselines: indexing included)
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class QualityReport:
    """Everything one benchmark run measured."""

    command: str
    seed: int
    train_config: dict[str, Any]
    variants: list[str]
    environment: dict[str, Any]
    corpora: list[CorpusInfo] = field(default_factory=list)
    results: list[SystemResult] = field(default_factory=list)
    wall_seconds: float = 0.0


def parse_variant(text: str) -> dict[str, Any]:
    """TrainConfig overrides from 'field=value,field=value' (typed like the field's default) or a recipe's name."""
    from genedit.train.trainer import RECIPES

    if text.strip() in RECIPES:
        return dict(RECIPES[text.strip()])
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    overrides: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in defaults:
            raise ValueError(f"variant {text!r}: {part!r} is neither a recipe ({', '.join(RECIPES)}) nor FIELD=VALUE with a TrainConfig field ({', '.join(defaults)})")
        default = defaults[name]
        kind = type(default) if default is not None else float
        overrides[name] = (value.strip().lower() in ("1", "true", "yes")) if kind is bool else kind(value)
    if not overrides:
        raise ValueError(f"variant {text!r} sets nothing")
    TrainConfig(**overrides)  # values the config refuses (e.g. an unknown decoder_init) fail here, before any training
    return overrides


def variant_label(text: str) -> str:
    """How a --variant's row is named: the recipe's name, or its FIELD=VALUE overrides."""
    from genedit.train.trainer import RECIPES

    if text.strip() in RECIPES:
        return f"recipe {text.strip()}"
    return ",".join(f"{k}={v}" for k, v in parse_variant(text).items())


def build_corpus(spec: CorpusSpec, data_root: Path) -> tuple[Collection, float]:
    """The corpus, built by its builder into data_root/<name> (or the bundled one), and the build's seconds."""
    t = time.monotonic()
    if spec.builder is None:
        return load_collection("default"), time.monotonic() - t
    out = data_root / spec.name
    cmd = [sys.executable, "-m", spec.builder, str(out)]
    done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return load_beir(out, name=spec.name), time.monotonic() - t


def corpus_info(spec: CorpusSpec, collection: Collection, build_seconds: float) -> CorpusInfo:
    """Counts and mean length (words of title + text) of a corpus."""
    from benchmarks.protocols import collection_hash

    words = [len(d.indexing_text().split()) for d in collection.documents]
    return CorpusInfo(spec.name, spec.description, len(collection.documents), len(collection.qrels["train"].judgments),
                      len(collection.qrels["test"].judgments), round(sum(words) / len(words), 1),
                      collection_hash(collection)[:16], round(build_seconds, 1))


def reference_default_model(collection: Collection, seed: int) -> tuple[Any, str] | None:
    """`genedit demo`'s cached default model if it is the reference one (the shipped circuit's) for this data, else None."""
    from circuits import reference_check
    from genedit.model.genir import GenIRModel
    from genedit.model.storage import default_model_dir

    path = default_model_dir()
    if seed != 0 or not path.is_dir():
        return None
    try:
        model = GenIRModel.load(path)
    except Exception as exc:  # noqa: BLE001 - a broken cache folder means: train
        log.info("cannot load %s (%s): training instead", path, exc)
        return None
    check = reference_check(model)
    if not check.is_reference or sorted(model.docids) != sorted(collection.doc_ids):
        log.info("%s is model %s, not the reference %s: training instead", path, check.fingerprint, check.reference)
        return None
    log.info("reusing the reference default model %s from %s", check.fingerprint, path)
    return model, check.fingerprint


def genir_result(corpus: str, system: str, model: Any, collection: Collection, train_seconds: float,
                 detail: dict[str, Any]) -> SystemResult:
    """Rank the test queries with a GenIR model and score them."""
    queries = [q for q, _ in collection.split("test")]
    t = time.monotonic()
    run = model.rank(queries, k=100, progress=True)
    seconds = time.monotonic() - t
    result = evaluate(run, collection.qrels["test"], MEASURES)
    log.info("%s on %s: %s", system, corpus, result.as_row(3))
    train = model.meta.get("train", {})
    detail = {**detail, "best_epoch": train.get("best_epoch"), "epochs_run": train.get("epochs_run")}
    return SystemResult(corpus, system, result.aggregate, round(train_seconds, 1), round(seconds, 1), detail)


def baseline_result(corpus: str, name: str, collection: Collection) -> SystemResult:
    """Fit one baseline on the corpus and score the test queries."""
    from genedit.baselines import run_baseline

    t = time.monotonic()
    _, result = run_baseline(name, collection, "test", k=100, measures=MEASURES)
    return SystemResult(corpus, BASELINE_LABELS[name], result.aggregate, None, round(time.monotonic() - t, 1))


def bench_corpus(spec: CorpusSpec, collection: Collection, cache_root: Path, seed: int,
                 variants: list[tuple[str, dict[str, Any]]], baselines: list[str]) -> list[SystemResult]:
    """GenIR (default recipe, then each variant) and the baselines on one corpus."""
    from benchmarks.oracle import ModelCache

    results: list[SystemResult] = []
    config = TrainConfig(seed=seed)
    reference = reference_default_model(collection, seed) if spec.builder is None else None
    if reference is not None:
        model, fingerprint = reference
        seconds = float(model.meta.get("train", {}).get("seconds", 0.0))
        results.append(genir_result(spec.name, GENIR, model, collection, seconds,
                                    {"fingerprint": fingerprint, "reused": True, "source": "default-model"}))
    else:
        cached = ModelCache(cache_root, "minilm", config).get(collection, spec.name)
        model = cached.model
        results.append(genir_result(spec.name, GENIR, model, collection, cached.train_seconds,
                                    {"fingerprint": cached.fingerprint, "reused": cached.reused, "key": cached.key[:16]}))
    del model
    gc.collect()
    for label, overrides in variants:
        cached = ModelCache(cache_root, "minilm", dataclasses.replace(config, **overrides)).get(collection, f"{spec.name}-{label.replace(',', '-').replace('=', '')}")
        results.append(genir_result(spec.name, f"{GENIR} ({label})", cached.model, collection, cached.train_seconds,
                                    {"fingerprint": cached.fingerprint, "reused": cached.reused, "key": cached.key[:16], "overrides": overrides}))
        del cached
        gc.collect()
    for name in baselines:
        results.append(baseline_result(spec.name, name, collection))
        gc.collect()
    return results


def format_report(report: QualityReport) -> str:
    """Markdown table (one row per corpus and system) and, per corpus, GenIR's gaps to dense and TF-IDF."""
    info = {c.name: c for c in report.corpora}
    head = "| corpus (docs / train / test, words per doc) | system | Hits@1 | Hits@10 | MRR@10 | train s | rank s |"
    lines = [head, "|---|---|---:|---:|---:|---:|---:|"]
    for r in report.results:
        c = info[r.corpus]
        corpus = f"{c.name} ({c.documents:,} / {c.train_queries:,} / {c.test_queries:,}, {c.mean_doc_words:.0f})"
        train = f"{r.train_seconds:.0f}" if r.train_seconds is not None else "-"
        m = r.measures
        lines.append(f"| {corpus} | {r.system} | {m['hits@1']:.3f} | {m['hits@10']:.3f} | {m['mrr@10']:.3f} | {train} | {r.run_seconds:.0f} |")
    lines.append("")
    for c in report.corpora:
        rows = {r.system: r.measures for r in report.results if r.corpus == c.name}
        for system in (s for s in rows if s.startswith(GENIR)):  # the default recipe's row and every --variant's
            genir = rows[system]
            gaps = [f"{system} - {other}: Hits@1 {genir['hits@1'] - rows[other]['hits@1']:+.3f}, "
                    f"Hits@10 {genir['hits@10'] - rows[other]['hits@10']:+.3f}"
                    for other in (BASELINE_LABELS["dense"], BASELINE_LABELS["tfidf"]) if other in rows]
            if gaps:
                lines.append(f"{c.name}: " + "; ".join(gaps))
    return "\n".join(lines)


def write_json(report: QualityReport, path: Path) -> None:
    """Write the report atomically (after every corpus, so a crash keeps the finished ones)."""
    atomic_write_json(path, asdict(report))


def _environment() -> dict[str, Any]:
    """Versions and threads the figures depend on."""
    import torch

    import genedit

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    return {"genedit": genedit.__version__, "commit": commit, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "python": platform.python_version(), "machine": platform.machine()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    names = [c.name for c in CORPORA]
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpora", default=",".join(names), help=f"comma-separated, from {', '.join(names)} (default: all)")
    p.add_argument("--cache", type=Path, default=None, help="folder of reusable trained models (default: a temporary one)")
    p.add_argument("--data", type=Path, default=None, help="keep the built corpora in this folder (default: temporary)")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON to this file")
    p.add_argument("--variant", action="append", default=[], help="extra GenIR row: TrainConfig overrides FIELD=VALUE[,...]")
    p.add_argument("--baselines", default=",".join(BASELINES), help="comma-separated from dense, tfidf, bm25, or 'none'")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    args.corpora = [c.strip() for c in args.corpora.split(",") if c.strip()]
    unknown = [c for c in args.corpora if c not in names]
    if unknown or not args.corpora:
        p.error(f"unknown corpora {unknown}; choose from {', '.join(names)}")
    args.baselines = [] if args.baselines.strip() == "none" else [b.strip() for b in args.baselines.split(",") if b.strip()]
    if any(b not in BASELINES for b in args.baselines):
        p.error(f"--baselines: choose from {', '.join(BASELINES)} or 'none'")
    try:
        args.overrides = [parse_variant(v) for v in args.variant]
        args.labels = [variant_label(v) for v in args.variant]
    except ValueError as exc:
        p.error(str(exc))
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark over the chosen corpora, print the table, optionally write JSON; returns the exit code."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import transformers

    transformers.logging.set_verbosity_error()
    start = time.monotonic()
    report = QualityReport(command="python -m benchmarks.bench_quality " + " ".join(sys.argv[1:] if argv is None else argv),
                           seed=args.seed, train_config=asdict(TrainConfig(seed=args.seed)), variants=args.variant,
                           environment=_environment())
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        cache_root = args.cache or Path(tmp) / "cache"
        data_root = args.data or Path(tmp) / "data"
        data_root.mkdir(parents=True, exist_ok=True)
        specs = [c for c in CORPORA if c.name in args.corpora]
        taken = [str(data_root / c.name) for c in specs if c.builder is not None and (data_root / c.name).exists()]
        if taken:
            log.error("%s: already exist; corpora are rebuilt on every run: remove them or choose another --data", ", ".join(taken))
            return 2
        for spec in specs:
            collection, build_seconds = build_corpus(spec, data_root)
            info = corpus_info(spec, collection, build_seconds)
            log.info("%s: %d documents, %d train / %d test queries, %.1f words per document", info.name, info.documents,
                     info.train_queries, info.test_queries, info.mean_doc_words)
            report.corpora.append(info)
            report.results += bench_corpus(spec, collection, cache_root, args.seed, list(zip(args.labels, args.overrides)), args.baselines)
            report.wall_seconds = round(time.monotonic() - start, 1)
            if args.out is not None:
                write_json(report, args.out)
    print(format_report(report))
    print(f"\n{report.command}: {report.wall_seconds / 60:.1f} minutes wall time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
