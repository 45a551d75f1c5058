"""Command line: genedit train | eval | baseline | localize | demo | add | delete | update | log | rollback | bench | check.

Exit codes: 0 ok, 1 a finding (a regression, a circuit that differs), 2 bad input, 3 internal error.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from genedit.eval.report import Row, format_table
from genedit.fileio import atomic_write_json

if TYPE_CHECKING:
    from genedit.model.genir import GenIRModel


def _write_json(path: str | None, payload: object) -> None:
    if path:
        atomic_write_json(path, payload)


def _check_output_file(path: str) -> None:
    """Fail before any long computation if `path` cannot be written as a file."""
    out = Path(path).absolute()
    if out.is_dir():
        raise IsADirectoryError(f"{out} is a directory; give a file path")
    existing = next(p for p in out.parents if p.exists())  # nothing is created here: a failed run leaves no trace
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise PermissionError(f"cannot write {out}: {existing} is not a writable directory")


def cmd_train(args: argparse.Namespace) -> int:
    """Train a GenIR model on a collection and save it."""
    from genedit.data import load_collection
    from genedit.model.build import base_model
    from genedit.model.genir import check_writable_model_dir
    from genedit.train.trainer import TrainConfig, processes, train

    check_writable_model_dir(args.out, overwrite=args.overwrite)  # before training, not after
    collection = load_collection(args.data)
    model = base_model(args.base, seed=args.seed)
    with processes(model.device) as state:  # several under accelerate launch / torchrun: they train data-parallel
        result = train(model, collection, TrainConfig.recipe(args.recipe, minutes=args.minutes, seed=args.seed, max_epochs=args.epochs))
        model.meta["name"] = f"genir-{collection.name}"
        model.meta["data"] = _data_spec(args.data)  # editing commands find the indexed corpus from it
        try:
            if state.is_main_process:  # one writer; the others return once the folder is complete
                model.save(args.out, overwrite=args.overwrite)
        finally:
            state.wait_for_everyone()
        if not state.is_main_process:
            return 0
    on = f" on {result.processes} processes" if result.processes > 1 else ""
    print(f"trained on {result.n_docs} documents, {result.n_train_queries} training queries in {result.seconds:.0f}s{on}; best epoch {result.best_epoch}")
    print(f"dev hits@1/hits@10/mrr@10: start {result.start_dev[0]:.3f}/{result.start_dev[1]:.3f}/{result.start_dev[2]:.3f}")
    for h in result.history:
        print(f"  epoch {h.epoch:>2} {h.phase:<8} loss {h.loss:.3f}  dev {h.dev_hits1:.3f}/{h.dev_hits10:.3f}/{h.dev_mrr10:.3f}  {h.seconds:.0f}s")
    if result.truncated:
        print(f"warning: the {args.minutes:g}-minute cap ended training early; without --minutes the run is reproducible", file=sys.stderr)
    print(f"saved to {args.out}")
    return 0


def _data_spec(spec: str) -> str:
    """A --data value that still means the same collection from another working directory."""
    return spec if spec == "default" or spec.startswith("irds:") else str(Path(spec).resolve())


def _evaluate_model(model, collection, split: str):
    from genedit.eval import evaluate

    missing = {d for _, rel in collection.split(split) for d in rel} - set(model.docids)
    if missing:
        raise ValueError(f"{len(missing)} relevant documents of split {split!r} are not indexed by the model, e.g. {sorted(missing)[:3]}")
    t = time.monotonic()
    run = model.rank([q for q, _ in collection.split(split)], k=100)
    return run, evaluate(run, collection.qrels[split]), time.monotonic() - t


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate a saved model on a split."""
    from genedit.data import load_collection
    from genedit.eval import write_trec_run
    from genedit.model.genir import GenIRModel

    collection = load_collection(args.data)
    run, result, seconds = _evaluate_model(GenIRModel.load(args.model), collection, args.split)
    print(format_table([Row("genir", result.aggregate, seconds)]))
    top1 = {q: r[0] for q, r in run.ranking.items() if r}  # lets `genedit check` name the queries that lose rank 1
    _write_json(args.json, {"model": str(args.model), "split": args.split, "n_queries": result.n_queries, **result.aggregate, "top1": top1})
    if args.run:
        write_trec_run(run, args.run)
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    """Evaluate a baseline retriever on a split."""
    from genedit.baselines import run_baseline
    from genedit.data import load_collection

    collection = load_collection(args.data)
    t = time.monotonic()
    _, result = run_baseline(args.name, collection, args.split)
    print(format_table([Row(args.name, result.aggregate, time.monotonic() - t)]))
    _write_json(args.json, {"baseline": args.name, "split": args.split, "n_queries": result.n_queries, **result.aggregate})
    return 0


