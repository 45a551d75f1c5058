"""genedit train | eval | baseline: build a model, measure it, measure a baseline."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time

from genedit.cli.common import data_spec, evaluate_model, write_json
from genedit.eval.report import Row, format_table


def cmd_train(args: argparse.Namespace) -> int:
    """Train a GenIR model on a collection and save it."""
    from genedit.data import load_collection
    from genedit.model.build import base_model
    from genedit.model.storage import FolderLock, check_writable_model_dir, is_model_dir
    from genedit.train.trainer import TrainConfig, processes, train

    check_writable_model_dir(args.out, overwrite=args.overwrite)  # before training, not after
    collection = load_collection(args.data)
    model = base_model(args.base, seed=args.seed, device=args.device)
    with processes(model.device) as state, contextlib.ExitStack() as held:  # several under a launcher: data-parallel
        # --overwrite of a model folder is a write: its lock is held from before training until the save (main process)
        lock = held.enter_context(FolderLock(args.out)) if state.is_main_process and is_model_dir(args.out) else None
        result = train(model, collection, TrainConfig.recipe(args.recipe, minutes=args.minutes, seed=args.seed, max_epochs=args.epochs))
        model.meta["name"] = f"genir-{collection.name}"
        model.meta["data"] = data_spec(args.data)  # editing commands find the indexed corpus from it
        try:
            if state.is_main_process:  # one writer; the others return once the folder is complete
                model.save(args.out, overwrite=args.overwrite, lock=lock)
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


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate a saved model on a split."""
    from genedit.data import load_collection
    from genedit.eval import write_trec_run
    from genedit.model.genir import GenIRModel

    collection = load_collection(args.data)
    run, result, seconds = evaluate_model(GenIRModel.load(args.model, device=args.device, dtype=args.dtype), collection, args.split)
    print(format_table([Row("genir", result.aggregate, seconds)]))
    top1 = {q: r[0] for q, r in run.ranking.items() if r}  # lets `genedit check` name the queries that lose rank 1
    write_json(args.json, {"model": str(args.model), "split": args.split, "n_queries": result.n_queries, **result.aggregate, "top1": top1})
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
    write_json(args.json, {"baseline": args.name, "split": args.split, "n_queries": result.n_queries, **result.aggregate})
    return 0


