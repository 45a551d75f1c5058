"""Speed of the exact patching sweep (all components + all heads) against one forward per (query, site).

    python -m benchmarks.bench_localize --model DIR [--queries 500] [--split train]

The naive reference (what the seed paper's code does: one full encoder+decoder forward per query and patch setting)
is timed on a few queries x all sites and extrapolated to the full sweep; the script says so in its output.
Also reports attribution patching's time and its Spearman rank correlation with exact patching.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from circuits.attribution import attribute, exact_metric_deltas, spearman
from circuits.metrics import rank_stats
from circuits.patching import PatchSource, clean_run, run_patched, sweep
from circuits.queries import select_queries
from circuits.reference import hooked
from circuits.runner import Runner
from genedit.data import load_collection
from genedit.model.components import Site
from genedit.model.genir import GenIRModel

log = logging.getLogger("bench_localize")


@dataclass
class BenchResult:
    """Numbers of one benchmark run."""

    model: str
    arch: str
    n_layers: int
    n_heads: int
    n_queries: int
    split: str
    n_sites: int
    threads: int
    encode_s: float  # encoder + clean run + mean activations (once)
    sweep_s: float  # exact patching of every site over every query
    sweep_forwards: int
    total_exact_s: float  # encode_s + sweep_s
    naive_queries: int  # queries timed in the naive loop
    naive_per_forward_s: float
    naive_extrapolated_s: float  # per-forward time x queries x sites
    speedup: float  # naive_extrapolated_s / total_exact_s
    naive_decoder_per_forward_s: float  # naive loop with the encoder run once per query (decoder-only forwards)
    naive_max_abs_diff: float  # naive vs batched patched logits on the timed subset
    attribution_s: float
    spearman: float  # attribution vs exact change of the metric, all sites
    spearman_components: float
    spearman_logit_diff: float  # the same with the logit-difference metric
    spearman_logit_diff_components: float
    clean_hits1: float


def _naive(model: GenIRModel, texts: list[str], sites: list[Site], source: PatchSource, clean_acts, index: list[int], full_forward: bool) -> tuple[float, int, list[torch.Tensor]]:
    """One forward per (query, site) with a torch hook on the site's output linear; returns seconds, forwards, logits."""
    dh = model.cmap.d_head
    outs: list[torch.Tensor] = []
    forwards = 0
    encoded = None if full_forward else model.encode(texts)
    t0 = time.perf_counter()
    for pos, (qi, text) in enumerate(zip(index, texts)):
        repl = source.replacement(clean_acts, torch.tensor([qi]))
        for site in sites:
            with hooked(model, {site: repl.site(site, dh)}), torch.no_grad():
                enc = model.encode([text]) if full_forward else encoded.select([pos])  # type: ignore[union-attr]
                outs.append(model.scorer(enc.hidden, enc.mask)[0])
            forwards += 1
    return time.perf_counter() - t0, forwards, outs


