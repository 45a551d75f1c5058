"""Encoder swap: run the decoder of model A on the encoder states of model B and measure retrieval.

The seed paper's test of where document identification happens: if A's decoder still retrieves well from B's
encoder states (e.g. B = a model trained without some documents, or the pretrained base), the decoder does the work.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from circuits.metrics import rank_stats
from circuits.queries import relevance_mask
from genedit.model.genir import Encoded, GenIRModel

log = logging.getLogger(__name__)


class SwapError(ValueError):
    """The two models cannot be combined (different docids, tokenizer or encoder width)."""


@dataclass
class Retrieval:
    """Retrieval quality of one encoder/decoder pairing on a query set."""

    hits1: float
    hits10: float
    mrr10: float
    mean_rank: float  # 1-based rank of the relevant docid


@dataclass
class SwapResult:
    """Decoder A on encoder B, against A and B on their own encoders."""

    decoder: str  # fingerprint of A
    encoder: str  # fingerprint of B
    n_queries: int
    swapped: Retrieval
    decoder_own: Retrieval
    encoder_own: Retrieval


def check_compatible(decoder: GenIRModel, encoder: GenIRModel) -> None:
    """Raise SwapError unless both models share docids and tokenizer vocabulary (widths are checked on encoding)."""
    if decoder.docids != encoder.docids:
        only_a = len(set(decoder.docids) - set(encoder.docids))
        only_b = len(set(encoder.docids) - set(decoder.docids))
        raise SwapError(
            f"encoder swap needs the same docids in the same order: decoder model has {decoder.n_docs} ({only_a} not in the other), "
            f"encoder model {encoder.n_docs} ({only_b} not in the other)"
        )
    if decoder.tokenizer.get_vocab() != encoder.tokenizer.get_vocab():
        raise SwapError(f"encoder swap needs the same tokenizer: vocabularies differ ({len(decoder.tokenizer)} vs {len(encoder.tokenizer)} tokens)")


def _retrieval(logits: torch.Tensor, relevant: torch.Tensor) -> Retrieval:
    st = rank_stats(logits, relevant.to(logits.device))
    return Retrieval(float(st.hit1.mean()), float(st.hit10.mean()), float(st.rr10.mean()), float((st.rank.float() + 1).mean()))


@torch.no_grad()
def encoder_swap(decoder: GenIRModel, encoder: GenIRModel, texts: Sequence[str], relevant: Sequence[set[str]], *, batch_size: int = 64) -> SwapResult:
    """Retrieval of decoder A on encoder B's states, with both models' own retrieval for reference."""
    check_compatible(decoder, encoder)
    rel = relevance_mask(decoder, relevant)
    keep = rel.any(1)
    if not bool(keep.all()):
        log.warning("%d of %d queries have no relevant document among the docids; skipped", int((~keep).sum()), len(texts))
    texts = [t for t, k in zip(texts, keep.tolist()) if k]
    rel = rel[keep]
    if not texts:
        raise ValueError("no query has a relevant document among the models' docids")
    enc_b = encoder.encode(texts, batch_size=batch_size)
    enc_a = decoder.encode(texts, batch_size=batch_size)
    if enc_a.hidden.shape[-1] != enc_b.hidden.shape[-1]:
        raise SwapError(f"encoder widths differ: the decoder model's encoder gives {enc_a.hidden.shape[-1]}, the encoder model's {enc_b.hidden.shape[-1]}")
    swapped = decoder.scores(Encoded(enc_b.hidden.to(decoder.device), enc_b.mask.to(decoder.device)), batch_size=batch_size)
    result = SwapResult(
        decoder.fingerprint(),
        encoder.fingerprint(),
        len(texts),
        _retrieval(swapped, rel),
        _retrieval(decoder.scores(enc_a, batch_size=batch_size), rel),
        _retrieval(encoder.scores(enc_b, batch_size=batch_size), rel),
    )
    log.info("encoder swap: decoder %s on encoder %s: hits@1 %.3f (own %.3f / %.3f)", result.decoder, result.encoder, result.swapped.hits1, result.decoder_own.hits1, result.encoder_own.hits1)
    return result
