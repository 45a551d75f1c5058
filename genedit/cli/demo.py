"""genedit demo: the main job on the bundled corpus, as a story a person follows."""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from genedit.cli.common import evaluate_model, write_json
from genedit.eval.report import Row, format_table
from genedit.model.storage import default_model_dir

if TYPE_CHECKING:
    from genedit.model.genir import GenIRModel


def _say_if_reference(model: GenIRModel) -> None:
    """Tell whether this default model is the one README's figures and the shipped circuit come from."""
    from circuits import reference_check

    check = reference_check(model)  # hashes every weight: once
    if check.is_reference:
        print(f"model {check.reference}: the reference default model (README's figures and circuits/default/ come from it)")
    else:
        print(f"model {check.fingerprint} differs from the reference default model {check.reference} (README's figures come from that one): "
              "it was trained with other settings, by another genedit version, or on hardware that rounds differently")


def cmd_demo(args: argparse.Namespace) -> int:
    """Train (or reuse) the default model on the bundled corpus, compare it with both baselines, localize it."""
    from genedit.baselines import run_baseline
    from genedit.data import load_collection
    from genedit.model.build import base_model
    from genedit.model.genir import GenIRModel
    from genedit.model.storage import FolderLock, check_writable_model_dir, is_model_dir
    from genedit.train.trainer import TrainConfig, train

    collection = load_collection("default")
    model_dir = Path(args.model_dir) if args.model_dir else default_model_dir()
    if not is_model_dir(model_dir) or args.retrain:
        check_writable_model_dir(model_dir, overwrite=True)  # never replace a folder that is not a genedit model
        lock = FolderLock(model_dir).acquire() if is_model_dir(model_dir) else None  # a write: held until saved (or exit)
        cap = f", capped at {args.minutes:g} minutes" if args.minutes else ""
        print(f"training the default model on {len(collection.documents)} documents (at most {args.epochs} epochs{cap}) ...", flush=True)
        model = base_model("minilm", device=args.device)
        result = train(model, collection, TrainConfig(minutes=args.minutes, max_epochs=args.epochs))
        model.meta["name"] = "genir-pydocs"
        model.meta["data"] = "default"
        model.save(model_dir, overwrite=True, lock=lock)
        if lock is not None:
            lock.release()
        print(f"trained in {result.seconds:.0f}s (best epoch {result.best_epoch}); saved to {model_dir}")
    else:
        print(f"reusing the trained default model in {model_dir} (--retrain to train again)")
        model = GenIRModel.load(model_dir, device=args.device)
    _say_if_reference(model)
    rows = []
    run, result, seconds = evaluate_model(model, collection, "test")
    rows.append(Row("genedit GenIR (ours)", result.aggregate, seconds))
    for name in ("tfidf", "dense"):
        t = time.monotonic()
        _, res = run_baseline(name, collection, "test")
        rows.append(Row({"tfidf": "TF-IDF", "dense": "dense MiniLM + faiss"}[name], res.aggregate, time.monotonic() - t))
    print(f"\nTest split of the bundled corpus ({result.n_queries} queries, {len(collection.documents)} documents):")
    print(format_table(rows))
    write_json(args.json, [{"system": r.system, **r.aggregate} for r in rows])
    out = Path(args.out or tempfile.mkdtemp(prefix="genedit-demo-"))
    circuit = None
    if not args.no_localize:
        from circuits import LocalizeConfig, localize, summary_markdown, write_report

        print("\nlocalizing the retrieval circuit ...", flush=True)
        circuit = localize(model, collection, LocalizeConfig(split="train", n_queries=args.queries))
        circuit.save(out / "circuit.json")
        write_report(circuit, out)
        print(summary_markdown(circuit))
        print(f"circuit, heatmaps and summary in {out}")
    if not args.no_edit:
        reference = out / "reference-eval.json"
        top1 = {q: r[0] for q, r in run.ranking.items() if r}
        write_json(str(reference), {"model": str(model_dir), "split": "test", "n_queries": result.n_queries, **result.aggregate, "top1": top1})
        _edit_story(model, collection, circuit, out, reference)
    return 0


def _rank_of(model: GenIRModel, query: str, docid: str, k: int = 100) -> str:
    """Where a document stands for a query: '3', or '-' when it is not in the top k (or not indexed)."""
    ranking = model.rank([query], k=k).ranking["0"]
    return str(ranking.index(docid) + 1) if docid in ranking else "-"


def _edit_story(model: GenIRModel, collection, circuit, out: Path, reference: Path) -> None:
    """Edit a copy of the default model: add documents, delete one, gate the result, roll it back."""
    from benchmarks.check import format_report, run_check
    from genedit.data.default import demo_edits
    from genedit.edit import Editor, rollback_model
    from genedit.edit.statistics import STATS_FILE
    from genedit.fileio import atomic_write
    from genedit.model.genir import GenIRModel
    from genedit.model.storage import current_version

    t0 = time.monotonic()
    copy = out / "edited-model"
    print(f"\nediting a copy of the model in {copy} (the cached model is never edited) ...", flush=True)
    model.save(copy)
    cached_stats = current_version(model.source) / STATS_FILE if model.source is not None else None
    if cached_stats is not None and cached_stats.is_file():  # a cache of derived data, checked when read
        shutil.copyfile(cached_stats, copy / STATS_FILE)
    edited = GenIRModel.load(copy, device=model.device)
    before = edited.fingerprint()
    editor = Editor(edited, corpus=collection, circuit=circuit)
    docs, queries = demo_edits()
    tops = {d.id: edited.rank([queries[d.id][0]], k=1).ranking["0"][0] for d in docs}
    entry = editor.add(docs, queries)
    if cached_stats is not None and not cached_stats.is_file() and (copy / STATS_FILE).is_file():
        atomic_write(cached_stats, (copy / STATS_FILE).read_bytes())  # the next demo reads them instead of 43 s of work
    print(f"add: {len(docs)} documents the model has never seen, with `{entry.method}` in {entry.seconds:.1f} s "
          f"(+{entry.params.get('prepare_seconds', 0.0):.0f} s for the model's preservation statistics, computed once and then kept); "
          f"journal entry {entry.index}")
    for d in docs:
        query = queries[d.id][0]
        print(f"  {query!r}\n      {d.id}: rank - -> {_rank_of(edited, query, d.id)}   (rank 1 before: {tops[d.id]})")
    victim_query, victim = next((q, top) for q, rel in collection.split("test") if (top := edited.rank([q.text], k=1).ranking["0"][0]) in rel)
    entry = editor.delete([victim])
    after = edited.rank([victim_query.text], k=10).ranking["0"]
    print(f"delete: {victim} with `{entry.method}` in {entry.seconds:.1f} s; journal entry {entry.index}")
    print(f"  {victim_query.text!r}\n      {victim}: rank 1 -> {'gone from the top 10' if victim not in after else after.index(victim) + 1}   (rank 1 now: {after[0]})")
    edited.save(copy)
    print(f"saved the edited model as a new version of {copy}: model {before} -> {edited.fingerprint()}")
    print(f"\ngate: genedit check --model {copy} --reference {reference} --data default")
    print("\n".join("  " + line for line in format_report(run_check(copy, reference, collection, "test", device=model.device)).splitlines()))
    undone = rollback_model(edited, 0)
    edited.save(copy)
    restored = edited.fingerprint()
    print(f"\nrollback to entry 0: undid {len(undone)} edits; model {restored} ({'identical to' if restored == before else 'DIFFERS from'} the unedited {before})")
    print(f"edit story done in {time.monotonic() - t0:.0f} s")


