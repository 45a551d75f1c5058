"""`genedit serve`: serve a model folder over HTTP (FastAPI + uvicorn) while edits land.

Exit codes: 0 stopped cleanly, 2 bad input (not a model folder, a non-loopback address without a token),
4 another writer holds the folder (its pid and command are named; `--read-only` serves it as a replica instead).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys

TOKEN_ENV = "GENEDIT_TOKEN"


def is_loopback(host: str) -> bool:
    """Whether a bind address only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve a model folder: /health, /search, /documents (add, update, delete), /log, /rollback."""
    import uvicorn

    from genedit.model.device import resolve_device
    from genedit.model.storage import FolderLocked, is_model_dir
    from genedit.serve.app import create_app
    from genedit.serve.index import LiveIndex

    token = args.token or os.environ.get(TOKEN_ENV) or None
    if not is_loopback(args.host) and token is None:
        raise ValueError(f"refusing to serve on {args.host} without a token: anyone who reaches it could edit the index; "
                         f"give --token or {TOKEN_ENV}, or bind 127.0.0.1")
    if not is_model_dir(args.model):
        raise FileNotFoundError(f"{args.model}: not a genedit model folder (no genedit.json, docids.json and config.json)")
    device = resolve_device(args.device)
    try:
        index = LiveIndex(args.model, corpus=args.data, device=device, read_only=args.read_only,
                          poll_seconds=args.poll, lock_wait=args.wait)
    except FolderLocked as exc:
        print(f"genedit: conflict: {exc} (serve it with --read-only as a replica)", file=sys.stderr)
        return 4
    try:
        snap = index.snapshot
        mode = "read-only replica" if args.read_only else "writer"
        print(f"serving {args.model} ({mode}, version {snap.version or 'base'}, {snap.n_docs} documents, model {snap.fingerprint}, {device}) "
              f"on http://{args.host}:{args.port} (API docs: /docs)", flush=True)
        config = uvicorn.Config(create_app(index, token), host=args.host, port=args.port, log_level="info" if args.verbose else "warning",
                                access_log=bool(args.verbose))
        uvicorn.Server(config).run()
    finally:
        index.close()
    return 0


def add_serve_parser(sub: argparse._SubParsersAction) -> None:
    """Register `genedit serve`."""
    s = sub.add_parser("serve", help="serve a model folder over HTTP: search while documents are added, updated and deleted")
    s.add_argument("--model", required=True, help="model folder (the server is its one writer unless --read-only)")
    s.add_argument("--data", help="the corpus the model indexes (BEIR folder or 'default'); default: what it was trained on")
    s.add_argument("--host", default="127.0.0.1", help="bind address (anything but loopback needs a token)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
    s.add_argument("--token", help=f"bearer token required by the write endpoints (default: ${TOKEN_ENV})")
    s.add_argument("--read-only", action="store_true", help="a replica: no writes, follows the folder's HEAD and swaps in new versions")
    s.add_argument("--poll", type=float, default=1.0, help="seconds between HEAD checks of a read-only replica")
    s.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="wait up to SECONDS for another writer to release the folder (e.g. a restart right after the old server died); default: refuse at once")
    s.set_defaults(func=cmd_serve)

