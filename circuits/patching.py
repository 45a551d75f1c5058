"""Exact activation patching of decoder components and heads at step 0, batched over sites.

A site's activation is the output of its component's output linear at decoder position 0 (components) or a head's
d_head slice of that linear's input (heads). One decoder forward covers many patch settings: the query batch is
repeated P times and copy p gets its own set of patched sites (one site for a sweep, many for a circuit).
Modes: zero, mean (over a reference query set, computed once) and counterfactual (the activation of a donor
query, by default the next query in the set).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from tqdm.auto import tqdm
from transformers import DynamicCache

from circuits.metrics import RankStats, rank_stats
from circuits.runner import ATTENTION, CrossKV, Runner
from genedit.model.components import COMPONENTS, Site
from genedit.model.device import free_memory_bytes
from genedit.model.genir import Encoded, GenIRModel

log = logging.getLogger(__name__)

Mode = Literal["zero", "mean", "counterfactual"]
MODES: tuple[str, ...] = ("zero", "mean", "counterfactual")


@dataclass
class Activations:
    """Step-0 activations at every site for a batch of queries."""

    out: torch.Tensor  # [L, 3, B, d_model] output of each component's output linear (COMPONENTS order)
    head_in: torch.Tensor  # [L, 2, B, d_attn] input of the self-/cross-attention output linear (heads concatenated)

    def __len__(self) -> int:
        return self.out.shape[2]

    def select(self, index: torch.Tensor) -> "Activations":
        """Rows of the batch."""
        return Activations(self.out[:, :, index], self.head_in[:, :, index])

    def mean(self) -> "Activations":
        """Mean over the batch, kept as a batch of one."""
        return Activations(self.out.mean(2, keepdim=True), self.head_in.mean(2, keepdim=True))

    def expand(self, rows: int) -> "Activations":
        """A batch of one broadcast to `rows` rows."""
        return Activations(self.out.expand(-1, -1, rows, -1), self.head_in.expand(-1, -1, rows, -1))

    @staticmethod
    def cat(parts: Sequence["Activations"]) -> "Activations":
        """Concatenate batches."""
        return Activations(torch.cat([p.out for p in parts], 2), torch.cat([p.head_in for p in parts], 2))

    def site(self, site: Site, d_head: int) -> torch.Tensor:
        """The activation [B, width] of one site (a head: its d_head slice of the output linear's input)."""
        if site.head is None:
            return self.out[site.layer, COMPONENTS.index(site.component)]
        x = self.head_in[site.layer, ATTENTION.index(site.component)]
        return x[:, site.head * d_head : (site.head + 1) * d_head]


@dataclass
class CleanRun:
    """Unpatched step-0 activations and docid logits of a query set."""

    acts: Activations
    logits: torch.Tensor  # [Q, N]


@dataclass
class PatchSource:
    """Where patched activations come from: zeros, a mean over reference queries, or donor queries."""

    mode: Mode
    mean: Activations | None = None  # batch of one (mode 'mean')
    donors: torch.Tensor | None = None  # [Q] donor query index of each query (mode 'counterfactual')

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown patch mode {self.mode!r}; choose from {MODES}")
        if self.mode == "mean" and self.mean is None:
            raise ValueError("mode 'mean' needs mean activations (PatchSource.of_mean)")
        if self.mode == "counterfactual" and self.donors is None:
            raise ValueError("mode 'counterfactual' needs donor indices (PatchSource.rolled)")

    @classmethod
    def zero(cls) -> "PatchSource":
        """Zero ablation."""
        return cls("zero")

    @classmethod
    def of_mean(cls, reference: Activations) -> "PatchSource":
        """Mean ablation over the reference activations."""
        return cls("mean", mean=reference.mean())

    @classmethod
    def rolled(cls, n_queries: int, shift: int = 1) -> "PatchSource":
        """Counterfactual patching: query i takes the activation of query (i + shift) mod n."""
        if n_queries < 2:
            raise ValueError("counterfactual patching needs at least 2 queries")
        return cls("counterfactual", donors=(torch.arange(n_queries, device="cpu") + shift) % n_queries)

    def replacement(self, clean: Activations, index: torch.Tensor) -> Activations:
        """Replacement activations for the queries `index` of the clean run `clean`."""
        if self.mode == "zero":
            part = clean.select(index)
            return Activations(torch.zeros_like(part.out), torch.zeros_like(part.head_in))
        if self.mode == "mean":
            assert self.mean is not None
            return self.mean.expand(len(index))
        assert self.donors is not None
        return clean.select(self.donors[index.cpu()].to(clean.out.device))


def capture(runner: Runner, kv: CrossKV) -> tuple[Activations, torch.Tensor]:
    """Clean step-0 activations at every site and docid logits for one batch (one traced forward)."""
    cmap = runner.cmap
    outs: list[torch.Tensor] = []
    ins: list[torch.Tensor] = []
    with torch.no_grad():
        with runner.envoy.trace(*runner.trace_args(kv)):
            for layer in range(cmap.n_layers):
                for comp in COMPONENTS:
                    envoy = runner.envoys[(layer, comp)]
                    if comp in ATTENTION:
                        ins.append(envoy.input[:, 0].clone().save())
                    outs.append(envoy.output[:, 0].clone().save())
            logits = runner.envoy.output.save()
    L = cmap.n_layers
    out = torch.stack(outs).view(L, len(COMPONENTS), *outs[0].shape)
    head_in = torch.stack(ins).view(L, len(ATTENTION), *ins[0].shape)
    return Activations(out, head_in), logits


def clean_run(runner: Runner, encoded: Encoded, batch_size: int = 64, progress: bool = False) -> CleanRun:
    """Clean activations and logits of a whole query set, batched."""
    acts, logits = [], []
    for start in tqdm(range(0, len(encoded), batch_size), desc="clean run", disable=not progress, leave=False):
        kv = runner.cross_kv(encoded.select(slice(start, start + batch_size)))
        a, lg = capture(runner, kv)
        acts.append(a)
        logits.append(lg)
    return CleanRun(Activations.cat(acts), torch.cat(logits))


@dataclass
class _ModulePatch:
    """Row/column mask and values replacing one module's position-0 input or output in a repeated batch."""

    layer: int
    component: str
    on_input: bool
    mask: torch.Tensor  # [P*B, width] bool
    values: torch.Tensor  # [P*B, width]


def build_plan(runner: Runner, copies: Sequence[Sequence[Site]], replacement: Activations) -> list[_ModulePatch]:
    """Masks and values for each patched module, in execution order (input before output)."""
    cmap = runner.cmap
    B, P = len(replacement), len(copies)
    dh = cmap.d_head
    plan: list[_ModulePatch] = []
    by_module: dict[tuple[int, str, bool], list[tuple[int, int | None]]] = {}
    for p, sites in enumerate(copies):
        for s in sites:
            if s.head is not None and s.component not in ATTENTION:
                raise ValueError(f"{s}: only attention components have heads")
            by_module.setdefault((s.layer, s.component, s.head is not None), []).append((p, s.head))
    for layer in range(cmap.n_layers):
        for comp in COMPONENTS:
            for on_input in (True, False):
                entries = by_module.get((layer, comp, on_input))
                if not entries:
                    continue
                if on_input:  # heads concatenated: d_attn wide
                    source = replacement.head_in[layer, ATTENTION.index(comp)]  # type: ignore[arg-type]
                    D = cmap.d_attn
                else:  # the component's write to the residual stream: d_model wide
                    source = replacement.out[layer, COMPONENTS.index(comp)]
                    D = cmap.d_model
                mask = torch.zeros(P, B, D, dtype=torch.bool, device=source.device)
                for p, head in entries:
                    if head is None:
                        mask[p] = True
                    else:
                        mask[p, :, head * dh : (head + 1) * dh] = True
                values = source.unsqueeze(0).expand(P, B, D)
                plan.append(_ModulePatch(layer, comp, on_input, mask.view(P * B, D), values.reshape(P * B, D)))
    return plan


def run_patched(runner: Runner, kv: CrossKV, copies: Sequence[Sequence[Site]], replacement: Activations, cache: DynamicCache | None = None) -> torch.Tensor:
    """Docid logits [P, B, N]: copy p of the batch with the sites `copies[p]` replaced (all at once).

    `kv` holds the batch's cross-attention keys/values (repeated or not); `cache`, if given, is `kv.cache()` for
    exactly P x B rows (build it once and reuse it across forwards: building copies the keys/values).
    """
    B, P = len(replacement), len(copies)
    if cache is None:
        if kv.batch < P * B:
            kv = kv.repeat(math.ceil(P * B / kv.batch))
        kv = kv.head(P * B)
        cache = kv.cache()
    elif kv.batch != P * B:
        kv = kv.repeat(math.ceil(P * B / kv.batch)).head(P * B)
    plan = build_plan(runner, copies, replacement)
    envoys = runner.envoys
    with torch.no_grad():
        with runner.envoy.trace(*runner.trace_args(kv, cache)):
            for patch in plan:
                envoy = envoys[(patch.layer, patch.component)]
                if patch.on_input:
                    x = envoy.input
                    x[:, 0] = torch.where(patch.mask, patch.values, x[:, 0])
                else:
                    y = envoy.output
                    y[:, 0] = torch.where(patch.mask, patch.values, y[:, 0])
            logits = runner.envoy.output.save()
    return logits.view(P, B, -1)


@dataclass
class PatchStats:
    """Mean measures over the query set for one patch setting (or the clean run)."""

    n_queries: int
    hits1: float
    hits10: float
    mrr10: float
    mean_rank: float  # 1-based
    logit_diff: float
    logprob: float
    lost_top1: float = 0.0  # share of clean rank-1 queries that lose rank 1 (0 for the clean run)
    n_correct: int = 0  # clean rank-1 queries (the denominator of lost_top1)


class _Sums:
    """Running sums of per-query measures for P patch settings."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0
        self.correct = 0
        self.values = {k: torch.zeros(n, dtype=torch.float64, device="cpu") for k in ("hits1", "hits10", "rr10", "rank", "logit_diff", "logprob", "lost")}

    def add(self, index: slice, stats: RankStats, clean_hit: torch.Tensor | None) -> None:
        """Add a chunk of settings [p, B] for settings `index`."""
        v = self.values
        v["hits1"][index] += stats.hit1.sum(-1).double().cpu()
        v["hits10"][index] += stats.hit10.sum(-1).double().cpu()
        v["rr10"][index] += stats.rr10.sum(-1).double().cpu()
        v["rank"][index] += (stats.rank.double() + 1).sum(-1).cpu()
        v["logit_diff"][index] += stats.logit_diff.double().sum(-1).cpu()
        v["logprob"][index] += stats.logprob.double().sum(-1).cpu()
        if clean_hit is not None:
            v["lost"][index] += ((stats.rank > 0) & clean_hit).sum(-1).double().cpu()

    def result(self, i: int) -> PatchStats:
        """Means of setting i."""
        n = max(self.count, 1)
        v = {k: float(t[i]) for k, t in self.values.items()}
        return PatchStats(self.count, v["hits1"] / n, v["hits10"] / n, v["rr10"] / n, v["rank"] / n, v["logit_diff"] / n, v["logprob"] / n, v["lost"] / max(self.correct, 1), self.correct)


def clean_stats(clean: CleanRun, relevant: torch.Tensor) -> PatchStats:
    """Measures of the unpatched run."""
    sums = _Sums(1)
    stats = rank_stats(clean.logits.unsqueeze(0), relevant)
    sums.add(slice(0, 1), stats, None)
    sums.count = len(relevant)
    sums.correct = int((stats.rank == 0).sum())
    return sums.result(0)


CPU_ROWS = 512  # decoder rows per patched forward on the CPU (fastest on 2 cores; memory is not the bound there)
ROW_BUDGET = 16 * 2**30  # at most this many bytes of patched-forward activations on a GPU (a T5-large sweep then peaks near 20 GB)


def row_bytes(runner: Runner | GenIRModel, seq_len: int, dtype_bytes: int = 4) -> int:
    """Bytes one decoder row of a patched forward holds at its peak: every layer's cross-attention keys and values over
    the query's tokens, attention weights, MLP and residual activations, and the docid logits with their softmax.

    Measured on one H200: a T5-large shape (24 layers, d_model 1024) with 10k docids held 62 GB at 8192 rows of
    ~32-token queries, 7.6 MB a row; this estimate gives 7.3 MB there.
    """
    model = runner.model if isinstance(runner, Runner) else runner
    cmap = model.cmap
    per_layer = 2 * seq_len * cmap.d_attn + 2 * cmap.n_heads * seq_len + 8 * cmap.d_model  # MLP (d_ff ~ 4 d_model) and residual
    return dtype_bytes * (cmap.n_layers * per_layer + 3 * model.n_docs)


def patch_rows(runner: Runner | GenIRModel, seq_len: int, free_bytes: int | None = None, cpu_rows: int = CPU_ROWS) -> int:
    """Default decoder rows per step-0 forward: `cpu_rows` on the CPU (CPU_ROWS for patching); on a GPU what 40% of its
    free memory holds, at most ROW_BUDGET bytes (so a T5-large sweep fits a 40 GB card), between 64 and 8192 rows.

    The one sizing rule of step-0 forwards: localize's patched forwards and the edits' batches (genedit.edit.activations).
    """
    model = runner.model if isinstance(runner, Runner) else runner
    if free_bytes is None:
        free_bytes = free_memory_bytes(model.device)
    if free_bytes is None:
        return cpu_rows
    per_row = row_bytes(model, seq_len, model.dtype.itemsize)
    return int(max(64, min(8192, min(0.4 * free_bytes, ROW_BUDGET) // per_row)))


@dataclass
class PatchRun:
    """Measures of every patch setting over the query set, and what it cost."""

    clean: PatchStats
    patched: list[PatchStats]
    seconds: float
    n_forwards: int
    rows: int  # decoder rows run in total (queries x settings)


def evaluate_patches(
    runner: Runner,
    encoded: Encoded,
    relevant: torch.Tensor,
    copies: Sequence[Sequence[Site]],
    source: PatchSource,
    clean: CleanRun,
    *,
    batch_size: int = 32,
    max_rows: int = 1024,
    progress: bool = False,
    desc: str = "patching",
) -> PatchRun:
    """Measures of each patch setting (a set of sites patched together) over the query set, batched over settings."""
    t0 = time.perf_counter()
    n = len(copies)
    sums = _Sums(n)
    relevant = relevant.to(runner.device)
    clean_rank = rank_stats(clean.logits, relevant).rank
    forwards = rows = 0
    starts = list(range(0, len(encoded), batch_size))
    total = sum(math.ceil(n / max(1, max_rows // min(batch_size, len(encoded) - s))) for s in starts)
    bar = tqdm(total=total, desc=desc, disable=not progress, leave=False)
    for start in starts:
        index = torch.arange(start, min(start + batch_size, len(encoded)), device="cpu")
        B = len(index)
        per = max(1, min(n, max_rows // B))
        kv = runner.cross_kv(encoded.select(index)).repeat(per)
        caches = {per: kv.cache()}
        replacement = source.replacement(clean.acts, index)
        rel = relevant[index]
        hit = clean_rank[index] == 0
        for lo in range(0, n, per):
            chunk = copies[lo : lo + per]
            if len(chunk) not in caches:
                caches[len(chunk)] = kv.head(len(chunk) * B).cache()
            logits = run_patched(runner, kv.head(len(chunk) * B), chunk, replacement, caches[len(chunk)])
            sums.add(slice(lo, lo + len(chunk)), rank_stats(logits, rel), hit)
            forwards += 1
            rows += len(chunk) * B
            bar.update(1)
        sums.count += B
        sums.correct += int(hit.sum())
    bar.close()
    return PatchRun(clean_stats(clean, relevant), [sums.result(i) for i in range(n)], time.perf_counter() - t0, forwards, rows)


@dataclass
class SiteEffect:
    """Effect of patching one site on the query set (deltas are patched minus clean)."""

    site: str
    lost_top1: float  # share of clean rank-1 queries that lose rank 1 (the seed paper's measure)
    delta_hits1: float
    delta_hits10: float
    mean_rank: float  # 1-based mean rank of the relevant docid under the patch
    delta_logit_diff: float
    delta_logprob: float
    attribution: float | None = None  # attribution-patching estimate of delta of the attribution metric

    @property
    def key(self) -> tuple[float, float]:
        """Sort key, larger = more important: lost rank-1 share, then logit-difference drop."""
        return (self.lost_top1, -self.delta_logit_diff)


def site_effects(sites: Sequence[Site], run: PatchRun) -> list[SiteEffect]:
    """One SiteEffect per single-site patch setting of a PatchRun."""
    c = run.clean
    return [
        SiteEffect(str(s), p.lost_top1, p.hits1 - c.hits1, p.hits10 - c.hits10, p.mean_rank, p.logit_diff - c.logit_diff, p.logprob - c.logprob)
        for s, p in zip(sites, run.patched)
    ]


@dataclass
class SweepResult:
    """Exact single-site patching of many sites."""

    mode: str
    clean: PatchStats
    effects: list[SiteEffect] = field(default_factory=list)
    seconds: float = 0.0
    n_forwards: int = 0
    rows: int = 0


def sweep(
    runner: Runner,
    encoded: Encoded,
    relevant: torch.Tensor,
    sites: Sequence[Site],
    source: PatchSource,
    clean: CleanRun,
    *,
    batch_size: int = 32,
    max_rows: int = 1024,
    progress: bool = False,
) -> SweepResult:
    """Patch each site alone (exact patching) and measure the effect on retrieval."""
    run = evaluate_patches(runner, encoded, relevant, [[s] for s in sites], source, clean, batch_size=batch_size, max_rows=max_rows, progress=progress, desc=f"{source.mode} patching")
    log.info("exact %s patching: %d sites x %d queries in %.1fs (%d forwards)", source.mode, len(sites), len(encoded), run.seconds, run.n_forwards)
    return SweepResult(source.mode, run.clean, site_effects(sites, run), run.seconds, run.n_forwards, run.rows)