def cmd_localize(args: argparse.Namespace) -> int:
    """Localize the retrieval circuit of a model and write the circuit, plots and summary."""
    from circuits import Circuit, LocalizeConfig, localize, write_report
    from genedit.data import load_collection
    from genedit.model.genir import GenIRModel

    if args.compare and Path(args.compare).resolve() == Path(args.out).resolve():
        raise ValueError(f"--out and --compare are the same file ({Path(args.out).resolve()}): the new circuit would replace the reference; choose another --out")
    _check_output_file(args.out)
    if args.plots:
        _check_output_file(str(Path(args.plots) / "summary.md"))
    model = GenIRModel.load(args.model)
    collection = load_collection(args.data)
    if args.compare:
        if args.queries is not None or args.split is not None:
            raise ValueError("--compare repeats the reference circuit's settings; drop --queries and --split")
        reference = Circuit.load(args.compare)  # a bad reference fails before the sweep and before writing
        config = LocalizeConfig.matching(reference.settings, progress=True)
    else:
        reference = None
        config = LocalizeConfig(split=args.split or "train", n_queries=args.queries or 500, progress=True)
    circuit = localize(model, collection, config)
    circuit.save(args.out)
    if args.plots:
        write_report(circuit, args.plots)
    print(circuit.summary_markdown())
    print(f"circuit written to {args.out}" + (f", plots and summary to {args.plots}" if args.plots else ""))
    if reference is None:
        return 0
    differences = circuit.differences(reference)
    if differences:
        print(f"{len(differences)} differences from {args.compare} (this run vs it), e.g.:", file=sys.stderr)
        for line in differences[:20]:
            print(f"  {line}", file=sys.stderr)
        return 1
    print(f"identical to {args.compare} (every field but wall times)")
    return 0


def default_model_dir() -> Path:
    """Where `genedit demo` caches its trained default model (GENEDIT_CACHE overrides)."""
    root = Path(os.environ.get("GENEDIT_CACHE", Path.home() / ".cache" / "genedit"))
    return root / "default-model"


def _say_if_reference(model: GenIRModel) -> None:
    """Tell whether this default model is the one README's figures and the shipped circuit come from."""
    from circuits import Circuit, shipped_circuit_path

    reference = Circuit.load(shipped_circuit_path()).fingerprint
    fingerprint = model.fingerprint()  # hashes every weight: once
    if fingerprint == reference:
        print(f"model {reference}: the reference default model (README's figures and circuits/default/ come from it)")
    else:
        print(f"model {fingerprint} differs from the reference default model {reference} (README's figures come from that one): "
              "it was trained with other settings, by another genedit version, or on hardware that rounds differently")


