"""Pictures and a one-minute Markdown summary of a Circuit."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from circuits.artifact import Circuit
from genedit.model.components import COMPONENTS, Site

log = logging.getLogger(__name__)

_LABELS = {"self_attn": "self-attn", "cross_attn": "cross-attn", "mlp": "MLP"}
_STAGE_MARK = {"priming": "I", "bridging": "II", "interaction": "III"}


def effect_grid(circuit: Circuit, measure: str = "lost_top1") -> np.ndarray:
    """Layer x component matrix [L, 3] of a SiteEffect field."""
    grid = np.full((circuit.n_layers, len(COMPONENTS)), np.nan)
    for e in circuit.effects:
        s = Site.parse(e.site)
        if s.head is None:
            grid[s.layer, COMPONENTS.index(s.component)] = _value(e, measure)
    return grid


def head_grid(circuit: Circuit, component: str, measure: str = "lost_top1") -> np.ndarray:
    """Layer x head matrix [L, H] of a SiteEffect field for one attention component."""
    grid = np.full((circuit.n_layers, circuit.n_heads), np.nan)
    for e in circuit.effects:
        s = Site.parse(e.site)
        if s.head is not None and s.component == component:
            grid[s.layer, s.head] = _value(e, measure)
    return grid


def _value(effect: object, measure: str) -> float:
    v = getattr(effect, measure)
    return float("nan") if v is None else float(v)


def _heatmap(ax: object, grid: np.ndarray, xlabels: list[str], title: str, stage_of: list[str]) -> object:
    im = ax.imshow(grid, aspect="auto", cmap="viridis", origin="lower")  # type: ignore[attr-defined]
    ax.set_xticks(range(len(xlabels)), xlabels, rotation=0 if len(xlabels) <= 4 else 90, fontsize=8)  # type: ignore[attr-defined]
    ax.set_yticks(range(grid.shape[0]), [f"L{i} ({_STAGE_MARK[stage_of[i]]})" for i in range(grid.shape[0])], fontsize=8)  # type: ignore[attr-defined]
    ax.set_title(title, fontsize=9)  # type: ignore[attr-defined]
    return im


def plot_heatmaps(circuit: Circuit, out_dir: str | Path) -> list[Path]:
    """Heatmaps (layer x component, layer x head) of the patching effects as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stage_of = [circuit.stages.label(i) for i in range(circuit.n_layers)]
    paths = []
    fig, axes = plt.subplots(1, 2, figsize=(9, 0.45 * circuit.n_layers + 2))
    for ax, (measure, title) in zip(axes, [("lost_top1", "share of rank-1 queries losing rank 1"), ("delta_logit_diff", "change of logit difference")]):
        im = _heatmap(ax, effect_grid(circuit, measure), [_LABELS[c] for c in COMPONENTS], title, stage_of)
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(f"{circuit.settings.mode} patching, {circuit.settings.n_queries} {circuit.settings.split} queries ({circuit.arch})", fontsize=10)
    fig.tight_layout()
    path = out_dir / "components.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    paths.append(path)
    if any(Site.parse(e.site).head is not None for e in circuit.effects):
        fig, axes = plt.subplots(1, 2, figsize=(max(8, 0.5 * circuit.n_heads * 2 + 3), 0.45 * circuit.n_layers + 2))
        for ax, comp in zip(axes, ("cross_attn", "self_attn")):
            im = _heatmap(ax, head_grid(circuit, comp), [str(h) for h in range(circuit.n_heads)], f"{_LABELS[comp]} heads: share losing rank 1", stage_of)
            ax.set_xlabel("head", fontsize=8)
            fig.colorbar(im, ax=ax, shrink=0.8)
        fig.tight_layout()
        path = out_dir / "heads.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    if circuit.lens and circuit.lens.residual:
        fig, ax = plt.subplots(figsize=(5, 3))
        layers = [r.layer for r in circuit.lens.residual]
        ax.plot(layers, [r.hits1 for r in circuit.lens.residual], marker="o", label="Hits@1")
        ax.plot(layers, [r.hits10 for r in circuit.lens.residual], marker="o", label="Hits@10")
        ax.set_xlabel("decoder layer (residual stream after it)")
        ax.set_ylabel("logit-lens retrieval")
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / "residual_lens.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


def query_word_lift_by_kind(circuit: Circuit) -> dict[str, float]:
    """Mean query-word lift of cross-attention heads, self-attention heads and components (the bridging-head check)."""
    if circuit.lens is None:
        return {}
    groups: dict[str, list[float]] = {"cross-attn heads": [], "self-attn heads": [], "components": []}
    for w in circuit.lens.words:
        s = Site.parse(w.site)
        kind = "components" if s.head is None else f"{_LABELS[s.component]} heads"
        lift = w.query_word_lift
        if lift == lift:  # not NaN
            groups[kind].append(lift)
    return {k: sum(v) / len(v) for k, v in groups.items() if v}