def run(model_dir: str, n_queries: int, split: str, naive_queries: int, batch_size: int, max_rows: int, seed: int) -> BenchResult:
    """Run the benchmark."""
    model = GenIRModel.load(model_dir)
    model.hf.eval()
    collection = load_collection("default")
    queries = select_queries(model, collection, split, n_queries, seed)
    Q = len(queries.texts)
    sites = model.cmap.sites(heads=True)

    t0 = time.perf_counter()
    encoded = model.encode(queries.texts, batch_size=64)
    runner = Runner(model)
    clean = clean_run(runner, encoded, batch_size=64)
    source = PatchSource.of_mean(clean.acts)
    encode_s = time.perf_counter() - t0
    result = sweep(runner, encoded, queries.relevant, sites, source, clean, batch_size=batch_size, max_rows=max_rows, progress=True)
    total = encode_s + result.seconds

    # naive reference on a subset, extrapolated
    index = list(range(0, Q, max(1, Q // naive_queries)))[:naive_queries]
    texts = [queries.texts[i] for i in index]
    naive_s, forwards, naive_logits = _naive(model, texts, sites, source, clean.acts, index, full_forward=True)
    per_forward = naive_s / forwards
    dec_s, dec_forwards, _ = _naive(model, texts, sites, source, clean.acts, index, full_forward=False)
    # correctness of the batched sweep on the subset: recompute the batched logits of these queries
    kv = runner.cross_kv(encoded.select(index))
    batched = run_patched(runner, kv, [[s] for s in sites], source.replacement(clean.acts, torch.tensor(index)))  # [P, B, N]
    naive = torch.stack(naive_logits).view(len(index), len(sites), -1).transpose(0, 1)
    diff = float((batched - naive).abs().max())
    ranks_equal = bool((rank_stats(batched, queries.relevant[index]).rank == rank_stats(naive, queries.relevant[index]).rank).all())
    if not ranks_equal:
        log.warning("naive and batched ranks differ on the subset (max |logit diff| %.2e)", diff)

    comp = [i for i, s in enumerate(sites) if s.head is None]
    correlations = {}
    for metric in ("logprob", "logit_diff"):
        scores = attribute(runner, encoded, queries.relevant, sites, source, clean, metric=metric, batch_size=64)
        exact = exact_metric_deltas(result.effects, metric)
        correlations[metric] = (scores.seconds, spearman(scores.scores, exact), spearman([scores.scores[i] for i in comp], [exact[i] for i in comp]))
    extrapolated = per_forward * Q * len(sites)
    return BenchResult(
        model=model_dir,
        arch=model.cmap.arch,
        n_layers=model.cmap.n_layers,
        n_heads=model.cmap.n_heads,
        n_queries=Q,
        split=split,
        n_sites=len(sites),
        threads=torch.get_num_threads(),
        encode_s=encode_s,
        sweep_s=result.seconds,
        sweep_forwards=result.n_forwards,
        total_exact_s=total,
        naive_queries=len(index),
        naive_per_forward_s=per_forward,
        naive_extrapolated_s=extrapolated,
        speedup=extrapolated / total,
        naive_decoder_per_forward_s=dec_s / dec_forwards,
        naive_max_abs_diff=diff,
        attribution_s=correlations["logprob"][0],
        spearman=correlations["logprob"][1],
        spearman_components=correlations["logprob"][2],
        spearman_logit_diff=correlations["logit_diff"][1],
        spearman_logit_diff_components=correlations["logit_diff"][2],
        clean_hits1=result.clean.hits1,
    )


def table(r: BenchResult) -> str:
    """The numbers as a small text table."""
    decoder_naive_s = r.naive_decoder_per_forward_s * r.n_queries * r.n_sites
    rows = [
        ("model", f"{r.arch}, {r.n_layers} layers x {r.n_heads} heads ({r.model})"),
        ("queries / sites", f"{r.n_queries} {r.split} queries x {r.n_sites} sites (components + heads), {r.threads} threads"),
        ("clean Hits@1", f"{r.clean_hits1:.3f}"),
        ("encode + clean run + means", f"{r.encode_s:.1f} s"),
        ("exact sweep (batched)", f"{r.sweep_s:.1f} s in {r.sweep_forwards} decoder forwards"),
        ("exact total", f"{r.total_exact_s:.1f} s"),
        ("naive per (query, site)", f"{1000 * r.naive_per_forward_s:.1f} ms per full forward (timed on {r.naive_queries} queries x {r.n_sites} sites)"),
        ("naive sweep (EXTRAPOLATED)", f"{r.naive_extrapolated_s:.0f} s = {r.naive_per_forward_s * 1000:.1f} ms x {r.n_queries} x {r.n_sites}"),
        ("speed-up vs naive", f"{r.speedup:.1f}x"),
        ("naive decoder-only", f"{1000 * r.naive_decoder_per_forward_s:.1f} ms per forward -> {decoder_naive_s:.0f} s extrapolated ({decoder_naive_s / r.total_exact_s:.1f}x)"),
        ("naive vs batched logits", f"max |diff| {r.naive_max_abs_diff:.2e}"),
        ("attribution patching", f"{r.attribution_s:.1f} s"),
        ("Spearman attr vs exact", f"{r.spearman:.3f} all sites, {r.spearman_components:.3f} components (metric: relevant log-prob)"),
        ("  with logit difference", f"{r.spearman_logit_diff:.3f} all sites, {r.spearman_logit_diff_components:.3f} components"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a trained GenIR model directory (this script trains nothing)")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--split", default="train", help="query split of the default corpus (test has only 405 queries)")
    parser.add_argument("--naive-queries", type=int, default=3, help="queries timed in the naive loop (x all sites)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-rows", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers as JSON here")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if not Path(args.model).exists():
        parser.error(f"--model {args.model}: no such directory")
    result = run(args.model, args.queries, args.split, args.naive_queries, args.batch_size, args.max_rows, args.seed)
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
