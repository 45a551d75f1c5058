"""The rows of results.json: what each system (base, oracle, edited model, baseline) scored and cost on a protocol's query sets."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from benchmarks import judge
from benchmarks.protocols import Pairs, Split
from benchmarks.ranking import Ranker, all_pairs
from genedit.eval.types import Run

QUALITY_SETS = ("edited", "efficacy", "retained", "retained_train", "stale")


def old_pairs(sets: dict[str, Pairs]) -> Pairs:
    """The queries of untouched documents (test + train): what rank-1 losses are counted on."""
    return sets.get("retained", []) + sets.get("retained_train", [])


def quality(run: Run, sets: dict[str, Pairs], base_run: Run | None) -> dict:
    """Measures on every query set, and (given the base's run) the rank-1 losses and gains on the old queries."""
    row: dict = {}
    for name in QUALITY_SETS:
        if name in sets:
            row[name] = judge.set_measures(run, sets[name])
    if base_run is not None:
        lost, gained = judge.top1_changes(judge.top1(base_run), run.ranking, old_pairs(sets))
        row["lost_top1"] = len(lost)
        row["gained_top1"] = gained
        row["lost_top1_examples"] = [asdict(x) for x in lost[:5]]
    return row


def cost(seconds: float, n_docs: int, oracle_seconds: float) -> dict:
    """Seconds, ms per edited document and the share of the oracle's training time."""
    return {
        "seconds": round(seconds, 3),
        "ms_per_doc": round(1000 * seconds / max(n_docs, 1), 2),
        "retrain_ratio": round(seconds / oracle_seconds, 5) if oracle_seconds else None,
    }


@dataclass
class DeleteJudge:
    """The deletion measures of a protocol that deletes: returned, agreement with the oracle, resurrection."""

    sets: dict[str, Pairs]
    deleted: list[str]
    oracle_run: Run
    deleted_rows: Any  # the deleted documents' rows in the base model (a tensor), for the resurrection probe
    ranker: Ranker

    def __call__(self, model: Any, run: Run) -> dict:
        """The measures of one system (nothing when the protocol deletes nothing)."""
        if not self.deleted:
            return {}
        out = {"deleted_returned": judge.returned(run, all_pairs(self.sets), self.deleted),
               "oracle_agreement": judge.top1_agreement(run, self.oracle_run, self.sets["deleted"]),
               # how often two trainings agree anyway: the scale oracle_agreement is read on
               "oracle_agreement_old": judge.top1_agreement(run, self.oracle_run, old_pairs(self.sets))}
        probe = judge.restore_rows(model, self.deleted, self.deleted_rows)
        res = judge.set_measures(self.ranker.rank(probe, {"deleted": self.sets["deleted"]}, "resurrection"), self.sets["deleted"])
        out["resurrection"] = res["hits@10"] if res else None
        del probe
        return out


def checkpoint_quality(run: Run, sets: dict[str, Pairs], split: Split, n: int, base_run: Run, deleted: list[str]) -> dict:
    """Measures of a stream after its first n edits, ranked in `run`."""
    every = split.spec.every or 1
    done = (n + every - 1) // every  # chunks completed or started
    chunk_sets = split.chunks[:done]
    last = split.ops[max(0, (done - 1) * every) : n] if n else []
    last_docs = {d.id for op in last if op.op != "delete" for d in op.docs}
    own = {
        "retained": sets["retained"],
        "retained_train": sets["retained_train"],
        "efficacy": [(q, r) for q, r in sets.get("efficacy", []) if r & last_docs],
        "deleted": [(q, r) for q, r in sets.get("deleted", []) if r & set(deleted)],
    }
    for i, pairs in enumerate(chunk_sets, start=1):
        own[f"chunk{i}"] = pairs
    return {
        "retained": judge.set_measures(run, own["retained"]),
        "retained_train": judge.set_measures(run, own["retained_train"]),
        "edited": judge.set_measures(run, [p for pairs in chunk_sets for p in pairs]),
        "efficacy": judge.set_measures(run, own["efficacy"]),
        "lost_top1": len(judge.lost_top1(base_run, run, own["retained"] + own["retained_train"])),
        "deleted_returned": judge.returned(run, all_pairs(own), deleted) if deleted else 0,
        "tasks": [_h10(run, own["retained"])] + [_h10(run, pairs) for pairs in chunk_sets],
    }


def _h10(run: Run, pairs: Pairs) -> float | None:
    m = judge.set_measures(run, pairs)
    return m["hits@10"] if m else None


def continual_summary(checkpoints: list[dict]) -> dict:
    """AP / forgetting / LA at every checkpoint (written into it) and at the end; checkpoint t holds tasks 0..t."""
    if not checkpoints:
        return {}
    c = judge.continual([ck["tasks"] for ck in checkpoints])
    for ck, ap, fg, la in zip(checkpoints, c.ap, c.forgetting, c.la):
        ck["ap"], ck["forgetting"], ck["la"] = ap, fg, la
    return {"ap": c.ap[-1], "forgetting": c.forgetting[-1], "la": c.la[-1]}


def reference(rows: list[dict], anchor: str) -> dict:
    """Per measure of `edited` and `efficacy`: the better of the oracle and the anchor method (what edits are judged against)."""
    oracle = next((r for r in rows if r.get("kind") == "oracle"), {})
    anchor_row = next((r for r in rows if r.get("method") == anchor and "error" not in r), {})
    ref: dict = {}
    for key in ("edited", "efficacy"):
        a, b = oracle.get(key), anchor_row.get(key)
        if a or b:
            ref[key] = {m: max(v for v in ((a or {}).get(m), (b or {}).get(m)) if v is not None) for m in (a or b)}
    return ref
