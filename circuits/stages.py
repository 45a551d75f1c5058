"""Stage labels of decoder layers (priming / bridging / interaction) and the minimal circuit search.

Stage rule (effects are the component-level patching effects of the sweep; the measure is the share of rank-1
queries that lose rank 1, or, when no component moves any query, the drop of the mean logit difference):
- interaction (stage III): find the contiguous block of layers that ends at the LAST layer whose MLP effect is at
  least `interaction_frac` x the largest MLP effect, extended downward while the MLP effect stays >= that threshold
  (these are the interaction MLPs, the editing targets); the stage runs from the block's first layer to the top;
- bridging (stage II): the layers below the interaction block, from the lowest layer whose cross-attention effect
  is at least `bridging_frac` x the largest cross-attention effect (over all layers) up to the interaction block;
- priming (stage I): the remaining layers below.
Effects under `min_effect` (absolute share of rank-1 queries lost) never qualify, so a model whose MLPs barely
matter gets no interaction stage rather than one picked from noise.

Minimal circuit: the smallest set of components (self-attention, cross-attention, MLP of each layer) that, with
every other component mean-ablated at once, keeps >= `target` x the full model's Hits@1; it is `met` only when
that set is smaller than the whole decoder (which keeps the target by definition). Search: components sorted
by effect, the shortest sufficient prefix (all prefixes evaluated in one batched pass), then pruning (drop the
component whose removal hurts least while the target still holds, until none can go).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from circuits.patching import CleanRun, PatchSource, SiteEffect, evaluate_patches
from circuits.runner import Runner
from genedit.model.components import COMPONENTS, Site
from genedit.model.genir import Encoded

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageRule:
    """Thresholds of the stage rule (fractions of the largest effect of the component type)."""

    interaction_frac: float = 0.5
    bridging_frac: float = 0.25
    min_effect: float = 0.02  # absolute floor on the lost-rank-1 share (ignored for the logit-difference fallback)

    def describe(self) -> str:
        """The rule in one paragraph, for reports."""
        return (
            f"interaction = from the first layer of the last contiguous block of layers whose MLP effect is >= "
            f"{self.interaction_frac:g} x the largest MLP effect up to the top layer (the block's MLPs are the "
            f"interaction MLPs); "
            f"bridging = the layers below it, from the lowest layer whose cross-attention effect is >= "
            f"{self.bridging_frac:g} x the largest cross-attention effect; priming = the layers below bridging. "
            f"Effects below {self.min_effect:g} (share of rank-1 queries lost) never qualify."
        )


@dataclass
class Stages:
    """Decoder layers of each stage, with the rule and the effect measure that produced them."""

    priming: list[int]
    bridging: list[int]
    interaction: list[int]
    interaction_mlps: list[int]  # the qualifying MLP block inside the interaction stage
    rule: str
    measure: str
    mlp_effect: list[float]
    cross_effect: list[float]

    def label(self, layer: int) -> str:
        """Stage name of a layer."""
        if layer in self.interaction:
            return "interaction"
        if layer in self.bridging:
            return "bridging"
        return "priming"


def layer_effects(effects: Sequence[SiteEffect], n_layers: int, component: str) -> tuple[list[float], str]:
    """Per-layer effect of one component type and the measure used ('lost_top1' or 'logit_diff_drop')."""
    by_site = {e.site: e for e in effects}
    rows = [by_site.get(str(Site(layer, component))) for layer in range(n_layers)]  # type: ignore[arg-type]
    if any(r is None for r in rows):
        raise ValueError(f"effects lack component-level {component} sites")
    lost = [r.lost_top1 for r in rows]  # type: ignore[union-attr]
    component_max = max((e.lost_top1 for e in effects if Site.parse(e.site).head is None), default=0.0)
    if component_max > 0:
        return lost, "lost_top1"
    return [max(0.0, -r.delta_logit_diff) for r in rows], "logit_diff_drop"  # type: ignore[union-attr]


def label_stages(effects: Sequence[SiteEffect], n_layers: int, rule: StageRule | None = None) -> Stages:
    """Priming / bridging / interaction layers from component-level patching effects (see the module docstring)."""
    rule = rule or StageRule()
    mlp, measure = layer_effects(effects, n_layers, "mlp")
    cross, _ = layer_effects(effects, n_layers, "cross_attn")
    floor = rule.min_effect if measure == "lost_top1" else 0.0
    interaction: list[int] = []
    block: list[int] = []
    top = max(mlp)
    if top > 0 and top >= floor:
        threshold = max(rule.interaction_frac * top, floor)
        last = max(i for i, v in enumerate(mlp) if v >= threshold)
        first = last
        while first > 0 and mlp[first - 1] >= threshold:
            first -= 1
        block = list(range(first, last + 1))
        interaction = list(range(first, n_layers))
    below = interaction[0] if interaction else n_layers
    bridging: list[int] = []
    ctop = max(cross)
    if ctop > 0:
        strong = [i for i in range(below) if cross[i] >= max(rule.bridging_frac * ctop, floor) and cross[i] > 0]
        if strong:
            bridging = list(range(min(strong), below))
    start = bridging[0] if bridging else below
    priming = list(range(start))
    return Stages(priming, bridging, interaction, block, rule.describe(), measure, mlp, cross)


@dataclass
class MinimalCircuit:
    """The smallest component set found that keeps the target share of the model's Hits@1 (others mean-ablated)."""

    sites: list[str]
    hits1: float  # Hits@1 with only these components live
    full_hits1: float
    kept_hits1: float  # hits1 / full_hits1
    n_components: int  # size of the circuit
    n_total: int  # components in the decoder
    target: float
    met: bool  # a circuit smaller than the whole decoder kept the target (the whole decoder always does)
    ablation: str  # how the other components were removed
    evaluations: int  # patch settings evaluated

    def __post_init__(self) -> None:
        # artifacts written before `met` meant "smaller than the decoder" may say met for the whole decoder
        if self.n_components >= self.n_total:
            self.met = False

    @property
    def size_fraction(self) -> float:
        """Share of the decoder's components kept."""
        return self.n_components / max(self.n_total, 1)


