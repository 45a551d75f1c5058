"""`localize`: the whole analysis of one GenIR model on one query split, returned as a Circuit artifact."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from circuits.artifact import AttributionSummary, BridgingHead, Circuit, CircuitSettings, Timings
from circuits.attribution import attribute, exact_metric_deltas, spearman
from circuits.lens import LensResult, cross_attention_reading, residual_ranks, site_words
from circuits.patching import MODES, CleanRun, Mode, PatchSource, SiteEffect, clean_run, patch_rows, sweep
from circuits.queries import select_queries
from circuits.runner import Runner
from circuits.stages import StageRule, Stages, label_stages, minimal_circuit
from genedit.data.types import Collection
from genedit.model.components import Site
from genedit.model.genir import Encoded, GenIRModel

log = logging.getLogger(__name__)


@dataclass
class LocalizeConfig:
    """Settings of `localize`."""

    split: str = "test"
    n_queries: int = 500  # analysed queries (a seeded sample when the split has more; all when fewer)
    mode: Mode = "mean"  # patching mode of the sweep: zero | mean | counterfactual
    heads: bool = True  # also patch every attention head
    batch_size: int = 16  # queries per decoder batch
    max_rows: int | None = None  # decoder rows per patched forward (queries x patch settings); bounds memory. None: 512 on the CPU, from free memory on a GPU (patching.patch_rows)
    seed: int = 0
    counterfactual_shift: int = 1  # counterfactual donor of query i: query i + shift (in analysis order)
    attribution: bool = True
    attribution_metric: str = "logit_diff"  # logit_diff (more linear: ranks sites closer to exact patching) | logprob
    circuit: bool = True  # search the minimal circuit
    circuit_target: float = 0.9  # share of Hits@1 the minimal circuit must keep
    lens: bool = True
    lens_queries: int = 32  # queries used for vocabulary projection and attention reading
    top_bridging_heads: int = 10
    stage_rule: StageRule = field(default_factory=StageRule)
    progress: bool = False

    @classmethod
    def matching(cls, settings: CircuitSettings, **overrides: Any) -> "LocalizeConfig":
        """The config that repeats the localization a saved circuit records (`circuit.settings`)."""
        values: dict[str, Any] = dict(
            split=settings.split,
            n_queries=settings.n_queries,
            mode=settings.mode,
            seed=settings.seed,
            heads=settings.heads,
            attribution=settings.attribution_metric is not None,
            attribution_metric=settings.attribution_metric or cls.attribution_metric,
            circuit_target=settings.circuit_target,
            lens_queries=settings.lens_queries,
            stage_rule=StageRule(settings.interaction_frac, settings.bridging_frac, settings.min_effect),
        )
        return cls(**{**values, **overrides})

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; choose from {MODES}")
        if self.n_queries < 1 or self.batch_size < 1 or (self.max_rows is not None and self.max_rows < 1):
            raise ValueError("n_queries, batch_size and max_rows must be >= 1")
        if not 0 < self.circuit_target <= 1:
            raise ValueError(f"circuit_target must be in (0, 1], got {self.circuit_target}")


def _source(mode: str, clean: CleanRun, shift: int) -> PatchSource:
    if mode == "zero":
        return PatchSource.zero()
    if mode == "mean":
        return PatchSource.of_mean(clean.acts)
    return PatchSource.rolled(len(clean.logits), shift)


def _bridging_heads(effects: list[SiteEffect], stages: Stages, lens: LensResult | None, top: int) -> list[BridgingHead]:
    """Cross-attention heads of the bridging layers (all layers if none is labelled bridging), ranked by effect."""
    layers = set(stages.bridging) if stages.bridging else None
    heads = [e for e in effects if (s := Site.parse(e.site)).head is not None and s.component == "cross_attn" and (layers is None or s.layer in layers)]
    heads.sort(key=lambda e: e.key, reverse=True)
    words = {w.site: w for w in lens.words} if lens else {}
    reading = {r.site: r for r in lens.reading} if lens else {}
    out = []
    for e in heads[:top]:
        w, r = words.get(e.site), reading.get(e.site)
        out.append(
            BridgingHead(
                site=e.site,
                lost_top1=e.lost_top1,
                delta_logit_diff=e.delta_logit_diff,
                top_words=w.top_words if w else [],
                query_word_lift=w.query_word_lift if w else None,
                example_query=lens.queries[0] if lens and lens.queries else None,
                example_attends=r.attended[0] if r and r.attended else [],
                example_writes=w.per_query[0] if w and w.per_query else [],
            )
        )
    return out


def localize(model: GenIRModel, collection: Collection, config: LocalizeConfig | None = None) -> Circuit:
    """Patch every decoder component (and head) at step 0, label stages, find the minimal circuit: a Circuit artifact."""
    config = config or LocalizeConfig()
    t_start = time.perf_counter()
    timings = Timings()
    model.hf.eval()
    cmap = model.cmap
    queries = select_queries(model, collection, config.split, config.n_queries, config.seed)
    Q = len(queries.texts)
    log.info("localizing %s (%s, %d decoder layers x %d heads) on %d %s queries, %s patching", model.meta.get("name", "model"), cmap.arch, cmap.n_layers, cmap.n_heads, Q, config.split, config.mode)

    t = time.perf_counter()
    encoded: Encoded = model.encode(queries.texts, batch_size=64, progress=config.progress)
    runner = Runner(model)
    clean = clean_run(runner, encoded, batch_size=64, progress=config.progress)
    timings.encode = time.perf_counter() - t

    source = _source(config.mode, clean, config.counterfactual_shift)
    sites = cmap.sites(heads=config.heads)
    max_rows = config.max_rows or patch_rows(runner, encoded.hidden.shape[1])
    log.info("%d decoder rows per patched forward", max_rows)
    kw = dict(batch_size=config.batch_size, max_rows=max_rows, progress=config.progress)
    result = sweep(runner, encoded, queries.relevant, sites, source, clean, **kw)  # type: ignore[arg-type]
    timings.sweep, timings.sweep_forwards = result.seconds, result.n_forwards
    effects = result.effects
    log.info("clean run: hits@1 %.3f hits@10 %.3f (%d queries, %d at rank 1)", result.clean.hits1, result.clean.hits10, Q, result.clean.n_correct)

    attribution_summary = None
    if config.attribution:
        attr = attribute(runner, encoded, queries.relevant, sites, source, clean, metric=config.attribution_metric, batch_size=64, progress=config.progress)
        for e, score in zip(effects, attr.scores):
            e.attribution = score
        exact = exact_metric_deltas(effects, config.attribution_metric)
        comp = [i for i, s in enumerate(sites) if s.head is None]
        attribution_summary = AttributionSummary(
            config.attribution_metric,
            spearman(attr.scores, exact),
            spearman([attr.scores[i] for i in comp], [exact[i] for i in comp]),
            attr.seconds,
        )
        timings.attribution = attr.seconds
        log.info("attribution patching vs exact (%s): Spearman %.3f (components %.3f)", config.attribution_metric, attribution_summary.spearman, attribution_summary.spearman_components)

    stages = label_stages(effects, cmap.n_layers, config.stage_rule)
    log.info("stages: priming %s, bridging %s, interaction %s", stages.priming, stages.bridging, stages.interaction)

    lens = None
    if config.lens:
        t = time.perf_counter()
        k = min(config.lens_queries, Q)
        gen = torch.Generator().manual_seed(config.seed)
        pick = torch.randperm(Q, generator=gen, device="cpu")[:k].sort().values
        texts = [queries.texts[i] for i in pick.tolist()]
        acts = clean.acts.select(pick.to(clean.acts.out.device))
        lens = LensResult(
            queries=texts,
            words=site_words(model, acts, sites, texts, seed=config.seed),
            reading=cross_attention_reading(model, texts),
            residual=residual_ranks(runner, encoded, queries.relevant),
            approximate=cmap.post_ln,
        )
        timings.lens = time.perf_counter() - t

    minimal = None
    if config.circuit:
        t = time.perf_counter()
        mean_source = source if source.mode == "mean" else PatchSource.of_mean(clean.acts)
        minimal = minimal_circuit(runner, encoded, queries.relevant, effects, mean_source, clean, target=config.circuit_target, **kw)  # type: ignore[arg-type]
        timings.circuit = time.perf_counter() - t

    timings.total = time.perf_counter() - t_start
    settings = CircuitSettings(
        split=config.split,
        n_queries=Q,
        mode=config.mode,
        seed=config.seed,
        heads=config.heads,
        attribution_metric=config.attribution_metric if config.attribution else None,
        circuit_target=config.circuit_target,
        circuit_ablation="mean",
        lens_queries=len(lens.queries) if lens else 0,
        interaction_frac=config.stage_rule.interaction_frac,
        bridging_frac=config.stage_rule.bridging_frac,
        min_effect=config.stage_rule.min_effect,
    )
    circuit = Circuit(
        fingerprint=model.fingerprint(),
        arch=cmap.arch,
        n_layers=cmap.n_layers,
        n_heads=cmap.n_heads,
        post_ln=cmap.post_ln,
        settings=settings,
        clean=result.clean,
        effects=effects,
        stages=stages,
        interaction_mlps=list(stages.interaction_mlps),
        bridging_heads=_bridging_heads(effects, stages, lens, config.top_bridging_heads) if config.heads else [],
        minimal=minimal,
        attribution=attribution_summary,
        lens=lens,
        timings=timings,
        model_name=str(model.meta.get("name", "")),
    )
    log.info("localization done in %.1fs", timings.total)
    return circuit
