"""Write a bench results document: OUT/results.json, OUT/results.md (the tables README quotes), OUT/*.png."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from benchmarks.protocols import PROTOCOLS, Column
from genedit.fileio import atomic_write

log = logging.getLogger(__name__)


def write_results(doc: dict, out: str | Path) -> None:
    """results.json, results.md and the plots of a (possibly partial) results document."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "results.json", json.dumps(doc, indent=2))
    atomic_write(out / "results.md", markdown(doc))
    try:
        write_plots(doc, out)
    except Exception:  # a plotting problem must not lose the numbers
        log.exception("plots failed")


# --- markdown -----------------------------------------------------------------------------------------
def _f(value: object, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _m(row: dict, key: str, measure: str) -> str:
    block = row.get(key)
    return _f(block.get(measure)) if isinstance(block, dict) else "-"


def _cost_cells(row: dict) -> list[str]:
    ms = row.get("ms_per_doc")
    ratio = row.get("retrain_ratio")
    return [
        _f(ms, 1) if ms is not None else "-",
        _f(row.get("peak_growth_mb"), 0) if row.get("peak_growth_mb") is not None else "-",
        _f(row.get("changed_params")) if row.get("changed_params") is not None else "-",
        (f"{ratio:.4f}" if ratio < 0.1 else f"{ratio:.2f}") if isinstance(ratio, (int, float)) else "-",
    ]


COST_HEAD = ["ms/doc", "peak +MB", "changed params", "x retrain"]


def _table(head: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines)


def _system(row: dict) -> str:
    name = row["system"]
    return f"**{name}**" if row.get("kind") == "oracle" else name


def _cell(row: dict, column: Column) -> str:
    return _m(row, column.key, column.measure) if column.measure else _f(row.get(column.key))


def protocol_table(protocol: str, section: dict) -> str:
    """The markdown table of one protocol (one row per system: its protocol's columns, then the cost), failures listed below."""
    columns = PROTOCOLS[protocol].columns
    rows = [r for r in section["rows"] if "error" not in r]
    head = ["system", *(c.head for c in columns), *COST_HEAD]
    body = [[_system(r), *(_cell(r, c) for c in columns), *_cost_cells(r)] for r in rows]
    text = _table(head, body)
    errors = [r for r in section["rows"] if "error" in r]
    if errors:
        text += "\n\n" + "\n".join(f"- {r['system']} failed: {r['error']}" for r in errors)
    return text


def curve_table(checkpoints: list[dict]) -> str:
    """Measures after every checkpoint of one method's stream."""
    head = ["edits", "old H@10", "old-train H@1", "edited H@10", "efficacy H@1", "lost@1", "returned", "AP", "forgetting", "LA", "weight norm", "seconds"]
    body = [[_f(ck["edits"]), _m(ck, "retained", "hits@10"), _m(ck, "retained_train", "hits@1"), _m(ck, "edited", "hits@10"), _m(ck, "efficacy", "hits@1"),
             _f(ck.get("lost_top1")), _f(ck.get("deleted_returned")), _f(ck.get("ap")), _f(ck.get("forgetting")), _f(ck.get("la")),
             _f(ck.get("weight_norm")), _f(ck.get("seconds"), 1)] for ck in checkpoints]
    return _table(head, body)


def markdown(doc: dict) -> str:
    """results.md: one section per protocol with its table, the split and the models behind it."""
    data = doc["data"]
    lines = [
        "# genedit bench",
        "",
        f"Data `{data['spec']}` ({data['name']}, {data['n_docs']:,} documents, hash {data['hash']}); "
        f"base `{doc['config']['base']}`, seed {doc['config']['seed']}, genedit {doc['versions']['genedit']}, torch {doc['versions']['torch']}, "
        f"{doc['machine']['threads']} threads; command `{doc['command']}`.",
        "",
        "new = held-out queries of the added/updated documents (never seen by the edit or the oracle); efficacy = the pseudo-queries "
        "an edit may use (title + sentences); old = test queries of untouched documents; lost@1 = queries of untouched documents "
        "(test + train) that lost rank 1 against the unedited base; returned = queries whose top 10 holds a deleted document; "
        "agree@1 oracle = same rank 1 as the retrain-without oracle on the deleted documents' queries (old: on the untouched "
        "documents' queries, how much two trainings agree anyway); resurrect H@10 = Hits@10 of those queries once the deleted rows "
        "are put back (base row: before the delete); ms/doc and x retrain = wall time of the edit per document and over the "
        "oracle's training time (oracle row: its training; baselines: re-indexing the final corpus).",
    ]
    for note in doc.get("notes", []):
        lines += ["", f"Note: {note}."]
    for protocol, section in doc["protocols"].items():
        split = section["split"]
        lines += ["", f"## {protocol}", "", f"{PROTOCOLS[protocol].description} Split: {_split_text(split)}; wall time {section.get('wall_seconds', 0):.0f} s.", "",
                  protocol_table(protocol, section)]
        ref = section.get("reference", {}).get("edited")
        if ref:
            lines += ["", f"Reference (better of oracle and `row`) on new documents: H@1 {_f(ref.get('hits@1'))}, H@10 {_f(ref.get('hits@10'))}, MRR@10 {_f(ref.get('mrr@10'))}."]
        if section.get("skipped"):
            lines += ["", "Skipped: " + "; ".join(f"{m} ({why})" for m, why in section["skipped"].items()) + "."]
        for method, checkpoints in section.get("curves", {}).items():
            lines += ["", f"### {protocol}: `{method}` after every {split.get('every')} edits", "", curve_table(checkpoints)]
        lines += ["", f"Models: base `models/{section['base_model']}`, oracle `models/{section['oracle_model']}`."]
    lines += ["", "## Models", "", _table(["folder", "trained on", "fingerprint", "train s", "reused"],
                                          [[f"models/{name}", f"{m['n_docs']:,} docs (`{m['data']}`)", m["fingerprint"], _f(m["train_seconds"], 0), _f(m["reused"])]
                                           for name, m in doc["models"].items()])]
    return "\n".join(lines) + "\n"


def _split_text(split: dict) -> str:
    edited = ", ".join(f"{n:,} {op}" for op, n in split.get("edited_docs", {}).items())
    frac = "" if PROTOCOLS[split["protocol"]].stream else f"fraction {split['fraction']}, "
    return f"{frac}seed {split['seed']}, base {split['base_docs']:,} docs, final {split['final_docs']:,} docs, edits: {edited}"


# --- plots --------------------------------------------------------------------------------------------
def write_plots(doc: dict, out: Path) -> list[Path]:
    """Per protocol: bars per system with the oracle line; sequential: retention and efficacy against edits."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for protocol, section in doc["protocols"].items():
        rows = [r for r in section["rows"] if "error" not in r]
        panels = PROTOCOLS[protocol].panels
        fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8))
        for ax, (k, m) in zip(axes, panels):
            values = [(r[k].get(m) if isinstance(r.get(k), dict) else None) if m else r.get(k) for r in rows]
            names = [r["system"] for r in rows]
            colors = ["#888888" if r.get("kind") == "baseline" else "#d62728" if r.get("kind") == "oracle" else "#1f77b4" for r in rows]
            ax.bar(range(len(rows)), [v or 0.0 for v in values], color=colors)
            oracle = next((v for r, v in zip(rows, values) if r.get("kind") == "oracle"), None)
            if oracle is not None:
                ax.axhline(oracle, color="#d62728", linestyle="--", linewidth=1, label="oracle")
                ax.legend(loc="lower right", fontsize=7)
            ax.set_xticks(range(len(rows)))
            ax.set_xticklabels(names, rotation=60, ha="right", fontsize=7)
            ax.set_title(f"{k} {m or ''}".strip(), fontsize=9)
            ax.set_ylim(0, 1)
        fig.suptitle(f"{protocol}", fontsize=10)
        fig.tight_layout()
        path = out / f"{protocol}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
        curves = section.get("curves", {})
        if curves:
            fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
            oracle_row = next((r for r in section["rows"] if r.get("kind") == "oracle"), {})
            for ax, (k, m, title) in zip(axes, [("retained", "hits@10", "retention: old docs H@10"), ("edited", "hits@10", "generalisation: edited docs H@10"),
                                                   ("efficacy", "hits@1", "efficacy: last chunk's pseudo-queries H@1")]):
                for method, cks in curves.items():
                    xs = [ck["edits"] for ck in cks if isinstance(ck.get(k), dict)]
                    ys = [ck[k][m] for ck in cks if isinstance(ck.get(k), dict)]
                    ax.plot(xs, ys, marker="o", markersize=3, label=method)
                ref = oracle_row.get(k, {}) if isinstance(oracle_row.get(k), dict) else {}
                if ref.get(m) is not None:
                    ax.axhline(ref[m], color="#d62728", linestyle="--", linewidth=1, label="oracle (final)")
                ax.set_xlabel("edits")
                ax.set_title(title, fontsize=9)
                ax.set_ylim(0, 1)
                ax.legend(fontsize=7)
            fig.tight_layout()
            path = out / f"{protocol}-curves.png"
            fig.savefig(path, dpi=110)
            plt.close(fig)
            written.append(path)
    return written