def _layers(xs: list[int]) -> str:
    if not xs:
        return "none"
    return f"{xs[0]}-{xs[-1]}" if len(xs) > 1 else str(xs[0])


def summary_markdown(circuit: Circuit) -> str:
    """A short Markdown summary of a circuit that a person can read in a minute."""
    c, st, s = circuit, circuit.stages, circuit.settings
    lines = [
        f"# Circuit of {c.model_name or 'model'} `{c.fingerprint}` ({c.arch}, {c.n_layers} decoder layers x {c.n_heads} heads)",
        "",
        f"{s.n_queries} {s.split} queries, {s.mode} patching at decoder step 0 (seed {s.seed}). "
        f"Clean run: Hits@1 {c.clean.hits1:.3f}, Hits@10 {c.clean.hits10:.3f}, MRR@10 {c.clean.mrr10:.3f}; "
        f"{c.clean.n_correct} queries at rank 1. Effect = share of those that lose rank 1 when the site is patched.",
        "",
        "## Stages",
        f"- priming (I): layers {_layers(st.priming)}",
        f"- bridging (II): layers {_layers(st.bridging)}",
        f"- interaction (III): layers {_layers(st.interaction)}; interaction MLPs (editing targets): {', '.join(f'L{i}' for i in st.interaction_mlps) or 'none'}",
        f"- rule ({st.measure}): {st.rule}",
        "",
        "| layer | stage | self-attn | cross-attn | MLP |",
        "|---|---|---|---|---|",
    ]
    for layer in range(c.n_layers):
        cells = [f"{c.effect(Site(layer, comp)).lost_top1:.3f}" for comp in COMPONENTS]
        lines.append(f"| {layer} | {st.label(layer)} | " + " | ".join(cells) + " |")
    lines += ["", "## Top components"]
    for e in c.ranked(heads=False)[:5]:
        lines.append(f"- `{e.site}`: {100 * e.lost_top1:.1f}% lose rank 1, Hits@1 {e.delta_hits1:+.3f}, logit diff {e.delta_logit_diff:+.2f}")
    if c.bridging_heads:
        where = "bridging layers" if st.bridging else "all layers (no bridging stage found)"
        lines += ["", f"## Top bridging heads (cross-attention, {where})"]
        for h in c.bridging_heads[:5]:
            lift = "n/a" if h.query_word_lift is None else f"{h.query_word_lift:+.3f}"
            words = ", ".join(h.top_words[:6]) or "n/a"
            lines.append(f"- `{h.site}`: {100 * h.lost_top1:.1f}% lose rank 1; writes {words}; query-word lift {lift}")
            if h.example_query:
                lines.append(f"  - e.g. \"{h.example_query}\": attends {' '.join(h.example_attends)} -> writes {', '.join(h.example_writes[:6])}")
        lines.append("- query-word lift = overlap of a head's top-50 written words with its query's own words minus the same with a shuffled query (> 0: it writes the query's words).")
        lifts = query_word_lift_by_kind(circuit)
        if lifts:
            lines.append("- mean query-word lift by site kind: " + ", ".join(f"{k} {v:+.3f}" for k, v in lifts.items()))
    if c.minimal:
        m = c.minimal
        if m.met:
            status = ""
        elif m.n_components >= m.n_total:
            status = f" (no smaller circuit keeps the {m.target:.0%} target: only the whole decoder does)"
        else:
            status = f" (target {m.target:.0%} NOT reached)"
        lines += [
            "",
            "## Minimal circuit",
            f"{m.n_components} of {m.n_total} components ({m.size_fraction:.0%}) keep {m.kept_hits1:.0%} of Hits@1 "
            f"({m.hits1:.3f} vs {m.full_hits1:.3f}) with all others {m.ablation}-ablated{status}: {', '.join(f'`{x}`' for x in m.sites) or 'none'}.",
        ]
    if c.attribution:
        a = c.attribution
        lines += ["", f"Attribution patching ({a.metric}) vs exact patching: Spearman {a.spearman:.3f} (components only {a.spearman_components:.3f})."]
    if c.lens and c.lens.residual:
        hits = ", ".join(f"L{r.layer} {r.hits1:.2f}" for r in c.lens.residual)
        lines += ["", f"Logit lens of the residual stream (Hits@1 after each layer): {hits}."]
    if c.post_ln:
        lines += [
            "",
            f"**Caveat:** {c.arch} is post-LN: each sublayer's output is added and then LayerNorm-ed, so per-component "
            "vocabulary projections and attribution scores are approximate (component outputs are read before the residual add and LayerNorm).",
        ]
    return "\n".join(lines) + "\n"


def write_report(circuit: Circuit, out_dir: str | Path) -> list[Path]:
    """Write heatmaps (PNG) and summary.md for a circuit; returns the written paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = plot_heatmaps(circuit, out_dir)
    summary = out_dir / "summary.md"
    summary.write_text(summary_markdown(circuit))
    paths.append(summary)
    log.info("wrote %s", ", ".join(str(p) for p in paths))
    return paths
