"""Regression gate: does a candidate model keep every measure of a reference within its allowed drop?

The reference is a model folder (ranked here), a saved `genedit eval --json` result (its measures, and the
rank-1 document per query when the file has them) or a TREC run (evaluated here). The candidate passes when,
for every measure, reference - candidate <= allowed drop. The report names the measures that dropped too far and
the queries that lost rank 1, with the document that took it.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.judge import LostTop1, top1, top1_changes
from genedit.data.types import Collection, DataError
from genedit.eval import evaluate, parse_measure, read_trec_run
from genedit.eval.evaluate import check_judgeable

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

DEFAULT_MAX_DROP: dict[str, float] = {"hits@1": 0.005, "hits@5": 0.01, "hits@10": 0.01, "mrr@10": 0.005}


def parse_max_drop(text: str | None) -> dict[str, float]:
    """'hits@1=0.005,hits@10=0.01' over the defaults; ValueError for an unknown measure or a negative / bad number."""
    drops = dict(DEFAULT_MAX_DROP)
    if not text:
        return drops
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if "=" not in part:
            raise ValueError(f"--max-drop: expected MEASURE=DROP (e.g. hits@1=0.005), got {part!r}")
        name, value = (s.strip() for s in part.split("=", 1))
        measure = str(parse_measure(name))  # ValueError names the known measures
        try:
            drop = float(value)
        except ValueError:
            raise ValueError(f"--max-drop: {value!r} for {measure} is not a number") from None
        if not drop >= 0 or math.isinf(drop):
            raise ValueError(f"--max-drop: the allowed drop of {measure} must be a finite number >= 0, got {value}")
        drops[measure] = drop
    return drops


@dataclass
class Side:
    """Measures of one side of the comparison and, when known, its rank-1 document per query."""

    kind: str  # model | eval-json | trec
    source: str
    aggregate: dict[str, float]
    top1: dict[str, str] | None
    n_queries: int
    ranking: dict[str, list[str]] | None = None


@dataclass
class MeasureDiff:
    """One measure: reference, candidate, drop, allowed drop, within it or not."""

    measure: str
    reference: float
    candidate: float
    drop: float
    allowed: float
    ok: bool


@dataclass
class CheckResult:
    """Outcome of a check."""

    passed: bool
    split: str
    n_queries: int
    reference: str
    reference_kind: str
    candidate: str
    measures: list[MeasureDiff]
    lost_top1: list[LostTop1] = field(default_factory=list)
    gained_top1: int = 0
    note: str = ""

    def to_dict(self) -> dict:
        """JSON form."""
        return asdict(self)


def _cutoff(measures: list[str]) -> int:
    return max([10] + [parse_measure(m).cutoff for m in measures])


def _rank_model(path: str | Path, collection: Collection, split: str, k: int, measures: list[str], kind_source: str, device: torch.device | None = None, dtype: torch.dtype | None = None) -> Side:
    from genedit.model.genir import GenIRModel

    model = GenIRModel.load(path, device=device, dtype=dtype)
    pairs = collection.split(split)
    check_judgeable(pairs, set(model.docids), model.journal.deleted(), str(path), split)
    run = model.rank([q for q, _ in pairs], k=k, progress=len(pairs) > 500)
    result = evaluate(run, collection.qrels[split], measures)
    return Side("model", kind_source, result.aggregate, top1(run), result.n_queries, run.ranking)


def load_reference(ref: str | Path, collection: Collection, split: str, measures: list[str], device: torch.device | None = None, dtype: torch.dtype | None = None) -> Side:
    """A model folder, a `genedit eval --json` file or a TREC run, as measures on the split (and rank 1 per query)."""
    path = Path(ref)
    if not path.exists():
        raise FileNotFoundError(f"reference {path} does not exist (expected a model folder, a `genedit eval --json` file or a TREC run)")
    if path.is_dir():
        return _rank_model(path, collection, split, _cutoff(measures), measures, str(path), device, dtype)
    text = path.read_text(encoding="utf-8", errors="replace")
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        return _eval_json(path, data, collection, split, measures)
    run = read_trec_run(path)
    if not run.ranking:
        raise DataError(f"{path}: empty TREC run")
    result = evaluate(run, collection.qrels[split], measures)
    if result.n_missing == result.n_queries:
        raise DataError(f"{path}: the run has none of the {result.n_queries} queries of split {split!r}")
    return Side("trec", str(path), result.aggregate, top1(run), result.n_queries, run.ranking)


def _eval_json(path: Path, data: object, collection: Collection, split: str, measures: list[str]) -> Side:
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected the object `genedit eval --json` writes")
    if data.get("split") not in (None, split):
        raise ValueError(f"{path} holds measures of split {data['split']!r}, not {split!r}; pass --split {data['split']}")
    n = len(collection.qrels[split].query_ids())
    if "n_queries" in data and data["n_queries"] != n:
        raise ValueError(f"{path} was measured on {data['n_queries']} queries, split {split!r} of this data has {n}: not the same data")
    lacking = [m for m in measures if not isinstance(data.get(m), (int, float))]
    if lacking:
        raise DataError(f"{path}: no value for {', '.join(lacking)} (a `genedit eval --json` file has hits@1/5/10 and mrr@10)")
    top1 = data.get("top1") if isinstance(data.get("top1"), dict) else None
    return Side("eval-json", str(path), {m: float(data[m]) for m in measures}, top1, n)


def compare(reference: Side, candidate: Side, collection: Collection, split: str, max_drop: dict[str, float], candidate_name: str) -> CheckResult:
    """Measure-by-measure verdict and the queries that lost rank 1."""
    diffs = []
    for m, allowed in max_drop.items():
        ref, cand = reference.aggregate[m], candidate.aggregate[m]
        drop = ref - cand
        diffs.append(MeasureDiff(m, round(ref, 6), round(cand, 6), round(drop, 6), allowed, drop <= allowed + 1e-9))
    lost: list[LostTop1] = []
    gained = 0
    note = ""
    if reference.top1 is None:
        note = "the reference has no per-query rankings (an eval JSON without top1): only the measures are compared"
    else:
        lost, gained = top1_changes(reference.top1, candidate.ranking or {}, collection.split(split))
    passed = all(d.ok for d in diffs)
    return CheckResult(passed, split, candidate.n_queries, reference.source, reference.kind, candidate_name, diffs, lost, gained, note)


def run_check(model: str | Path, reference: str | Path, collection: Collection, split: str = "test", max_drop: dict[str, float] | None = None,
              *, device: torch.device | None = None, dtype: torch.dtype | None = None) -> CheckResult:
    """Rank the split with the candidate model (and a reference model) on `device` in `dtype`, and compare them."""
    drops = max_drop or dict(DEFAULT_MAX_DROP)
    measures = list(drops)
    if split not in collection.qrels or not collection.qrels[split].query_ids():
        raise DataError(f"collection {collection.name!r} has no {split!r} queries to check on; available: {sorted(collection.qrels)}")
    ref = load_reference(reference, collection, split, measures, device, dtype)  # bad reference: fail before ranking the candidate
    cand = _rank_model(model, collection, split, _cutoff(measures), measures, str(model), device, dtype)
    return compare(ref, cand, collection, split, drops, str(model))


def format_report(result: CheckResult, limit: int = 20) -> str:
    """The readable diff: one line per measure, then the queries that lost rank 1."""
    verdict = "PASS" if result.passed else "FAIL"
    lines = [f"{verdict}: {result.candidate} vs {result.reference_kind} {result.reference} on {result.n_queries} {result.split} queries",
             f"{'measure':<10}{'reference':>11}{'candidate':>11}{'drop':>9}{'allowed':>9}"]
    for d in result.measures:
        mark = "ok" if d.ok else "REGRESSION"
        lines.append(f"{d.measure:<10}{d.reference:>11.4f}{d.candidate:>11.4f}{d.drop:>+9.4f}{d.allowed:>9.4f}  {mark}")
    if result.note:
        lines.append(f"note: {result.note}")
    elif result.lost_top1 or result.gained_top1:
        lines.append(f"{len(result.lost_top1)} queries lost rank 1, {result.gained_top1} gained it")
        for x in result.lost_top1[:limit]:
            where = f"relevant now at rank {x.relevant_rank}" if x.relevant_rank else "relevant not in the top 10"
            text = x.query if len(x.query) <= 60 else x.query[:57] + "..."
            lines.append(f"  {x.query_id} {text!r}: rank 1 was {x.was}, now {x.now} ({where})")
        if len(result.lost_top1) > limit:
            lines.append(f"  ... and {len(result.lost_top1) - limit} more (--json FILE lists them all)")
    else:
        lines.append("no query lost rank 1")
    return "\n".join(lines)
