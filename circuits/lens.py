"""Vocabulary projection of step-0 component and head outputs, residual-stream docid ranks, cross-attention reading.

Logit lens: a vector x written into the residual stream is read as `cmap.lens(hf, x) @ W_unembed.T` (final norm or
prediction-head transform first, T5's output scale applied). Word logits exclude docid and special tokens and keep
only whole alphabetic tokens. On post-LN architectures (BART, BERT2BERT; `cmap.post_ln`) the lens of one component's
output is an approximation: the real model normalises the sum of all writes after every sublayer.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from circuits.patching import Activations
from circuits.runner import ATTENTION, Runner
from genedit.eval.rank import rank_of
from genedit.model.components import COMPONENTS, Site, head_contribution
from genedit.model.genir import Encoded, GenIRModel

log = logging.getLogger(__name__)


def word_vocab(model: GenIRModel) -> torch.Tensor:
    """Mask [V] of the unembedding rows that are whole words: alphabetic, >= 2 characters, not docid, not special."""
    tok = model.tokenizer
    rows = model.cmap.unembedding(model.hf).weight.shape[0]
    mask = torch.zeros(rows, dtype=torch.bool, device="cpu")
    special = set(tok.all_special_ids)
    docids = set(model.docid_token_ids.tolist())
    tokens = tok.convert_ids_to_tokens(list(range(min(rows, len(tok)))))
    for i, t in enumerate(tokens):
        if t is None or i in special or i in docids or t.startswith("##"):
            continue
        text = tok.convert_tokens_to_string([t]).strip()
        if len(text) >= 2 and text.isalpha():
            mask[i] = True
    return mask


def vocab_logits(model: GenIRModel, x: torch.Tensor, columns: torch.Tensor | None = None, rows: torch.Tensor | None = None) -> torch.Tensor:
    """Logit-lens scores [B, V'] of residual-stream writes x [B, D] over vocabulary rows (ids `columns`, or `rows` given)."""
    if rows is None:
        weight = model.cmap.unembedding(model.hf).weight
        rows = weight if columns is None else weight[columns]
    return model.cmap.lens(model.hf, x) @ rows.T


def site_write(model: GenIRModel, acts: Activations, site: Site) -> torch.Tensor:
    """What a site writes into the residual stream at step 0 [B, D] (a head: its share of the output linear, no bias)."""
    if site.head is None:
        return acts.out[site.layer, COMPONENTS.index(site.component)]
    weight = model.cmap.module(model.hf, site.component, site.layer).weight
    return head_contribution(weight, acts.head_in[site.layer, ATTENTION.index(site.component)], model.cmap, site.head)


@dataclass
class SiteWords:
    """Top words a site writes, typically (over the lens queries) and per query, and how much they are the query's."""

    site: str
    top_words: list[str]  # top of the mean per-query z-scored word logits
    per_query: list[list[str]]  # top words for each lens query
    query_overlap: float  # mean share of a query's own word tokens among the site's top-k written words
    control_overlap: float  # same against a different (shuffled) query's words
    query_auc: float  # mean percentile of the query's own words in the site's word logits (0.5 = chance)
    control_auc: float

    @property
    def query_word_lift(self) -> float:
        """Own-query overlap minus shuffled-query overlap (> 0: the site writes its query's words)."""
        return self.query_overlap - self.control_overlap


@dataclass
class HeadReading:
    """Which query tokens a cross-attention head attends to, for each lens query."""

    site: str
    attended: list[list[str]]  # top tokens (with weights in order) per lens query


@dataclass
class LayerRank:
    """Docid ranking read from the residual stream after one decoder layer (logit lens)."""

    layer: int
    hits1: float
    hits10: float
    mean_rank: float  # 1-based rank of the relevant docid
    mrr10: float


@dataclass
class LensResult:
    """Vocabulary projection results."""

    queries: list[str]
    words: list[SiteWords] = field(default_factory=list)
    reading: list[HeadReading] = field(default_factory=list)
    residual: list[LayerRank] = field(default_factory=list)
    approximate: bool = False  # post-LN architecture: per-component projections are approximate


def query_word_ids(model: GenIRModel, texts: Sequence[str], vocab: torch.Tensor) -> list[torch.Tensor]:
    """The word-vocabulary token ids of each query text."""
    out = []
    for text in texts:
        ids = model.tokenizer(text, add_special_tokens=False, truncation=True, max_length=model.max_query_length)["input_ids"]
        ids = torch.tensor(sorted({i for i in ids if i < len(vocab) and vocab[i]}), dtype=torch.long, device="cpu")
        out.append(ids)
    return out


def site_words(model: GenIRModel, acts: Activations, sites: Sequence[Site], texts: Sequence[str], *, top_k: int = 10, overlap_k: int = 50, seed: int = 0) -> list[SiteWords]:
    """Top written words of each site on the lens queries, with the own-query versus shuffled-query word scores."""
    vocab = word_vocab(model)
    columns = vocab.nonzero().squeeze(1).to(model.device)
    position = torch.full((len(vocab),), -1, dtype=torch.long, device="cpu")
    position[columns.cpu()] = torch.arange(len(columns), device="cpu")
    own = [position[ids] for ids in query_word_ids(model, texts, vocab)]
    n = len(texts)
    gen = torch.Generator().manual_seed(seed)
    shuffle = (torch.arange(n, device="cpu") + 1 + torch.randint(0, max(n - 1, 1), (1,), generator=gen, device="cpu")) % n if n > 1 else torch.zeros(1, dtype=torch.long, device="cpu")
    tok = model.tokenizer
    results = []
    with torch.no_grad():
        rows = model.cmap.unembedding(model.hf).weight[columns]
        for site in sites:
            logits = vocab_logits(model, site_write(model, acts, site), rows=rows)  # [Q, W]
            z = (logits - logits.mean(-1, keepdim=True)) / logits.std(-1, keepdim=True).clamp_min(1e-8)
            top_mean = z.mean(0).topk(min(top_k, z.shape[1])).indices
            per_query_top = logits.topk(min(max(top_k, overlap_k), z.shape[1]), dim=-1).indices.cpu()
            ov, ov_c, auc, auc_c = [], [], [], []
            for q in range(n):
                topset = per_query_top[q, :overlap_k]
                row = logits[q].cpu()
                for words, bucket_o, bucket_a in ((own[q], ov, auc), (own[int(shuffle[q])], ov_c, auc_c)):
                    if len(words) == 0:
                        continue
                    bucket_o.append(float(torch.isin(words, topset).float().mean()))
                    bucket_a.append(float((row.unsqueeze(0) < row[words].unsqueeze(1)).float().mean()))  # percentile
            results.append(
                SiteWords(
                    site=str(site),
                    top_words=tok.convert_ids_to_tokens(columns[top_mean].tolist()),
                    per_query=[tok.convert_ids_to_tokens(columns[per_query_top[q, :top_k].to(columns.device)].tolist()) for q in range(n)],
                    query_overlap=_mean(ov),
                    control_overlap=_mean(ov_c),
                    query_auc=_mean(auc),
                    control_auc=_mean(auc_c),
                )
            )
    return results


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def cross_attention_reading(model: GenIRModel, texts: Sequence[str], *, top_k: int = 3) -> list[HeadReading]:
    """Top attended query tokens of every cross-attention head at step 0 (eager attention, switched back afterwards)."""
    cmap, hf, tok = model.cmap, model.hf, model.tokenizer
    batch = tok(list(texts), padding=True, truncation=True, max_length=model.max_query_length, return_tensors="pt").to(model.device)
    body = cmap.body(hf)
    original = body.config._attn_implementation
    hf.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            hidden = hf.get_encoder()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            start = torch.full((len(texts), 1), model.scorer.start_id, dtype=torch.long, device=model.device)
            out = body(input_ids=start, encoder_hidden_states=cmap.encoder_states(hf, hidden), encoder_attention_mask=batch["attention_mask"], output_attentions=True)
    finally:
        hf.set_attn_implementation(original)
    if not getattr(out, "cross_attentions", None):
        raise RuntimeError(f"the {cmap.arch} decoder returned no cross-attention weights with eager attention")
    tokens = [tok.convert_ids_to_tokens(ids) for ids in batch["input_ids"].tolist()]
    lengths = batch["attention_mask"].sum(1).tolist()
    readings = []
    for layer, weights in enumerate(out.cross_attentions):  # [B, H, 1, S]
        for head in range(cmap.n_heads):
            attended = []
            for q in range(len(texts)):
                w = weights[q, head, 0, : lengths[q]]
                idx = w.topk(min(top_k, len(w))).indices.tolist()
                attended.append([f"{tokens[q][i]}:{w[i]:.2f}" for i in idx])
            readings.append(HeadReading(str(Site(layer, "cross_attn", head)), attended))
    return readings


def residual_ranks(runner: Runner, encoded: Encoded, relevant: torch.Tensor, *, batch_size: int = 64) -> list[LayerRank]:
    """Rank of the relevant docid read (logit lens) from the residual stream after each decoder layer."""
    model, cmap = runner.model, runner.cmap
    layer_envoys = runner.layer_envoys()
    ranks: list[list[torch.Tensor]] = [[] for _ in range(cmap.n_layers)]
    relevant = relevant.to(runner.device)
    for start in range(0, len(encoded), batch_size):
        index = torch.arange(start, min(start + batch_size, len(encoded)), device="cpu")
        kv = runner.cross_kv(encoded.select(index))
        saved: list = []
        with torch.no_grad():
            with runner.envoy.trace(*runner.trace_args(kv)):
                for envoy in layer_envoys:
                    saved.append(envoy.output.save())
            for layer, out in enumerate(saved):
                x = out[0] if isinstance(out, tuple) else out
                logits = model.scorer.logits(cmap.lens(model.hf, x[:, 0]))
                ranks[layer].append(rank_of(logits, relevant[index]))
    result = []
    for layer in range(cmap.n_layers):
        r = torch.cat(ranks[layer]).double()
        rr = torch.where(r < 10, 1.0 / (r + 1), torch.zeros_like(r))
        result.append(LayerRank(layer, float((r == 0).double().mean()), float((r < 10).double().mean()), float((r + 1).mean()), float(rr.mean())))
    return result
