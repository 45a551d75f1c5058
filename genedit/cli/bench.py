"""genedit bench | check: judge edits against retrain oracles and baselines; gate a deployment on a reference."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genedit.cli.common import write_json


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the editing protocols and write OUT/results.json, results.md and plots (benchmarks.harness)."""
    from benchmarks.harness import failures, run_bench
    from benchmarks.plan import BenchConfig, parse_protocols
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
        n_edits=args.edits or (20 if quick else None),  # None: 1,000, or as many as the corpus can take (said below)
        every=args.every or (10 if quick else None),
        epochs=args.epochs or (2 if quick else BenchConfig.epochs),
        baselines=tuple(b.strip() for b in (args.baselines if args.baselines is not None else ("tfidf,bm25" if quick else "dense,tfidf,bm25")).split(",") if b.strip()),
        recipe=args.recipe,
        device=str(args.device),  # resolved by the CLI (auto: the GPU when there is one)
        dtype=str(args.dtype).removeprefix("torch.") if args.dtype is not None else None,
    )
    doc = run_bench(config, command=" ".join(["genedit", *getattr(args, "argv", [])]))
    if doc is None:  # launched on several processes: this one helped train the models, the main one reports
        return 0
    for note in doc.get("notes", []):
        print(f"note: {note}")
    for protocol, section in doc["protocols"].items():
        print(f"\n{protocol} ({section['wall_seconds']:.0f} s)\n")
        print(protocol_table(protocol, section))
    print(f"\nresults in {args.out} (results.json, results.md, *.png)")
    failed = failures(doc)
    if failed:  # a finding: a CI job that benchmarks after an edit must not see green
        print(f"genedit: {len(failed)} systems failed (results written; details in results.md):", file=sys.stderr)
        for line in failed:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Regression gate: exit 0 if the model keeps every measure of the reference within its allowed drop, else 1."""
    from benchmarks.check import format_report, parse_max_drop, run_check
    from genedit.data import load_collection

    drops = parse_max_drop(args.max_drop)
    collection = load_collection(args.data)
    result = run_check(args.model, args.reference, collection, args.split, drops, device=args.device, dtype=args.dtype)
    print(format_report(result))
    write_json(args.json, result.to_dict())
    return 0 if result.passed else 1


