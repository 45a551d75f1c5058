"""What the bench judges an edit by: ranking quality on query sets, lost rank 1, deletion checks, continual learning, cost.

(genedit.eval.measures are the retrieval measures these build on; circuits.metrics the effects of patching.)

Everything is computed from rankings over all docids (never teacher forcing): a system is judged by the Run it
returns for a query set.

Continual measures (P[t][i] = score on task i after checkpoint t, defined for i <= t; task 0 is the original
corpus, task i >= 1 the documents edited in chunk i):
- AP_t = mean over i <= t of P[t][i]                      (average performance)
- forgetting_t = mean over i < t of (max over i <= t' < t of P[t'][i]  -  P[t][i])
- LA_t = mean over i <= t of P[i][i]                      (learning accuracy: each task right after it was learnt)
Tasks without queries (None) are left out of the means.
"""

from __future__ import annotations

import copy
import math
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from genedit.data.types import Qrels, Query
from genedit.eval import evaluate
from genedit.eval.evaluate import DEFAULT_MEASURES
from genedit.eval.types import Run

if TYPE_CHECKING:
    import torch

    from genedit.model.genir import GenIRModel

Pairs = list[tuple[Query, set[str]]]
MEASURES: tuple[str, ...] = DEFAULT_MEASURES  # hits@1, hits@5, hits@10, mrr@10


def qrels_of(pairs: Pairs) -> Qrels:
    """Qrels of (query, relevant ids) pairs."""
    return Qrels({q.id: {d: 1 for d in rel} for q, rel in pairs})


def set_measures(run: Run, pairs: Pairs, measures: Sequence[str] = MEASURES) -> dict[str, float] | None:
    """Hits@k / MRR@k of a run on a query set (None for an empty set)."""
    if not pairs:
        return None
    result = evaluate(run, qrels_of(pairs), measures)
    return {k: round(v, 6) for k, v in result.aggregate.items()}


@dataclass(frozen=True)
class LostTop1:
    """A query whose relevant document was ranked first before and is not any more."""

    query_id: str
    query: str
    was: str  # the relevant document at rank 1 before
    now: str | None  # the document at rank 1 now (None: empty ranking)
    relevant_rank: int | None = None  # rank of the first relevant document now (None: not in the ranking)


def top1_changes(before: Mapping[str, str], after: Mapping[str, Sequence[str]], pairs: Pairs) -> tuple[list[LostTop1], int]:
    """Queries of `pairs` whose rank-1 document (`before`: query id -> document) was relevant and is not in `after`'s
    rankings, and how many queries gained a relevant rank 1: the one rule of "lost rank 1" (bench rows and `genedit check`)."""
    lost: list[LostTop1] = []
    gained = 0
    for q, rel in pairs:
        was = before.get(q.id)
        ranking = after.get(q.id, [])
        now = ranking[0] if ranking else None
        if was in rel and now not in rel:
            rank = next((i for i, d in enumerate(ranking, start=1) if d in rel), None)
            lost.append(LostTop1(q.id, q.text, was, now, rank))
        elif was not in rel and now in rel:
            gained += 1
    return lost, gained


def top1(run: Run) -> dict[str, str]:
    """Query id -> the document a run ranks first (queries with an empty ranking left out)."""
    return {q: r[0] for q, r in run.ranking.items() if r}


def lost_top1(before: Run, after: Run, pairs: Pairs) -> list[LostTop1]:
    """Queries of `pairs` that had a relevant document at rank 1 in `before` and do not in `after`."""
    return top1_changes(top1(before), after.ranking, pairs)[0]


def gained_top1(before: Run, after: Run, pairs: Pairs) -> int:
    """Number of queries of `pairs` that have a relevant document at rank 1 in `after` and did not in `before`."""
    return top1_changes(top1(before), after.ranking, pairs)[1]


def returned(run: Run, pairs: Pairs, ids: Iterable[str], k: int = 10) -> int:
    """Number of queries of `pairs` whose top k holds any of `ids` (for deleted documents: should be 0)."""
    banned = set(ids)
    return sum(1 for q, _ in pairs if banned.intersection(run.ranking.get(q.id, [])[:k]))


def top1_agreement(a: Run, b: Run, pairs: Pairs) -> float | None:
    """Share of queries of `pairs` on which two runs put the same document first (None for an empty set)."""
    if not pairs:
        return None
    same = sum(1 for q, _ in pairs if a.ranking.get(q.id, [None])[:1] == b.ranking.get(q.id, [None])[:1])
    return round(same / len(pairs), 6)


def restore_rows(model: GenIRModel, ids: Sequence[str], rows: torch.Tensor) -> GenIRModel:
    """A copy of `model` with the deleted documents' old rows put back (resurrection test); the model is untouched."""
    probe = copy.deepcopy(model)
    present = [i for i, d in enumerate(ids) if d in probe]
    absent = [i for i, d in enumerate(ids) if d not in probe]
    if absent:
        probe.add_documents([ids[i] for i in absent], rows=rows[absent])
    if present:  # a method that kept the token: overwrite its row with the old one
        import torch

        with torch.no_grad():
            weight = probe.cmap.unembedding(probe.hf).weight
            for i in present:
                weight[probe.docid_token_ids[probe.doc_index(ids[i])]] = rows[i].to(weight.dtype)
    return probe


# --- continual learning ------------------------------------------------------------------------------
@dataclass
class Continual:
    """AP, forgetting and learning accuracy after each checkpoint of a stream."""

    ap: list[float | None] = field(default_factory=list)
    forgetting: list[float | None] = field(default_factory=list)
    la: list[float | None] = field(default_factory=list)


def _mean(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return round(sum(vals) / len(vals), 6) if vals else None


def continual(P: Sequence[Sequence[float | None]]) -> Continual:
    """AP_t, forgetting_t, LA_t from a lower-triangular matrix P[t][i] (i <= t); see the module docstring."""
    out = Continual()
    for t, row in enumerate(P):
        if len(row) < t + 1:
            raise ValueError(f"P[{t}] has {len(row)} entries; checkpoint {t} needs tasks 0..{t}")
        out.ap.append(_mean(row[: t + 1]))
        drops = []
        for i in range(t):
            earlier = [P[tp][i] for tp in range(i, t) if P[tp][i] is not None]
            if earlier and row[i] is not None:
                drops.append(max(earlier) - row[i])
        out.forgetting.append(_mean(drops) if t else 0.0)
        out.la.append(_mean(P[i][i] for i in range(t + 1)))
    return out


# --- cost ----------------------------------------------------------------------------------------------
def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):  # not Linux: the process's peak so far
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMemory:
    """Context manager sampling the process's resident memory every few ms: peak and growth over the block (MB)."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.start_mb = 0.0
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, _rss_bytes() / 2**20)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self.start_mb = self.peak_mb = _rss_bytes() / 2**20
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_mb = max(self.peak_mb, _rss_bytes() / 2**20)

    @property
    def growth_mb(self) -> float:
        """Peak minus the resident memory at the start of the block."""
        return self.peak_mb - self.start_mb


class Stopwatch:
    """Accumulating wall clock (perf_counter)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._t = 0.0

    def __enter__(self) -> Stopwatch:
        self._t = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds += time.perf_counter() - self._t
