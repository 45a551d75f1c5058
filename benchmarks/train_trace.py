"""Trace a training run epoch by epoch: dev figures (what early stopping sees), test figures and the dense teacher's.

    python -m benchmarks.train_trace DATA [--set FIELD=VALUE,... | --set plain] [--seed 0] [--out FILE.jsonl]

DATA is 'default' or a BEIR folder (e.g. one built by `python -m benchmarks.build_source_corpus DIR`). The run trains
`base_model("minilm")` with `TrainConfig(seed=SEED, **overrides)` exactly as `genedit train` does and prints, after
every epoch, Hits@1 / Hits@10 / MRR@10 on the dev split and on the test queries, plus dense MiniLM's figures on both
(mean-pooled sentence embeddings of 256 tokens, the `dense` baseline). The test column is for analysing a recipe
(does the dev split pick the right epoch? where does the student stop short of its teacher?), never for choosing one:
recipe choices are made on dev figures and confirmed on other corpora. The final line is the kept model's test figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import genedit.train.trainer as trainer  # noqa: E402
from benchmarks.bench_quality import parse_variant  # noqa: E402
from genedit.data import load_beir, load_collection  # noqa: E402
from genedit.eval.evaluate import evaluate  # noqa: E402
from genedit.model.build import base_model  # noqa: E402
from genedit.model.pretrained import mean_pool  # noqa: E402

MEASURES = ("hits@1", "hits@10", "mrr@10")


def main(argv: list[str] | None = None) -> int:
    """Train once with per-epoch traces; returns the exit code."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", help="'default' or a BEIR folder")
    p.add_argument("--set", default="", help="TrainConfig overrides FIELD=VALUE[,...] or a recipe name (e.g. plain)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="append the trace as one JSON line to this file")
    args = p.parse_args(argv)
    try:
        overrides = parse_variant(args.set) if args.set.strip() else {}
        cfg = trainer.TrainConfig(seed=args.seed, **overrides)
    except (ValueError, TypeError) as exc:
        p.error(str(exc))
    if args.data != "default" and not Path(args.data).is_dir():
        p.error(f"{args.data}: not a folder")
    logging.basicConfig(level=logging.WARNING)
    import transformers

    transformers.logging.set_verbosity_error()
    collection = load_collection("default") if args.data == "default" else load_beir(args.data)
    test = collection.split("test")
    model = base_model("minilm")
    trace: list[dict[str, object]] = []
    state: dict[str, object] = {}
    evaluate_dev = trainer.dev_scores
    t0 = time.monotonic()

    def measured(m, enc, targets):  # the trainer's dev scoring, plus the same figures on the test queries
        dev = evaluate_dev(m, enc, targets)
        if not state:
            state["test"] = m.encode([q.text for q, _ in test], max_length=cfg.query_tokens)
            relevant = torch.zeros(len(test), m.n_docs, dtype=torch.bool)
            for i, (_, rel) in enumerate(test):
                relevant[i, [m.doc_index(d) for d in rel]] = True
            state["relevant"] = relevant
            rows_enc = m.encode([d.indexing_text() for d in collection.documents], max_length=256)
            rows = torch.zeros(m.n_docs, rows_enc.hidden.shape[-1])
            rows[[m.doc_index(d.id) for d in collection.documents]] = F.normalize(mean_pool(rows_enc.hidden, rows_enc.mask), dim=-1)

            def dense(e, t):
                return trainer._measures(trainer.rank_of(F.normalize(mean_pool(e.hidden, e.mask), dim=-1) @ rows.T, t))

            state["dense"] = {"dev": dense(enc, targets), "test": dense(state["test"], relevant)}
            print("dense MiniLM   dev %.3f %.3f %.3f | test %.3f %.3f %.3f" % (*state["dense"]["dev"], *state["dense"]["test"]), flush=True)
        tst = evaluate_dev(m, state["test"], state["relevant"])
        trace.append({"epoch": len(trace) - 1, "dev": dev, "test": tst})
        print("epoch %3d      dev %.3f %.3f %.3f | test %.3f %.3f %.3f  (%.0f s)" % (len(trace) - 2, *dev, *tst, time.monotonic() - t0), flush=True)
        return dev

    trainer.dev_scores = measured  # the trainer scores its dev split through this module attribute
    try:
        result = trainer.train(model, collection, cfg)
    finally:
        trainer.dev_scores = evaluate_dev
    final = evaluate(model.rank([q for q, _ in test], k=100), collection.qrels["test"], MEASURES).aggregate
    print(f"kept epoch {result.best_epoch}: test Hits@1 {final['hits@1']:.3f} Hits@10 {final['hits@10']:.3f} "
          f"MRR@10 {final['mrr@10']:.3f} ({result.seconds:.0f} s of training)", flush=True)
    if args.out is not None:
        with args.out.open("a") as f:
            f.write(json.dumps({"data": args.data, "set": overrides, "seed": args.seed, "best_epoch": result.best_epoch,
                                "test": final, "dense": state.get("dense"), "trace": trace, "seconds": result.seconds}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
