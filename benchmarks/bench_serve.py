"""Query latency of `genedit serve` while idle and while a stream of edits lands (issue 23's serving promise).

    python -m benchmarks.bench_serve --model DIR --data DATA [--idle 300] [--edits 20] [--method M]

Copies the model folder (the original is never edited), starts `genedit serve` on 127.0.0.1 at a free port, sends
one query per request from one client: first `--idle` queries with nothing else running, then queries back to back
while another client streams `--edits` edits (alternately adding a document, with a corpus text under a new id, and
deleting it again). Every loop is bounded. Prints one JSON line: idle and during-edit p50/p99 query latency, queries,
queries/s, edits, edits/s, edit acknowledgement latency, failed requests.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(model: Path, data: str | None, port: int, *, extra: list[str] | None = None, timeout: float = 300.0) -> subprocess.Popen:
    """`genedit serve` as a subprocess on 127.0.0.1:port, returned once /health answers (bounded wait)."""
    cmd = [sys.executable, "-m", "genedit", "serve", "--model", str(model), "--port", str(port), *(["--data", data] if data else []), *(extra or [])]
    errors = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: a server that logs a lot never blocks on it
    proc = subprocess.Popen(cmd, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL, stderr=errors, text=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            errors.seek(0)
            raise RuntimeError(f"genedit serve exited with {proc.returncode}: {errors.read().strip()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1.0).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise TimeoutError(f"genedit serve did not answer within {timeout:.0f} s")


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def peak_rss_mb(pid: int) -> float | None:
    """Peak resident memory of a process and its children (Linux /proc; None elsewhere), in MB."""
    total = 0
    pids = [pid]
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            pids += [int(c) for c in (task / "children").read_text().split()]
        for p in pids:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
    except (OSError, ValueError):
        return None
    return round(total / 1024, 1)


def run(args: argparse.Namespace) -> dict:
    """The benchmark: returns the figures it prints."""
    from genedit.data import load_collection
    from genedit.model.storage import is_model_dir

    if not is_model_dir(args.model):
        raise SystemExit(f"bench_serve: {args.model} is not a genedit model folder")
    meta = json.loads((Path(args.model) / "genedit.json").read_text()) if (Path(args.model) / "genedit.json").exists() else {}
    spec = args.data or meta.get("data")
    if spec is None:
        raise SystemExit("bench_serve: give --data (the corpus the model indexes)")
    collection = load_collection(spec)
    queries = [q.text for q in collection.queries.values()][: max(args.idle, 50)]
    docs = collection.documents
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    shutil.copytree(args.model, work / "model", ignore=shutil.ignore_patterns("LOCK"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(work / "model", spec, port)
    failed = 0
    try:
        with httpx.Client(base_url=base, timeout=120.0) as client:
            health = client.get("/health").json()

            def query(i: int) -> float | None:
                t = time.perf_counter()
                r = client.post("/search", json={"queries": [queries[i % len(queries)]], "k": 10})
                return (time.perf_counter() - t) * 1000 if r.status_code == 200 else None

            for i in range(10):  # warm-up
                query(i)
            idle: list[float] = []
            t_idle = time.perf_counter()
            for i in range(args.idle):
                ms = query(i)
                failed += ms is None
                idle += [ms] if ms is not None else []
            idle_seconds = time.perf_counter() - t_idle

            acks: list[float] = []
            edit_failures: list[str] = []
            done = threading.Event()

            def edits() -> None:
                with httpx.Client(base_url=base, timeout=600.0) as writer:
                    for i in range(args.edits):
                        doc = docs[(i // 2) % len(docs)]
                        new_id = f"bench-serve-{i // 2}"
                        t = time.perf_counter()
                        if i % 2 == 0:
                            body = {"documents": [{"_id": new_id, "title": doc.title, "text": doc.text}]} | ({"method": args.method} if args.method else {})
                            r = writer.post("/documents", json=body)
                        else:
                            r = writer.request("DELETE", "/documents", json={"ids": [new_id]} | ({"method": args.delete_method} if args.delete_method else {}))
                        if r.status_code == 200:
                            acks.append((time.perf_counter() - t) * 1000)
                        else:
                            edit_failures.append(f"{r.status_code} {r.text[:200]}")
                done.set()

            during: list[float] = []
            writer_thread = threading.Thread(target=edits)
            t_edit = time.perf_counter()
            writer_thread.start()
            i = 0
            while not done.is_set() and i < args.max_queries:
                ms = query(i)
                failed += ms is None
                during += [ms] if ms is not None else []
                i += 1
            writer_thread.join()
            edit_seconds = time.perf_counter() - t_edit
            final = client.get("/health").json()
            peak = peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(work, ignore_errors=True)
    return {
        "model": str(args.model), "n_docs": health["n_docs"], "fingerprint": health["fingerprint"], "cpus": os.cpu_count(),
        "idle_p50_ms": round(_percentile(idle, 0.5), 2), "idle_p99_ms": round(_percentile(idle, 0.99), 2),
        "edit_p50_ms": round(_percentile(during, 0.5), 2), "edit_p99_ms": round(_percentile(during, 0.99), 2),
        "p99_ratio": round(_percentile(during, 0.99) / _percentile(idle, 0.99), 2) if idle and during else None,
        "queries": len(idle) + len(during), "idle_queries_per_s": round(len(idle) / idle_seconds, 1) if idle_seconds else None,
        "edit_queries_per_s": round(len(during) / edit_seconds, 1) if edit_seconds else None,
        "edits": len(acks), "edits_per_s": round(len(acks) / edit_seconds, 2) if edit_seconds else None,
        "edit_ack_p50_ms": round(_percentile(acks, 0.5), 1), "edit_ack_max_ms": round(max(acks), 1) if acks else None,
        "failed": failed + len(edit_failures), "failed_edits": edit_failures[:3], "final_version": final["version"], "method": args.method or "default",
        "server_peak_mb": peak,
    }


def main(argv: list[str] | None = None) -> int:
    """Command line of the serving benchmark."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_serve", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="model folder (copied; the original is not edited)")
    p.add_argument("--data", help="the corpus the model indexes (its queries are sent, its texts added); default: the model's recorded data")
    p.add_argument("--idle", type=int, default=300, help="queries measured with no edit running")
    p.add_argument("--edits", type=int, default=20, help="edits streamed while queries are measured (adds and deletes alternate)")
    p.add_argument("--method", help="editing method of the adds (default: the server's, rank-one)")
    p.add_argument("--delete-method", help="editing method of the deletes (default: the server's, rank-one)")
    p.add_argument("--max-queries", type=int, default=20000, help="bound on queries during the edit stream")
    result = run(p.parse_args(argv))
    print(json.dumps(result))
    return 0 if result["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
