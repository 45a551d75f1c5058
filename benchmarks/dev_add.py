"""Dev loop for the edit protocols: variants of a method measured on training-side texts only, never test queries.

Loads a protocol's base model (`--protocols add`, `update` or `delete`) from a `genedit bench` output folder (trained
and cached there by an earlier run, or trained now), edits it with each variant, measures, undoes, and prints a table:
- new (dev; add, update): the new texts' sentences the edit does not train on (sentences 4-8 of their text; the
  edit's pseudo-queries use the first three), Hits@1 / Hits@10;
- efficacy (add, update): the edit's own pseudo-queries, Hits@1;
- stale dev (update): sentences 4-8 of the replaced texts, Hits@10 (lower: forgotten);
- delete, on sentences 4-8 of the deleted documents: returned (queries of any dev set with a deleted document in
  their top 10), agreement of rank 1 with the retrained oracle (cached beside the base, or trained now), resurrection
  Hits@10 (their old rows put back);
- old (train): the untouched documents' training queries: Hits@1, Hits@10, and how many lose rank 1 against the
  unedited base (the bench's lost@1, on training queries instead of test queries); methods that read preserved
  texts (rank-one's guard, doc_scale, protect, repair) see these, so this column flatters them;
- old dev: sentences 4-8 of the untouched documents' text that are not preserved texts (no edit reads them, the
  trainer never saw them): the same three columns, the honest one for those methods.

    python -m benchmarks.dev_add --out runs/q22 --variants row rank-one 'rank-one:lam=1.0' 'rank-one:doc_scale=true'
    python -m benchmarks.dev_add --protocols update --recipe dsi --out runs/q22-dsi-upd --variants row rank-one

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
from benchmarks.protocols import PROTOCOLS
from benchmarks.protocols.base import Pairs
from benchmarks.ranking import Ranker
from benchmarks.rows import DeleteJudge
from circuits.artifact import Circuit
from genedit.data.types import Query
from genedit.edit import Editor
from genedit.eval.types import Run
from genedit.model.rows import pseudo_queries

log = logging.getLogger(__name__)
DEV_PROTOCOLS = ("add", "update", "delete")


def fmt(x: float) -> str:
    """A measure as the tables print it."""
    return f"{x:.3f}"


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
    ap.add_argument("--protocols", nargs="+", default=["add"], help="--bench: the protocols to judge on (add, delete, update, sequential); else the one to measure on dev texts (add, update, delete)")
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
    protocol = args.protocols[0]
    if len(args.protocols) != 1 or protocol not in DEV_PROTOCOLS:
        ap.error(f"without --bench, --protocols takes one of {', '.join(DEV_PROTOCOLS)}")
    cfg = BenchConfig(data=args.data, out=args.out, protocols=[protocol], methods=["row"], baselines=(), recipe=args.recipe)
    split = plan(cfg).splits[protocol]
    cache = ModelCache(cfg.out, cfg.base, cfg.train_config())
    base_label, oracle_label = PROTOCOLS[protocol].labels
    base = cache.get(split.base, base_label)
    model = base.model
    path = base.path / "circuit.json"  # as the bench: localized once, kept beside the cached model
    if path.exists():
        ed = Editor(model, corpus=split.base, circuit=Circuit.load(path))
    else:
        ed = Editor(model, corpus=split.base)
        ed.circuit.save(path)
    print(f"targets: {', '.join(map(str, ed.targets))}")
    op = split.ops[0]
    edited = op.doc_ids
    preserved = set(ed.ctx.preserved_texts()[0])  # what an edit may read of the old documents: never a dev text
    old_docs = [d for d in split.base.documents if d.id in set(model.docids) and d.id not in set(edited)]
    sets: dict[str, Pairs] = {
        "old": split.sets["retained_train"],
        "old_dev": [(Query(f"odev:{d.id}:{i}", t), {d.id}) for d in old_docs for i, t in enumerate(pseudo_queries(d, 8)[3:]) if t not in preserved],
    }
    if protocol in ("add", "update"):  # the new texts: sentences the edit does not train on, and its own pseudo-queries
        own = ed.pseudo_queries(list(op.docs))
        sets["new"] = [(Query(f"dev:{d.id}:{i}", s), {d.id}) for d, qs in zip(op.docs, own) for i, s in enumerate(t for t in pseudo_queries(d, 8) if t not in set(qs))]
        sets["efficacy"] = [(Query(f"pq:{d.id}:{i}", t), {d.id}) for d, ts in zip(op.docs, own) for i, t in enumerate(ts)]
    if protocol in ("update", "delete"):  # the texts being forgotten ("stale", "deleted" as the bench names them): their unseen sentences
        gone = [split.base.document(i) for i in edited]
        sets["stale" if protocol == "update" else "deleted"] = [(Query(f"fdev:{d.id}:{i}", t), {d.id}) for d in gone for i, t in enumerate(pseudo_queries(d, 8)[3:]) if t not in preserved]
    ranker = Ranker(10)
    deletion = None
    if protocol == "delete":  # the bench's deletion measures, on the dev texts: against the retrained model's rank 1
        retrained = cache.get(split.final, oracle_label).model
        old_rows = model.docid_rows().detach()[[model.doc_index(i) for i in edited]].clone()
        deletion = DeleteJudge(sets, edited, ranker.rank(retrained, {"deleted": sets["deleted"]}, "oracle"), old_rows, ranker)  # returned: over every dev set
        print(f"oracle (retrained without them): resurrect dev H@10 {fmt(deletion(retrained, deletion.oracle_run)['resurrection'])}")
        del retrained
    before = ranker.rank(model, sets, "base")
    print(f"data {args.data} ({args.recipe}), {protocol}: {len(edited)} documents, dev texts: "
          + ", ".join(f"{k} {len(v)}" for k, v in sets.items()))
    cols = {"add": ["new dev H@1", "new dev H@10", "efficacy H@1"],
            "update": ["new dev H@1", "new dev H@10", "efficacy H@1", "stale dev H@10"],
            "delete": ["returned", "agree@1 oracle (dev)", "resurrect dev H@10"]}[protocol]
    cols += ["old H@1", "old H@10", "lost@1", "old dev H@1", "old dev H@10", "old dev lost@1", "ms/doc"]
    print("| variant | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    rest = [fmt(hits(before, sets["old"], 1)), fmt(hits(before, sets["old"], 10)), "-", fmt(hits(before, sets["old_dev"], 1)), fmt(hits(before, sets["old_dev"], 10)), "-", "-"]
    head = ["-"] * 3
    if protocol == "update":
        head.append(fmt(hits(before, sets["stale"], 10)))
    elif deletion is not None:
        unedited = deletion(model, before)
        head[1:] = [fmt(unedited["oracle_agreement"]), fmt(unedited["resurrection"])]
    print("| base | " + " | ".join(head + rest) + " |")
    for text in args.variants:
        method, params = parse_variant(text)
        t = time.perf_counter()
        if protocol == "add":
            entry = ed.add(list(op.docs), method=method, **params)
        elif protocol == "update":
            entry = ed.update(list(op.docs), method=method, **params)
        else:
            entry = ed.delete(edited, method=method, **params)
        ms = (time.perf_counter() - t) * 1000 / len(edited)
        after = ranker.rank(model, sets, text)
        if deletion is not None:
            measures = deletion(model, after)
            head = [str(measures["deleted_returned"]), fmt(measures["oracle_agreement"]), fmt(measures["resurrection"])]
        else:
            head = [fmt(hits(after, sets["new"], 1)), fmt(hits(after, sets["new"], 10)), fmt(hits(after, sets["efficacy"], 1))]
            if protocol == "update":
                head.append(fmt(hits(after, sets["stale"], 10)))
        rest = [fmt(hits(after, sets["old"], 1)), fmt(hits(after, sets["old"], 10)), str(len(lost_top1(before, after, sets["old"]))),
                fmt(hits(after, sets["old_dev"], 1)), fmt(hits(after, sets["old_dev"], 10)), str(len(lost_top1(before, after, sets["old_dev"]))),
                f"{entry.seconds * 1000 / len(edited):.1f} ({ms:.0f})"]
        print(f"| {text} | " + " | ".join(head + rest) + " |", flush=True)
        ed.undo()

if __name__ == "__main__":
    main()