def cmd_demo(args: argparse.Namespace) -> int:
    """Train (or reuse) the default model on the bundled corpus, compare it with both baselines, localize it."""
    from genedit.baselines import run_baseline
    from genedit.data import load_collection
    from genedit.model.build import base_model
    from genedit.model.genir import GenIRModel, check_writable_model_dir, is_model_dir
    from genedit.train.trainer import TrainConfig, train

    collection = load_collection("default")
    model_dir = Path(args.model_dir) if args.model_dir else default_model_dir()
    if not is_model_dir(model_dir) or args.retrain:
        check_writable_model_dir(model_dir, overwrite=True)  # never replace a folder that is not a genedit model
        cap = f", capped at {args.minutes:g} minutes" if args.minutes else ""
        print(f"training the default model on {len(collection.documents)} documents (at most {args.epochs} epochs{cap}) ...", flush=True)
        model = base_model("minilm")
        result = train(model, collection, TrainConfig(minutes=args.minutes, max_epochs=args.epochs))
        model.meta["name"] = "genir-pydocs"
        model.meta["data"] = "default"
        model.save(model_dir, overwrite=True)
        print(f"trained in {result.seconds:.0f}s (best epoch {result.best_epoch}); saved to {model_dir}")
    else:
        print(f"reusing the trained default model in {model_dir} (--retrain to train again)")
        model = GenIRModel.load(model_dir)
    _say_if_reference(model)
    rows = []
    _, result, seconds = _evaluate_model(model, collection, "test")
    rows.append(Row("genedit GenIR (ours)", result.aggregate, seconds))
    for name in ("tfidf", "dense"):
        t = time.monotonic()
        _, res = run_baseline(name, collection, "test")
        rows.append(Row({"tfidf": "TF-IDF", "dense": "dense MiniLM + faiss"}[name], res.aggregate, time.monotonic() - t))
    print(f"\nTest split of the bundled corpus ({result.n_queries} queries, {len(collection.documents)} documents):")
    print(format_table(rows))
    _write_json(args.json, [{"system": r.system, **r.aggregate} for r in rows])
    if not args.no_localize:
        from circuits import LocalizeConfig, localize, write_report

        print("\nlocalizing the retrieval circuit ...", flush=True)
        circuit = localize(model, collection, LocalizeConfig(split="train", n_queries=args.queries))
        out = Path(args.out or tempfile.mkdtemp(prefix="genedit-demo-"))
        circuit.save(out / "circuit.json")
        write_report(circuit, out)
        print(circuit.summary_markdown())
        print(f"circuit, heatmaps and summary in {out}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the editing protocols and write OUT/results.json, results.md and plots (benchmarks.harness)."""
    from benchmarks.harness import BenchConfig, parse_protocols, run_bench
    from benchmarks.results import protocol_table

    quick = args.quick
    config = BenchConfig(
        data=args.data,
        out=Path(args.out),
        protocols=parse_protocols(args.protocol),
        methods=[m.strip() for m in args.methods.split(",") if m.strip()] if args.methods is not None else None,
        base=args.base,
        seed=args.seed,
        fraction=args.fraction,
        n_edits=args.edits or (20 if quick else 1000),
        every=args.every or (10 if quick else 100),
        epochs=args.epochs or (2 if quick else BenchConfig.epochs),
        baselines=tuple(b.strip() for b in (args.baselines if args.baselines is not None else ("tfidf,bm25" if quick else "dense,tfidf,bm25")).split(",") if b.strip()),
        recipe=args.recipe,
    )
    doc = run_bench(config, command=" ".join(["genedit", *getattr(args, "argv", [])]))
    if doc is None:  # launched on several processes: this one helped train the models, the main one reports
        return 0
    for protocol, section in doc["protocols"].items():
        print(f"\n{protocol} ({section['wall_seconds']:.0f} s)\n")
        print(protocol_table(protocol, section))
    failed = [f"{p}/{r['system']}" for p, s in doc["protocols"].items() for r in s["rows"] if "error" in r]
    print(f"\nresults in {args.out} (results.json, results.md, *.png)")
    if failed:
        print(f"genedit: warning: {len(failed)} systems failed: {', '.join(failed)} (details in results.md)", file=sys.stderr)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Regression gate: exit 0 if the model keeps every measure of the reference within its allowed drop, else 1."""
    from benchmarks.check import format_report, parse_max_drop, run_check
    from genedit.data import load_collection

    drops = parse_max_drop(args.max_drop)
    collection = load_collection(args.data)
    result = run_check(args.model, args.reference, collection, args.split, drops)
    print(format_report(result))
    _write_json(args.json, result.to_dict())
    return 0 if result.passed else 1


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value <= 0.5:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 0.5], got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the genedit command."""
    from genedit.train.trainer import RECIPES, TrainConfig

    p = argparse.ArgumentParser(prog="genedit", description="Edit the corpus of a generative retrieval model without retraining it.")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a GenIR model (DSI recipe) on a BEIR folder or 'default'")
    t.add_argument("--data", required=True, help="BEIR folder, 'default', or irds:<id>")
    t.add_argument("--out", required=True, help="model directory to write (must not exist or be empty)")
    t.add_argument("--base", default="minilm", help="'minilm' (offline default), 'tiny-t5|tiny-bart|tiny-bert2bert', or an HF t5/bart id")
    t.add_argument("--epochs", type=_positive_int, default=TrainConfig.max_epochs, help="epoch bound (early stopping on dev may end sooner)")
    t.add_argument("--minutes", type=_positive_float, help="optional wall-clock cap; a capped run is not reproducible")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--recipe", choices=list(RECIPES), default="default",
                   help="default: the decoder starts as the dense teacher, rows = sentence embeddings, trains on each document's distinct text "
                        "(boilerplate dropped); distinct: the same (its name while opt-in); plain: the default before issue 9 (random decoder start, "
                        "text as written); dsi: classic DSI (random rows, no teacher)")
    t.add_argument("--overwrite", action="store_true")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="evaluate a model: hits@1/5/10, mrr@10")
    e.add_argument("--model", required=True)
    e.add_argument("--data", required=True)
    e.add_argument("--split", default="test")
    e.add_argument("--json", help="write the measures to this JSON file")
    e.add_argument("--run", help="write the TREC run file here")
    e.set_defaults(func=cmd_eval)

    from genedit.baselines import baseline_names

    b = sub.add_parser("baseline", help="evaluate a baseline: dense (MiniLM + faiss), tfidf or bm25 (bm25s)")
    b.add_argument("name", choices=baseline_names())
    b.add_argument("--data", required=True)
    b.add_argument("--split", default="test")
    b.add_argument("--json")
    b.set_defaults(func=cmd_baseline)

    lo = sub.add_parser("localize", help="localize the retrieval circuit of a model")
    lo.add_argument("--model", required=True)
    lo.add_argument("--data", required=True)
    lo.add_argument("--out", required=True, help="circuit JSON to write")
    lo.add_argument("--plots", help="folder for heatmaps and summary.md")
    lo.add_argument("--queries", type=_positive_int, help="queries to analyse (default 500)")
    lo.add_argument("--split", help="query split (default train)")
    lo.add_argument("--compare", metavar="CIRCUIT", help="repeat this circuit's localization (its settings) and exit 1 if any field but wall times differs")
    lo.set_defaults(func=cmd_localize)

    d = sub.add_parser("demo", help="train (or reuse) the default model, compare with baselines, localize")
    d.add_argument("--epochs", type=_positive_int, default=TrainConfig.max_epochs, help="epoch bound of the default model's training")
    d.add_argument("--minutes", type=_positive_float, help="optional wall-clock cap on training (not reproducible)")
    d.add_argument("--retrain", action="store_true")
    d.add_argument("--model-dir", help=f"where the default model is cached (default {default_model_dir()})")
    d.add_argument("--json")
    d.add_argument("--out", help="folder for the circuit and its report")
    d.add_argument("--queries", type=_positive_int, default=500)
    d.add_argument("--no-localize", action="store_true")
    d.set_defaults(func=cmd_demo)

    from genedit.edit.commands import add_edit_parsers

    add_edit_parsers(sub)

    be = sub.add_parser("bench", help="editing benchmark: add/delete/update/sequential protocols vs retrain oracle and baselines")
    be.add_argument("--data", required=True, help="BEIR folder, 'default', or irds:<id> (needs test queries)")
    be.add_argument("--protocol", required=True, help="add, delete, update, sequential, a comma-separated list, or all")
    be.add_argument("--methods", help="comma-separated editing methods (default: every method registered for the op; row always runs); "
                    "METHOD@TARGETS runs a circuit method on one editing-target selection of the circuit (auto, cross_attn, mlp, both), e.g. rank-one@mlp")
    be.add_argument("--out", required=True, help="output folder: absent, empty, or an earlier bench output (its models are reused)")
    be.add_argument("--base", default="minilm", help="base model of the base and oracle models (tiny-t5 for a smoke run)")
    be.add_argument("--seed", type=int, default=0, help="seed of the splits and of training")
    be.add_argument("--fraction", type=_fraction, help="share of documents edited by add/delete/update (default 0.1/0.1/0.05)")
    be.add_argument("--edits", type=_positive_int, help="length of the sequential stream (default 1000)")
    be.add_argument("--every", type=_positive_int, help="measure the stream after every N edits (default 100)")
    be.add_argument("--epochs", type=_positive_int, help=f"epoch bound of base and oracle training (default {TrainConfig.max_epochs})")
    be.add_argument("--baselines", help="comma-separated baselines on the edited corpus (default dense,tfidf,bm25; empty for none)")
    be.add_argument("--recipe", choices=list(RECIPES), default="default",
                    help="training recipe of base and oracle models (plain: the default before issue 9; dsi: classic DSI, rows not sentence embeddings)")
    be.add_argument("--quick", action="store_true", help="smoke run: --edits 20 --every 10 --epochs 2 --baselines tfidf,bm25 unless given")
    be.set_defaults(func=cmd_bench)

    c = sub.add_parser("check", help="regression gate: exit 1 if a model drops a measure of a reference by more than allowed")
    c.add_argument("--model", required=True, help="candidate model folder")
    c.add_argument("--reference", required=True, help="a model folder, a `genedit eval --json` file or a TREC run")
    c.add_argument("--data", required=True)
    c.add_argument("--split", default="test")
    c.add_argument("--max-drop", help="allowed drops, e.g. hits@1=0.005,hits@10=0.01 (defaults: hits@1 0.005, hits@5 0.01, hits@10 0.01, mrr@10 0.005)")
    c.add_argument("--json", help="write the verdict, measures and lost queries to this JSON file")
    c.set_defaults(func=cmd_check)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the genedit command: 0 ok, 1 a finding, 2 bad input (one line), 3 internal error (-v: traceback)."""
    args = build_parser().parse_args(argv)  # argparse errors exit 2
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from genedit.data.types import DataError

    try:
        for name in ("json", "run"):  # output files: fail before the work, not after
            if getattr(args, name, None):
                _check_output_file(getattr(args, name))
        return args.func(args)
    except (DataError, ValueError, KeyError, FileNotFoundError, FileExistsError, OSError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"genedit: error: {msg}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug, not the user's input: say so, and show where with -v
        if args.verbose:
            traceback.print_exc()
        hint = "" if args.verbose else " (run with -v for the traceback)"
        print(f"genedit: internal error: {type(exc).__name__}: {exc}{hint}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
