"""genedit localize: find where a model retrieves and write the Circuit."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genedit.cli.common import check_output_file


def cmd_localize(args: argparse.Namespace) -> int:
    """Localize the retrieval circuit of a model and write the circuit, plots and summary."""
    from circuits import Circuit, LocalizeConfig, localize, summary_markdown, write_report
    from genedit.data import load_collection
    from genedit.model.genir import GenIRModel

    if args.compare and Path(args.compare).resolve() == Path(args.out).resolve():
        raise ValueError(f"--out and --compare are the same file ({Path(args.out).resolve()}): the new circuit would replace the reference; choose another --out")
    check_output_file(args.out)
    if args.plots:
        check_output_file(str(Path(args.plots) / "summary.md"))
    model = GenIRModel.load(args.model, device=args.device, dtype=args.dtype)
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
    print(summary_markdown(circuit))
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


