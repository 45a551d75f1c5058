"""Results tables: one row per system, shared by the CLI, the benchmarks and the harness."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Row:
    """One line of a results table."""

    system: str
    aggregate: dict[str, float]
    seconds: float


def format_table(rows: list[Row]) -> str:
    """Aligned results table: one row per system, one column per measure, then seconds."""
    measures = list(rows[0].aggregate) if rows else []
    width = max([22] + [len(r.system) + 1 for r in rows])
    head = f"{'system':<{width}}" + "".join(f"{m:>9}" for m in measures) + f"{'seconds':>9}"
    lines = [head, "-" * len(head)]
    lines += [f"{r.system:<{width}}" + "".join(f"{r.aggregate[m]:>9.3f}" for m in measures) + f"{r.seconds:>9.0f}" for r in rows]
    return "\n".join(lines)
