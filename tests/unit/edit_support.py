"""Shared pieces of the editing tests: tiny 2-layer models indexing part of a synthetic collection."""

from __future__ import annotations

from genedit.data.types import Collection
from genedit.model.build import TinySpec, tiny_model
from genedit.model.genir import GenIRModel

TARGETS = ["L1.mlp", "L1.cross_attn"]


def edit_model(arch: str, collection: Collection, n: int = 20) -> GenIRModel:
    """A tiny random model of `arch` indexing the first n documents (the rest are left to add)."""
    return tiny_model(arch, [d.id for d in collection.documents[:n]], TinySpec(n_layers=2))


def top1(model: GenIRModel, texts: list[str]) -> list[str]:
    """The first document each text retrieves."""
    run = model.rank(texts, k=1)
    return [run.ranking[str(i)][0] for i in range(len(texts))]
