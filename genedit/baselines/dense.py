"""Dense baseline: all-MiniLM-L6-v2 mean-pooled, normalised sentence embeddings in a faiss inner-product index."""

from __future__ import annotations

import logging
from pathlib import Path

import faiss
import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoModel, AutoTokenizer

from genedit.data.types import Collection, Query
from genedit.eval.types import Run
from genedit.model.device import resolve_device
from genedit.model.pretrained import minilm_path, sentence_embeddings

logger = logging.getLogger(__name__)


class DenseRetriever:
    """Exact cosine retrieval with the same embeddings as the GenIR trainer's teacher (sentence_embeddings)."""

    name = "dense"

    def __init__(
        self,
        *,
        model_path: str | Path | None = None,
        device: str | torch.device | None = None,
        max_length: int = 256,
        batch_size: int = 64,
    ) -> None:
        path = Path(model_path) if model_path is not None else minilm_path()
        self.device = resolve_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.encoder = AutoModel.from_pretrained(path).to(self.device).eval()
        self.max_length = max_length
        self.batch_size = batch_size
        self.doc_ids: list[str] = []
        self.index: faiss.IndexFlatIP | None = None

    @classmethod
    def from_collection(cls, collection: Collection, **options: object) -> DenseRetriever:
        """A retriever with the collection's documents indexed."""
        retriever = cls(**options)  # type: ignore[arg-type]
        retriever.fit(collection)
        return retriever

    def encode(self, texts: list[str], *, desc: str = "encode") -> np.ndarray:
        """Normalised float32 embeddings [len(texts), dim], in chunks of whole batches (same batches as one call)."""
        chunk = self.batch_size * 16
        parts = []
        starts = range(0, len(texts), chunk)
        for start in tqdm(starts, desc=desc, disable=len(starts) < 2):
            emb = sentence_embeddings(self.encoder, self.tokenizer, texts[start : start + chunk], max_length=self.max_length, batch_size=self.batch_size, normalize=True)
            parts.append(emb.float().cpu().numpy())
        if not parts:
            return np.zeros((0, self.encoder.config.hidden_size), dtype=np.float32)
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)

    def fit(self, collection: Collection) -> None:
        """Embed Document.indexing_text() (truncated to max_length tokens) and build a flat inner-product index."""
        if not collection.documents:
            raise ValueError(f"collection {collection.name!r} has no documents")
        self.doc_ids = collection.doc_ids
        emb = self.encode([d.indexing_text() for d in collection.documents], desc="dense index")
        self.index = faiss.IndexFlatIP(emb.shape[1])
        self.index.add(emb)
        logger.info("dense: indexed %d documents (dim %d) on %s", len(self.doc_ids), emb.shape[1], self.device)

    def search(self, queries: list[Query], k: int = 100) -> Run:
        """The top-k documents per query by cosine similarity."""
        if self.index is None:
            raise RuntimeError("DenseRetriever.search called before fit")
        k = min(k, len(self.doc_ids))
        ranking: dict[str, list[str]] = {}
        scores: dict[str, list[float]] = {}
        if not queries or k <= 0:
            return Run(ranking={q.id: [] for q in queries}, scores={q.id: [] for q in queries}, name=self.name)
        emb = self.encode([q.text for q in queries], desc="dense queries")
        values, indices = self.index.search(emb, k)
        for row, query in enumerate(queries):
            keep = indices[row] >= 0
            ranking[query.id] = [self.doc_ids[i] for i in indices[row][keep]]
            scores[query.id] = [float(v) for v in values[row][keep]]
        return Run(ranking=ranking, scores=scores, name=self.name)
