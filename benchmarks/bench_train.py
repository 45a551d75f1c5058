"""Quality bar of `genedit train`: the default model vs TF-IDF and dense MiniLM on a BEIR collection.

python -m benchmarks.bench_train [--data default] [--epochs 14] [--seed 0]
Prints test Hits@1/5/10 and MRR@10 of the untrained start (docid rows = sentence embeddings, decoder as the
recipe starts it: a mean-pooling readout by default), the trained GenIR model, and both baselines, with wall times.
"""

from __future__ import annotations

import argparse
import logging
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    """Train the default model on a collection and print it next to its start and the baselines."""
    import transformers

    from genedit.baselines import run_baseline
    from genedit.data import load_collection
    from genedit.eval import Row, evaluate, format_table
    from genedit.model.build import base_model
    from genedit.train.trainer import TrainConfig, train

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", default="default")
    p.add_argument("--epochs", type=int, default=TrainConfig.max_epochs)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    transformers.logging.set_verbosity_error()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    collection = load_collection(args.data)
    queries = [q for q, _ in collection.split("test")]
    test = collection.qrels["test"]

    model = base_model("minilm", seed=args.seed)
    t = time.monotonic()
    train(model, collection, TrainConfig(seed=args.seed, max_epochs=0))
    rows = [Row("untrained start", evaluate(model.rank(queries, k=100), test).aggregate, time.monotonic() - t)]

    model = base_model("minilm", seed=args.seed)
    t = time.monotonic()
    result = train(model, collection, TrainConfig(seed=args.seed, max_epochs=args.epochs))
    rows.append(Row(f"genedit GenIR ({len(result.history)} epochs)", evaluate(model.rank(queries, k=100), test).aggregate, time.monotonic() - t))
    for name in ("tfidf", "dense"):
        t = time.monotonic()
        rows.append(Row(name, run_baseline(name, collection, "test")[1].aggregate, time.monotonic() - t))
    print(f"{collection.name}: {len(collection.documents)} documents, {len(queries)} test queries")
    print(format_table(rows))


if __name__ == "__main__":
    main()