def minimal_circuit(
    runner: Runner,
    encoded: Encoded,
    relevant: torch.Tensor,
    effects: Sequence[SiteEffect],
    source: PatchSource,
    clean: CleanRun,
    *,
    target: float = 0.9,
    batch_size: int = 32,
    max_rows: int = 1024,
    progress: bool = False,
) -> MinimalCircuit:
    """Greedy-then-prune search of the smallest component set keeping `target` x Hits@1 (see the module docstring)."""
    cmap = runner.cmap
    components = [Site(layer, comp) for layer in range(cmap.n_layers) for comp in COMPONENTS]
    by_site = {e.site: e for e in effects}
    missing = [str(s) for s in components if str(s) not in by_site]
    if missing:
        raise ValueError(f"effects lack components {missing[:3]}")
    order = sorted(components, key=lambda s: by_site[str(s)].key, reverse=True)
    kw = dict(batch_size=batch_size, max_rows=max_rows, progress=progress)

    def ablate(keep: Sequence[Site]) -> list[Site]:
        kept = set(keep)
        return [s for s in components if s not in kept]

    prefixes = [order[:k] for k in range(len(order) + 1)]
    run = evaluate_patches(runner, encoded, relevant, [ablate(p) for p in prefixes], source, clean, desc="circuit prefixes", **kw)  # type: ignore[arg-type]
    evaluations = len(prefixes)
    full = run.clean.hits1
    goal = target * full
    if full <= 0:
        log.warning("the model ranks no query correctly; the minimal circuit is empty")
        return MinimalCircuit([], 0.0, 0.0, float("nan"), 0, len(components), target, False, source.mode, evaluations)
    k = next((i for i, st in enumerate(run.patched) if st.hits1 >= goal), len(order))
    circuit = list(order[:k])
    hits = run.patched[k].hits1
    while circuit:
        variants = [[s for s in circuit if s != drop] for drop in circuit]
        run = evaluate_patches(runner, encoded, relevant, [ablate(v) for v in variants], source, clean, desc="circuit pruning", **kw)  # type: ignore[arg-type]
        evaluations += len(variants)
        best = max(range(len(variants)), key=lambda i: run.patched[i].hits1)
        if run.patched[best].hits1 < goal:
            break
        circuit, hits = variants[best], run.patched[best].hits1
    circuit.sort(key=lambda s: (s.layer, COMPONENTS.index(s.component)))
    met = hits >= goal and len(circuit) < len(components)  # the unablated model, the last prefix, always meets it
    if not met:
        log.warning("no circuit smaller than the whole decoder keeps %.0f%% of Hits@1", 100 * target)
    result = MinimalCircuit([str(s) for s in circuit], hits, full, hits / full, len(circuit), len(components), target, met, source.mode, evaluations)
    log.info("minimal circuit: %d/%d components keep %.1f%% of Hits@1 (%s)", result.n_components, result.n_total, 100 * result.kept_hits1, ", ".join(result.sites))
    return result
