"""What a docid row and a document's model inputs are made of: training builds them, editing must build them alike.

A document enters the model as its indexing text (title plus the first tokens of its text), its pseudo-queries
(sentences of its text) and its docid row (the normalised sentence embedding of its text, as written and, for
`distinct_text` models, without the corpus's boilerplate). `RowRecipe` holds the lengths and the teacher temperature
that decide them; `RowRecipe.of(model)` reads the ones a model was trained with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from genedit.data.text import sentences
from genedit.data.types import Document
from genedit.model.genir import GenIRModel
from genedit.model.pretrained import mean_pool


@dataclass(frozen=True)
class RowRecipe:
    """How a model's document inputs and docid rows are made (the defaults are `TrainConfig`'s)."""

    index_tokens: int = 32  # indexing example = title + first `index_tokens` tokens of the text
    query_tokens: int = 48  # truncation of queries and pseudo-queries
    row_tokens: int = 256  # text length embedded for each docid row (what the dense teacher embeds)
    temperature: float = 0.05  # teacher softmax temperature (all-MiniLM-L6-v2 was trained at scale 20)
    distinct_text: bool = False  # rows and inputs use the documents' text without the corpus's boilerplate
    embedding_rows: bool = False  # docid rows live in the encoder's sentence-embedding space

    @classmethod
    def of(cls, model: GenIRModel) -> "RowRecipe":
        """The recipe `model` was trained with (defaults for a model `genedit train` did not make)."""
        train = model.meta.get("train")
        cfg = (train or {}).get("config", {})
        return cls(
            index_tokens=int(cfg.get("index_tokens", cls.index_tokens)),
            query_tokens=int(cfg.get("query_tokens", cls.query_tokens)),
            row_tokens=int(cfg.get("row_tokens", cls.row_tokens)),
            temperature=float(cfg.get("temperature", cls.temperature)),
            distinct_text=bool(cfg.get("distinct_text")),
            embedding_rows=train is not None and cfg.get("row_init", "embedding") == "embedding",
        )


def _truncate(tokenizer, text: str, n_tokens: int) -> str:
    """The first `n_tokens` tokens of a text, as text."""
    # truncating while encoding (not tokenize()[:n]) avoids the tokenizer's "longer than the maximum" warning
    ids = tokenizer(text, truncation=True, max_length=n_tokens, add_special_tokens=False)["input_ids"]
    return tokenizer.convert_tokens_to_string(tokenizer.convert_ids_to_tokens(ids))


def indexing_texts(model: GenIRModel, docs: Sequence[Document], n_tokens: int) -> list[str]:
    """DSI indexing inputs: title plus the first n_tokens tokens of each document's text."""
    return [f"{d.title}. {_truncate(model.tokenizer, d.text, n_tokens)}" if d.title else _truncate(model.tokenizer, d.text, n_tokens) for d in docs]


def pseudo_queries(doc: Document, n: int) -> list[str]:
    """A document's training pseudo-queries: up to n sentences of its text with at least four words each."""
    return sentences(doc.text, n)


def row_views(docs: Sequence[Document], distinct: Sequence[Document] | None) -> list[list[str]]:
    """Texts each docid row embeds: the text as written and, for `distinct_text` models, the same documents' distinct text."""
    views = [[d.indexing_text() for d in docs]]
    if distinct is not None:
        views.append([d.indexing_text() for d in distinct])
    return views


def row_embedding(model: GenIRModel, views: Sequence[Sequence[str]], max_length: int, batch_size: int = 64, progress: bool = False,
                  reuse_identical: bool = False) -> torch.Tensor:
    """Docid rows [n, D]: the normalised mean of the sentence embeddings of each document's views (texts of it).

    With `reuse_identical`, a later view's text that equals the first view's is not encoded again: its embedding is
    reused (most documents have no boilerplate, so their distinct text is the text; equal up to float rounding, which
    depends on the batch a text is encoded in). The trainer leaves it off: its rows, hence its models, stay bit-exact.
    """
    embs: list[torch.Tensor] = []
    for texts in views:
        texts = list(texts)
        if reuse_identical and embs:
            first = views[0]
            todo = [i for i, t in enumerate(texts) if t != first[i]]
            emb = embs[0].clone()
            if todo:
                enc = model.encode([texts[i] for i in todo], max_length=max_length, batch_size=batch_size, progress=progress)
                emb[torch.tensor(todo, device=emb.device)] = F.normalize(mean_pool(enc.hidden, enc.mask), dim=-1)
            embs.append(emb)
            continue
        enc = model.encode(texts, max_length=max_length, batch_size=batch_size, progress=progress)
        embs.append(F.normalize(mean_pool(enc.hidden, enc.mask), dim=-1))
    return embs[0] if len(embs) == 1 else F.normalize(torch.stack(embs).sum(0), dim=-1)  # one view: exactly as before
