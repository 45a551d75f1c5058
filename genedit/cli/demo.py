"""genedit demo: the main job on the bundled corpus, as a story a person follows."""

from __future__ import annotations

import argparse
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
    from genedit.model.genir import GenIRModel
    from genedit.model.storage import check_writable_model_dir, is_model_dir
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
    _, result, seconds = evaluate_model(model, collection, "test")
    rows.append(Row("genedit GenIR (ours)", result.aggregate, seconds))
    for name in ("tfidf", "dense"):
        t = time.monotonic()
        _, res = run_baseline(name, collection, "test")
        rows.append(Row({"tfidf": "TF-IDF", "dense": "dense MiniLM + faiss"}[name], res.aggregate, time.monotonic() - t))
    print(f"\nTest split of the bundled corpus ({result.n_queries} queries, {len(collection.documents)} documents):")
    print(format_table(rows))
    write_json(args.json, [{"system": r.system, **r.aggregate} for r in rows])
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


