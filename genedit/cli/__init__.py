"""Command line: genedit train | eval | baseline | localize | demo | add | delete | update | log | rollback | serve | bench | check.

Exit codes: 0 ok, 1 a finding (a regression, a circuit that differs), 2 bad input, 3 internal error, 4 a conflict with
another writer of the model folder (its lock is held, or HEAD moved since the model was loaded; nothing written).
"""

from __future__ import annotations

import logging
import os
import sys
import traceback

from genedit.cli.common import check_output_file, resolve_options
from genedit.cli.parser import build_parser

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the genedit command: 0 ok, 1 a finding, 2 bad input (one line), 3 internal error (-v: traceback), 4 conflict."""
    args = build_parser().parse_args(argv)  # argparse errors exit 2
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from genedit.data.types import DataError
    from genedit.model.storage import WriteConflict

    try:
        resolve_options(args)  # an unusable --device / --dtype exits 2 before anything is read or written
        for name in ("json", "run"):  # output files: fail before the work, not after
            if getattr(args, name, None):
                check_output_file(getattr(args, name))
        return args.func(args)
    except WriteConflict as exc:  # another writer of the model folder: not bad input, not a bug
        print(f"genedit: conflict: {exc}", file=sys.stderr)
        return 4
    except (DataError, ValueError, KeyError, FileNotFoundError, FileExistsError, OSError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"genedit: error: {msg}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug, not the user's input: say so, and show where with -v
        if args.verbose:
            traceback.print_exc()
        hint = "" if args.verbose else " (run with -v for the traceback)"
        print(f"genedit: internal error: {type(exc).__name__}: {exc}{hint}", file=sys.stderr)
        return 3


