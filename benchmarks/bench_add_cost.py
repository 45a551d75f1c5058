"""Cost of adds on a trained model: ms per document of one batched add, or seconds per single-document edit.

    python -m benchmarks.bench_add_cost --model ~/.cache/genedit/default-model --data default --docs runs/docstrings --n 200
    python -m benchmarks.bench_add_cost --model MODEL --data default --docs runs/shortdocs --n 50 --single

Takes the first `--n` documents of `--docs` (ids prefixed `new-`), adds them with `--method` after a warm-up edit
of two (statistics, caches), and prints one JSON line: ms/doc of the edit, of its row embedding (models whose rows
are sentence embeddings) and of the rest; with `--single`, one edit per document (a stream, as a live index takes
them): the median and the slowest edit's seconds.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from genedit.data import load_collection
from genedit.data.types import Document
from genedit.edit import Editor
from genedit.model.genir import GenIRModel


def main(argv: list[str] | None = None) -> None:
    """Add `--n` documents once and print what each part cost per document."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--data", default="default", help="the corpus the model indexes")
    ap.add_argument("--docs", required=True, help="corpus whose first --n documents are added")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--method", default="rank-one")
    ap.add_argument("--single", action="store_true", help="one edit per document: seconds per edit")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.n < 1:
        ap.error("--n must be >= 1")  # argparse: one line, exit 2
    try:  # bad input: one line, exit 2, before the model is loaded
        corpus, extra = load_collection(args.data), load_collection(args.docs)
        model = GenIRModel.load(args.model)
    except (OSError, ValueError) as e:
        print(f"bench_add_cost: {e}", file=sys.stderr)
        sys.exit(2)
    ed = Editor(model, corpus=corpus)
    docs = [Document("new-" + d.id, d.title, d.text) for d in extra.documents[: args.n]]
    ed.add(docs[:2], method=args.method)  # statistics and caches, as a long-lived editor has them
    ed.undo()
    spent = {"rows": 0.0}
    real = ed.ctx.sentence_rows

    def timed(batch: list[Document]):
        t = time.perf_counter()
        out = real(batch)
        spent["rows"] += time.perf_counter() - t
        return out

    if args.single:
        seconds = []
        for d in docs:
            t = time.perf_counter()
            ed.add([d], method=args.method)
            seconds.append(time.perf_counter() - t)
        seconds.sort()
        print(json.dumps({"method": args.method, "edits": len(docs), "median_s_per_edit": round(seconds[len(seconds) // 2], 3),
                          "max_s_per_edit": round(seconds[-1], 3), "total_s": round(sum(seconds), 1)}))
        return
    ed.ctx.sentence_rows = timed  # type: ignore[method-assign]
    t = time.perf_counter()
    ed.add(docs, method=args.method)
    total = time.perf_counter() - t
    ms = lambda s: round(s * 1000 / len(docs), 1)  # noqa: E731
    print(json.dumps({"method": args.method, "docs": len(docs), "ms_per_doc": ms(total), "rows_ms_per_doc": ms(spent["rows"]),
                      "rest_ms_per_doc": ms(total - spent["rows"])}))


if __name__ == "__main__":
    main()
