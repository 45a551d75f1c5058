"""Dev loop for the add protocol: variants of an add method measured on training-side texts only, never test queries.

Loads the add protocol's base model from a `genedit bench` output folder (trained and cached there by an earlier
run, or trained now), adds the protocol's new documents with each variant, measures, undoes, and prints a table:
- new (dev): the new documents' sentences the edit does not train on (sentences 4-8 of their text; the edit's
  pseudo-queries use the first three), Hits@1 / Hits@10;
- efficacy: the edit's own pseudo-queries, Hits@1;
- old (train): the untouched documents' training queries: Hits@1, Hits@10, and how many lose rank 1 against the
  unedited base (the bench's lost@1, on training queries instead of test queries); methods that read preserved
  texts (rank-one's guard, doc_scale, protect, repair) see these, so this column flatters them;
- old dev: sentences 4-8 of the untouched documents' text that are not preserved texts (no edit reads them, the
  trainer never saw them): the same three columns, the honest one for those methods.

    python -m benchmarks.dev_add --out runs/q22 --variants row rank-one 'rank-one:lam=1.0' 'rank-one:doc_scale=true'

A variant is `method[:param=value,...]`; values are parsed as Python literals (`true`/`false` accepted).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import logging
import sys
import time
from pathlib import Path

from benchmarks.judge import lost_top1
from benchmarks.oracle import ModelCache
from benchmarks.plan import BenchConfig, plan
from benchmarks.protocols.base import Pairs
from benchmarks.ranking import Ranker
from circuits.artifact import Circuit
from genedit.data.types import Query
from genedit.edit import Editor
from genedit.eval.types import Run
from genedit.model.rows import pseudo_queries

log = logging.getLogger(__name__)


def parse_variant(text: str) -> tuple[str, dict[str, object]]:
    """'rank-one:lam=1.0,doc_scale=true' -> ('rank-one', {'lam': 1.0, 'doc_scale': True})."""
    method, _, rest = text.partition(":")
    params: dict[str, object] = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        value = {"true": "True", "false": "False"}.get(value.lower(), value)
        try:
            params[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            params[key] = value
    return method, params


def register_variant(text: str) -> str:
    """Register `method:params` as a method of its own (its defaults changed) so `genedit bench`'s harness can run it; its name."""
    from genedit.edit.methods import _REGISTRY, method_names, register

    method_names()  # loads the registry
    method, params = parse_variant(text)
    if not params:
        return method
    name = method + "+" + "+".join(f"{k}={v}" for k, v in params.items())
    cls = dataclasses.make_dataclass(name.replace("-", "_"), [(k, type(v), dataclasses.field(default=v)) for k, v in params.items()], bases=(_REGISTRY[method],))
    cls.name = name
    register(cls)
    return name


def hits(run: Run, pairs: Pairs, k: int) -> float:
    """Share of queries with a relevant document in the top k."""
    if not pairs:
        return 0.0
    return sum(1 for q, rel in pairs if rel.intersection(run.ranking.get(q.id, [])[:k])) / len(pairs)


def main(argv: list[str] | None = None) -> None:
    """Measure each variant on the dev sets (see module doc) and print one row per variant."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="default")
    ap.add_argument("--out", type=Path, default=Path("runs/q22"))
    ap.add_argument("--recipe", default="default")
    ap.add_argument("--variants", nargs="+", default=["row", "rank-one"])
    ap.add_argument("--bench", action="store_true", help="run `genedit bench`'s add protocol on the variants instead (test queries: judge, never tune)")
    ap.add_argument("--protocols", nargs="+", default=["add"], help="with --bench: the protocols to judge the variants on (add, delete, update, sequential)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")

    if args.bench:
        from benchmarks.harness import run_bench
        from benchmarks.results import protocol_table

        names = [register_variant(v) for v in args.variants]
        doc = run_bench(BenchConfig(data=args.data, out=args.out, protocols=args.protocols, methods=names, baselines=(), recipe=args.recipe),
                        command="python -m benchmarks.dev_add " + " ".join(sys.argv[1:]))
        for protocol in args.protocols if doc is not None else []:
            print(protocol_table(protocol, doc["protocols"][protocol]))
        return
    cfg = BenchConfig(data=args.data, out=args.out, protocols=["add"], methods=["row"], baselines=(), recipe=args.recipe)
    split = plan(cfg).splits["add"]
    base = ModelCache(cfg.out, cfg.base, cfg.train_config()).get(split.base, "add-base")
    model = base.model
    docs = [d for op in split.ops for d in op.docs]
    path = base.path / "circuit.json"  # as the bench: localized once, kept beside the cached model
    if path.exists():
        ed = Editor(model, corpus=split.base, circuit=Circuit.load(path))
    else:
        ed = Editor(model, corpus=split.base)
        ed.circuit.save(path)
    print(f"targets: {', '.join(map(str, ed.targets))}")
    own = ed.pseudo_queries(docs)
    new_dev: Pairs = []
    for d, qs in zip(docs, own):
        for i, s in enumerate(t for t in pseudo_queries(d, 8) if t not in set(qs)):
            new_dev.append((Query(f"dev:{d.id}:{i}", s), {d.id}))
    efficacy: Pairs = [(Query(f"pq:{d.id}:{i}", t), {d.id}) for d, ts in zip(docs, own) for i, t in enumerate(ts)]
    old: Pairs = split.sets["retained_train"]
    preserved = set(ed.ctx.preserved_texts()[0])  # what an edit may read of the old documents: never a dev text
    old_docs = [d for d in split.base.documents if d.id in set(model.docids)]
    old_dev: Pairs = [(Query(f"odev:{d.id}:{i}", t), {d.id}) for d in old_docs for i, t in enumerate(pseudo_queries(d, 8)[3:]) if t not in preserved]
    sets = {"new": new_dev, "efficacy": efficacy, "old": old, "old_dev": old_dev}
    ranker = Ranker(10)
    before = ranker.rank(model, sets, "base")
    print(f"data {args.data} ({args.recipe}): {len(docs)} new documents, dev texts: new {len(new_dev)}, efficacy {len(efficacy)}, "
          f"old train {len(old)}, old dev {len(old_dev)}")
    print("| variant | new dev H@1 | new dev H@10 | efficacy H@1 | old H@1 | old H@10 | lost@1 | old dev H@1 | old dev H@10 | old dev lost@1 | ms/doc |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| base | - | - | - | {hits(before, old, 1):.3f} | {hits(before, old, 10):.3f} | - | {hits(before, old_dev, 1):.3f} | {hits(before, old_dev, 10):.3f} | - | - |")
    for text in args.variants:
        method, params = parse_variant(text)
        t = time.perf_counter()
        entry = ed.add(docs, method=method, **params)
        ms = (time.perf_counter() - t) * 1000 / len(docs)
        after = ranker.rank(model, sets, text)
        lost, lost_dev = len(lost_top1(before, after, old)), len(lost_top1(before, after, old_dev))
        print(f"| {text} | {hits(after, new_dev, 1):.3f} | {hits(after, new_dev, 10):.3f} | {hits(after, efficacy, 1):.3f} | "
              f"{hits(after, old, 1):.3f} | {hits(after, old, 10):.3f} | {lost} | {hits(after, old_dev, 1):.3f} | {hits(after, old_dev, 10):.3f} | {lost_dev} | "
              f"{entry.seconds * 1000 / len(docs):.1f} ({ms:.0f}) |", flush=True)
        ed.undo()


if __name__ == "__main__":
    main()
