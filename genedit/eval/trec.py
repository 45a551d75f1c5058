"""Read and write runs in the standard 6-column TREC format: qid Q0 docid rank score tag."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from genedit.data.types import DataError
from genedit.eval.types import Run

logger = logging.getLogger(__name__)


def _check_token(value: str, what: str, qid: str) -> None:
    if not value or any(ch.isspace() for ch in value):
        raise ValueError(f"cannot write TREC run: {what} {value!r} (query {qid!r}) is empty or contains whitespace")


def write_trec_run(run: Run, path: str | os.PathLike[str], tag: str | None = None) -> Path:
    """Write a run as `qid Q0 docid rank score tag` lines, rank from 1, in the run's order; returns the path."""
    tag = tag if tag is not None else (run.name or "genedit")
    _check_token(tag, "tag", "-")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    for qid, ranking in run.ranking.items():
        _check_token(qid, "query id", qid)
        scores = run.scores.get(qid)
        if scores is None or len(scores) != len(ranking):
            raise ValueError(f"cannot write TREC run: query {qid!r} has {len(ranking)} documents but {0 if scores is None else len(scores)} scores")
        for rank, (doc_id, score) in enumerate(zip(ranking, scores), start=1):
            _check_token(doc_id, "document id", qid)
            lines.append(f"{qid} Q0 {doc_id} {rank} {float(score)!r} {tag}\n")
    path.write_text("".join(lines), encoding="utf-8")
    logger.info("wrote %d lines for %d queries to %s", len(lines), len(run.ranking), path)
    return path


def read_trec_run(path: str | os.PathLike[str], name: str | None = None) -> Run:
    """Read a TREC run, ordering each query's documents by rank; DataError names the file and line of bad input."""
    path = Path(path)
    rows: dict[str, list[tuple[int, int, str, float]]] = {}
    seen: dict[tuple[str, str], int] = {}
    tags: set[str] = set()
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            parts = line.split()
            where = f"{path}:{lineno}"
            if len(parts) != 6:
                raise DataError(f"{where}: expected 6 columns 'qid Q0 docid rank score tag', got {len(parts)}: {line.rstrip()!r}")
            qid, _q0, doc_id, rank_text, score_text, tag = parts
            try:
                rank = int(rank_text)
            except ValueError:
                raise DataError(f"{where}: rank {rank_text!r} is not an integer") from None
            try:
                score = float(score_text)
            except ValueError:
                raise DataError(f"{where}: score {score_text!r} is not a number") from None
            if (qid, doc_id) in seen:
                raise DataError(f"{where}: document {doc_id!r} repeated for query {qid!r} (first on line {seen[qid, doc_id]})")
            seen[qid, doc_id] = lineno
            tags.add(tag)
            rows.setdefault(qid, []).append((rank, lineno, doc_id, score))
    ranking: dict[str, list[str]] = {}
    scores: dict[str, list[float]] = {}
    for qid, entries in rows.items():
        entries.sort(key=lambda e: (e[0], e[1]))
        ranking[qid] = [e[2] for e in entries]
        scores[qid] = [e[3] for e in entries]
    if name is None:
        name = next(iter(tags)) if len(tags) == 1 else path.stem
    logger.info("read %d queries from %s", len(ranking), path)
    return Run(ranking=ranking, scores=scores, name=name)
