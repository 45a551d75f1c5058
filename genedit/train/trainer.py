"""DSI training of an atomic-docid GenIR model on 2 CPU cores or many GPUs (accelerate).

The recipe keeps the generalisation of a dense retriever while the decoder learns the corpus:
1. the encoder is frozen and its states are computed once (the seed paper: the decoder does the retrieval);
2. the decoder starts as its teacher (`decoder_init="pooling"`, `model.build.start_as_pooling`): the last
   cross-attention mean-pools the encoder states and each docid row starts as its document's sentence embedding, so
   the untrained GenIR model already ranks like the dense retriever built from the same encoder; its step-0 state is
   then distilled toward the sentence embedding of its input;
3. DSI training then mixes indexing (first tokens of a document -> docid), pseudo-queries (sentences of the
   document -> docid) and real training queries (query -> docid) with cross-entropy over the docid rows,
   plus a KL term to the dense teacher's ranking that stops the decoder from memorising; every learning rate decays
   to 0 over the DSI epochs (`lr_decay`);
4. queries never move docid rows (only document-side examples do), so documents without training queries
   are not starved; the epoch that scores best on a dev split carved from the training queries is kept.
   With fewer than 10 training queries there is no dev split: every epoch runs and the last one is kept.
5. `distinct_text` drops word runs that 3+ documents share (licence headers, "Parameters ----------" blocks) from
   pseudo-queries and indexing texts, since a text several documents carry cannot be trained to one docid, and makes
   each row the mean of the sentence embeddings of the text as written and of the distinct text (either alone ranks
   worse on training queries).
`TrainConfig.recipe("plain")` is the default before issue 9 (random decoder start, raw text, 128-token rows, 3
distillation epochs, constant rates, patience 4); `"dsi"` is classic DSI.

Data parallel (`accelerate launch --multi_gpu --num_processes N` or `torchrun --nproc_per_node N`): every process
draws the same global batches in the same order as one process would (the epoch order is the main process's), trains
on its share of each (every N-th example), and weights its loss so that the gradient accelerate's DDP wrapper averages
is the mean over the global batch; encoder states, docid rows and dev scores are computed share by share and gathered,
so every process decides early stopping from the same figures. One process runs exactly the code path it always ran.

Training scores exactly like retrieval: its logits come from `DocidScorer.logits`, output bias included (BERT's
prediction-head bias, BART's `final_logits_bias`). The bias is not trained: BART's is a buffer anyway, a fresh
docid's entry starts at 0, and with it frozen a document's score stays one dot product with its row (an edit that
writes the row decides it); it also left the `plain` recipe's MiniLM model bit-identical to the trainer before this rule.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState, PartialState
from accelerate.utils import broadcast
from torch import nn
from tqdm.auto import tqdm

from genedit.data.text import boilerplate, distinct_documents
from genedit.data.types import Collection, Document, Query
from genedit.eval.rank import hits_at, rank_of, rr_at
from genedit.model.build import start_as_pooling
from genedit.model.genir import DocidScorer, Encoded, GenIRModel
from genedit.model.pretrained import mean_pool
from genedit.model.rows import RowRecipe, indexing_texts, pseudo_queries, row_embedding, row_views

log = logging.getLogger(__name__)



@dataclass
class TrainConfig:
    """Hyper-parameters of `train`; defaults are the measured recipe for MiniLM BERT2BERT on 2 CPU cores."""

    minutes: float | None = None  # optional wall-clock cap (encoding included); a capped run is not reproducible
    seed: int = 0
    index_tokens: int = RowRecipe.index_tokens  # indexing example = title + first `index_tokens` tokens of the text
    query_tokens: int = RowRecipe.query_tokens  # truncation of queries and pseudo-queries
    row_tokens: int = RowRecipe.row_tokens  # text length embedded for each docid row's initialisation (what the dense teacher embeds)
    pseudo_queries: int = 3  # sentences of each document used as extra queries for it
    indexing_ratio: float = 1.0  # indexing examples per real training query, per epoch (DSI uses 32 with few queries)
    distill_epochs: int = 6  # epochs that only match the dense teacher's ranking
    max_epochs: int = 14  # epoch bound (6 distill + 8 DSI, ~7 minutes on 2 CPU cores); with no wall-clock cap the run is a function of seed, data and hardware
    batch_size: int = 64
    lr_new: float = 1e-3  # freshly initialised weights (cross-attention, prediction-head transform)
    lr_pretrained: float = 1e-4  # warm-started decoder weights
    lr_rows: float = 1e-3  # docid rows (only document-side examples move them)
    weight_decay: float = 0.0
    temperature: float = RowRecipe.temperature  # teacher softmax temperature (all-MiniLM-L6-v2 was trained at scale 20)
    kl_weight: float = 1.0  # weight of the KL to the teacher's ranking during DSI training
    dev_fraction: float = 0.1  # share of training queries held out for early stopping (none below 10 queries: last epoch kept)
    patience: int = 14  # epochs without dev improvement before stopping (only with a dev split; 14: every epoch runs, the decayed last ones included, and the best dev epoch is kept)
    row_init: str = "embedding"  # docid rows start as: "embedding" (the document's sentence embedding) | "random" (classic DSI)
    lr_decay: bool = True  # cosine decay of every learning rate to 0 over the DSI epochs (the distillation keeps its rates)
    # train on each document's distinct text: word runs shared by 3+ documents (licence headers, section markers) are dropped from
    # pseudo-queries and indexing texts; rows embed both texts
    distinct_text: bool = True
    decoder_init: str = "pooling"  # a fresh decoder starts: "random" (as the base built it) | "pooling" (reading out the mean-pooled encoder states: the dense teacher)

    def __post_init__(self) -> None:
        if self.row_init not in ROW_INITS:
            raise ValueError(f"row_init must be one of {', '.join(ROW_INITS)}, got {self.row_init!r}")
        if self.decoder_init not in DECODER_INITS:
            raise ValueError(f"decoder_init must be one of {', '.join(DECODER_INITS)}, got {self.decoder_init!r}")

    @classmethod
    def recipe(cls, name: str, **overrides: object) -> "TrainConfig":
        """A named recipe: 'default' (the measured recipe, TrainConfig's defaults), 'plain' (the default before issue 9) or 'dsi'.

        'dsi' is classic DSI training (Tay et al. 2022): random docid rows, no teacher, cross-entropy only; its rows do
        not live in the encoder's sentence-embedding space, the case where row-only edits cannot work.
        """
        if name not in RECIPES:
            raise ValueError(f"unknown recipe {name!r}; choose from {', '.join(RECIPES)}")
        return cls(**{**RECIPES[name], **overrides})  # type: ignore[arg-type]


ROW_INITS = ("embedding", "random")
DECODER_INITS = ("random", "pooling")
# the default before issue 9, kept so its models and figures can be reproduced
PLAIN: dict[str, object] = {"distinct_text": False, "row_tokens": 128, "distill_epochs": 3, "lr_decay": False, "patience": 4, "decoder_init": "random"}
RECIPES: dict[str, dict[str, object]] = {
    # issue 9: the student starts as its teacher, boilerplate-free texts, rows of 256 tokens as the dense teacher
    # embeds, twice the distillation, learning rates decayed over the DSI epochs, every epoch run, best dev epoch kept
    "default": {},
    "distinct": {},  # alias of "default": its name while it was opt-in (one release ago), kept for the scripts that name it
    "plain": dict(PLAIN),
    "dsi": {**PLAIN, "row_init": "random", "distill_epochs": 0, "kl_weight": 0.0},
}


@dataclass
class EpochLog:
    """What one epoch did."""

    epoch: int
    phase: str
    loss: float
    dev_hits1: float
    dev_hits10: float
    dev_mrr10: float
    seconds: float


@dataclass
class TrainResult:
    """Outcome of a training run."""

    config: TrainConfig
    history: list[EpochLog] = field(default_factory=list)
    start_dev: tuple[float, float, float] = (0.0, 0.0, 0.0)  # dev hits@1, hits@10, mrr@10 of the untrained start
    best_epoch: int = -1  # epoch whose weights the model keeps (the last one without a dev split; -1: the start)
    seconds: float = 0.0
    n_train_queries: int = 0
    n_dev_queries: int = 0
    n_docs: int = 0
    truncated: bool = False  # the wall-clock cap ended the run: another machine would train a different model
    processes: int = 1  # data-parallel processes that trained together
    examples_per_process: list[int] = field(default_factory=list)  # training examples each process stepped on, all epochs

    def to_dict(self) -> dict:
        """JSON-ready summary."""
        return asdict(self)


@dataclass
class TrainingPool:
    """Cached encoder states of every training input, with its target doc and kind."""

    enc: Encoded
    target: torch.Tensor  # model row of the target document (GenIRModel.doc_index)
    is_query: torch.Tensor  # bool: a real query (must not move docid rows)
    teacher: torch.Tensor  # normalised mean-pooled encoder state [n, D]


def _gather_shares(accelerator: Accelerator, share: list[int], parts: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Every process's rows of `parts` (this process's share of the items, as split_between_processes padded it), in item order.

    Shares are consecutive ranges in process order, padded with copies of the last item: after gathering, the first copy
    of each item index is the one to keep (the indices never decrease).
    """
    index = accelerator.gather(torch.tensor(share, device=accelerator.device))
    keep = torch.ones_like(index, dtype=torch.bool)
    keep[1:] = index[1:] > index[:-1]
    return [accelerator.gather(accelerator.pad_across_processes(p, dim=1))[keep] for p in parts]


def _shared(accelerator: Accelerator | None, n: int, compute: Callable[[list[int]], list[torch.Tensor]]) -> list[torch.Tensor]:
    """compute(items) for items 0..n-1, each process computing its share and receiving everyone's rows (one process: all)."""
    if accelerator is None or accelerator.num_processes == 1:
        return compute(list(range(n)))
    with accelerator.split_between_processes(list(range(n)), apply_padding=True) as share:
        return _gather_shares(accelerator, share, compute(share))


def _encode(model: GenIRModel, texts: list[str], max_len: int, batch: int, accelerator: Accelerator | None = None) -> Encoded:
    """Encoder states of every text (data parallel: each process encodes its share, the states are gathered)."""
    progress = accelerator is None or accelerator.is_local_main_process

    def encode(items: list[int]) -> list[torch.Tensor]:
        enc = model.encode([texts[i] for i in items], batch_size=batch, max_length=max_len, progress=progress)
        return [enc.hidden, enc.mask]

    hidden, mask = _shared(accelerator, len(texts), encode)
    return Encoded(hidden, mask)


def encode_pool(model: GenIRModel, texts: list[str], targets: list[int], is_query: list[bool], max_len: int, batch: int, accelerator: Accelerator | None = None) -> TrainingPool:
    """Training inputs encoded once: texts with their target rows, kinds and dense-teacher vectors."""
    enc = _encode(model, texts, max_len, batch, accelerator)
    teacher = F.normalize(mean_pool(enc.hidden, enc.mask), dim=-1)
    # host-side: indexed by host batches, moved to the model's device per batch
    return TrainingPool(enc, torch.tensor(targets, device="cpu"), torch.tensor(is_query, device="cpu"), teacher)


def _measures(rank: torch.Tensor) -> tuple[float, float, float]:
    """Hits@1, hits@10 and MRR@10 of ranks."""
    return hits_at(rank, 1).mean().item(), hits_at(rank, 10).mean().item(), rr_at(rank, 10).mean().item()


def dev_scores(model: GenIRModel, enc: Encoded, targets: torch.Tensor) -> tuple[float, float, float]:
    """Hits@1, hits@10 and MRR@10 of encoded queries against target rows [B] or a relevance mask [B, N]."""
    return _measures(rank_of(model.scores(enc), targets))


class _TrainLogits(nn.Module):
    """Training's forward as one module (encoder states -> docid logits, with the detach rules), the one DDP wraps.

    Every weight the loss reaches is used inside this forward, so DDP's reducer accounts for all of them (the docid rows
    enter through the logits, outside `DocidScorer.forward`).
    """

    def __init__(self, scorer: DocidScorer) -> None:
        super().__init__()
        self.scorer = scorer

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor, is_query: torch.Tensor) -> torch.Tensor:
        """Docid logits [B, N]; real queries see detached rows, the output bias is detached."""
        state = self.scorer(hidden, mask, return_state=True)
        return self.scorer.logits(state, detach_rows=is_query, detach_bias=True)


def length_batches(order: list[int], lengths: list[int], batch_size: int, window: int = 50) -> list[list[int]]:
    """Batches of similar length from a shuffled order: each window of `window` batches is sorted by length.

    Random batches of queries and pseudo-queries (mean 23 tokens, cut at 48) all pad to 48; sorting within
    windows roughly halves the decoder's cross-attention work and keeps batches random across the epoch.
    """
    span = batch_size * window
    batches = []
    for start in range(0, len(order), span):
        part = sorted(order[start : start + span], key=lambda i: lengths[i])
        batches += [part[j : j + batch_size] for j in range(0, len(part), batch_size)]
    return batches


def _param_groups(model: GenIRModel, cfg: TrainConfig, fresh: set[str]) -> tuple[list[dict], torch.nn.Parameter]:
    """Optimizer groups: fresh decoder weights, warm-started decoder weights, docid rows (the unembedding)."""
    unembed = model.cmap.unembedding(model.hf).weight
    encoder_ids = {id(p) for p in model.hf.get_encoder().parameters()}
    new: list[nn.Parameter] = []
    old: list[nn.Parameter] = []
    for name, p in model.hf.named_parameters():
        if p is unembed or id(p) in encoder_ids:
            continue
        (new if name in fresh else old).append(p)
    groups = [{"params": new, "lr": cfg.lr_new}, {"params": old, "lr": cfg.lr_pretrained}]
    return groups, unembed


def _encoder_read_rows(model: GenIRModel) -> torch.Tensor | None:
    """Mask [V] of unembedding rows to keep frozen when the encoder reads the same matrix (T5, BART), else None.

    Tied to the shared input embedding, a vocabulary row that moved (e.g. the decoder start token's, which gets
    gradient through the decoder input) would change every query's encoder states, which are cached; docid tokens
    never enter the encoder, so their rows train. BERT2BERT's unembedding is the decoder's own input embedding: it
    keeps training the start-token row, as it always did.
    """
    weight = model.cmap.unembedding(model.hf).weight
    if not any(p is weight for p in model.hf.get_encoder().parameters()):
        return None
    frozen = torch.ones(weight.shape[0], dtype=torch.bool, device=weight.device)
    frozen[model.docid_token_ids] = False
    return frozen


def fresh_parameters(model: GenIRModel) -> set[str]:
    """Names of parameters the base did not carry (freshly initialised): recorded by `base_model`, else none."""
    return set(model.meta.get("fresh_parameters", []))


_ACCELERATE_SINGLETONS = (AcceleratorState, PartialState, GradientState)


def accelerate_state_exists() -> bool:
    """Whether accelerate's process-wide state exists (a launcher set it up, or a run has not dropped it yet)."""
    return any(cls._shared_state for cls in _ACCELERATE_SINGLETONS)


@contextmanager
def _no_global_state(model: GenIRModel) -> Iterator[None]:
    """Restore what a run changes outside its result: RNG states, requires_grad flags, accelerate's singletons."""
    py_state = random.getstate()
    flags = {name: p.requires_grad for name, p in model.hf.named_parameters()}
    # accelerate keeps process-wide state (device, cpu flag); a run that created it drops it, so a later run on another
    # device starts clean (accelerate's own reset is a private `_shared_state.clear()`; no public API exists)
    singletons = list(_ACCELERATE_SINGLETONS)
    created = [not cls._shared_state for cls in singletons]
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=cuda):
            yield
    finally:
        random.setstate(py_state)
        for name, p in model.hf.named_parameters():
            p.requires_grad_(flags.get(name, True))
        for cls, fresh in zip(singletons, created):
            if fresh:
                cls._shared_state.clear()


@contextmanager
def processes(device: torch.device) -> Iterator[PartialState]:
    """accelerate's view of this launch for work on `device`: rank, world size, barrier (one process unless launched).

    Built with the rule `train` uses (a CPU device: CPU processes over gloo), so a command can save on the main process
    only and wait for the others. State and process group created here are dropped on exit; existing ones are kept.
    """
    created = not PartialState._shared_state
    had_group = torch.distributed.is_available() and torch.distributed.is_initialized()
    state = PartialState(cpu=device.type == "cpu")
    try:
        yield state
    finally:
        if created:
            if not had_group:
                state.destroy_process_group()
            PartialState._reset_state()  # no public reset exists (as in _no_global_state)


def max_positions(model: GenIRModel) -> int | None:
    """Longest input the encoder can embed (learned positions: BERT, BART), None when unbounded (T5's relative positions)."""
    config = model.hf.config
    value = getattr(getattr(config, "encoder", None) or config, "max_position_embeddings", None)
    return int(value) if value else None


def fit_lengths(model: GenIRModel, cfg: TrainConfig) -> TrainConfig:
    """The config with token lengths capped at the model's positions (tiny-bert2bert has 128; the default rows embed 256)."""
    limit = max_positions(model)
    lengths = {"row_tokens": cfg.row_tokens, "query_tokens": cfg.query_tokens, "index_tokens": cfg.index_tokens + 16}
    over = {k: v for k, v in lengths.items() if limit is not None and v > limit}
    if limit is None or not over:
        return cfg
    log.warning("the model embeds at most %d tokens: %s capped at %d", limit, ", ".join(f"{k} {v}" for k, v in over.items()), limit)
    capped = {k: limit for k in over}
    if "index_tokens" in capped:
        capped["index_tokens"] = max(1, limit - 16)  # indexing inputs are encoded at index_tokens + 16
    return dataclasses.replace(cfg, **capped)


def train(model: GenIRModel, collection: Collection, cfg: TrainConfig | None = None, *, split: str = "train") -> TrainResult:
    """Index every document of `collection` into `model` and train it with the DSI recipe above.

    Documents the model already holds (none of the collection's) keep their rows and compete in every softmax; the
    teacher reads their current rows. All targets are model rows (`GenIRModel.doc_index`). The run is a function of
    seed, data and hardware, and leaves no global state behind (the caller's RNG states are restored).
    """
    cfg = fit_lengths(model, cfg or TrainConfig())
    with _no_global_state(model):
        random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        return _train(model, collection, cfg, split)


def _train(model: GenIRModel, collection: Collection, cfg: TrainConfig, split: str) -> TrainResult:
    """The run: index the documents, build the inputs, set up the optimizer, train epoch by epoch, keep the best."""
    t0 = time.monotonic()
    run = _Launch(Accelerator(cpu=model.device.type == "cpu", device_placement=False), t0 + cfg.minutes * 60 if cfg.minutes is not None else math.inf)
    if run.parallel:
        model.to(run.accelerator.device)  # a GPU per process; CPU processes stay where they are
    if not collection.documents:
        raise ValueError(f"collection {collection.name!r} has no documents")
    docs, teacher_rows = _index_documents(model, collection.documents, cfg, run)
    rng = random.Random(cfg.seed)
    dev_pairs, train_pairs = _split_queries(collection, split, cfg, rng)
    inputs = _training_inputs(model, docs, train_pairs, cfg, run)
    dev = _DevSplit.build(model, dev_pairs, cfg, run)
    run.note(logging.INFO, "training inputs: %d queries, %d pseudo-queries, %d indexing texts, %d dev queries", inputs.n_queries, inputs.n_pseudo, len(docs), len(dev_pairs))
    result = TrainResult(cfg, n_train_queries=inputs.n_queries, n_dev_queries=len(dev_pairs), n_docs=len(docs), processes=run.world)
    opt = _Optimization.build(model, cfg, run, teacher_rows)
    result.start_dev = dev.scores(model, run)
    best = _Best(result.start_dev, model, bool(dev_pairs))
    if dev_pairs:
        run.note(logging.INFO, "start: dev hits@1 %.3f hits@10 %.3f mrr@10 %.3f", *result.start_dev)
    else:
        run.note(logging.INFO, "no dev split (fewer than 10 training queries): no early stopping, the last epoch is kept")
    seen = 0  # examples this process stepped on
    if run.rank:
        # other processes draw other dropout masks (accelerate's set_seed(device_specific=True), without reseeding numpy's
        # global stream, which train() leaves alone); the main process keeps one process's stream, and its epoch order
        # is everyone's (run.shared_order)
        torch.manual_seed(cfg.seed + run.rank)
    for epoch in range(cfg.max_epochs):
        if run.out_of_time():
            run.note(logging.WARNING, "wall-clock cap of %s minutes reached after %d epochs: this run is not reproducible", cfg.minutes, epoch)
            result.truncated = True
            break
        e0 = time.monotonic()
        distill = epoch < cfg.distill_epochs
        loss, count, truncated = _run_epoch(model, cfg, run, inputs, opt, rng, epoch, len(docs))
        result.truncated = result.truncated or truncated
        seen += count
        model.hf.eval()
        scores = dev.scores(model, run)
        result.history.append(EpochLog(epoch, "distill" if distill else "dsi", loss, *scores, time.monotonic() - e0))
        run.note(logging.INFO, "epoch %d (%s): loss %.4f dev hits@1 %.3f hits@10 %.3f mrr@10 %.3f (%.0fs)", epoch, result.history[-1].phase, loss, *scores, time.monotonic() - e0)
        if best.stop_after(epoch, scores, distill, cfg.patience, model):
            run.note(logging.INFO, "early stop: no dev improvement for %d epochs", best.bad_epochs)
            break
    best.restore(model)
    model.hf.eval()
    result.examples_per_process = [seen]
    if run.parallel:
        result.examples_per_process = run.accelerator.gather(torch.tensor([seen], device=run.accelerator.device)).tolist()
        run.accelerator.free_memory()  # drop the DDP wrapper (and its gradient hooks) now, not at some later collection
    result.best_epoch = best.epoch
    result.seconds = time.monotonic() - t0
    _record(model, cfg, result, run.world)
    return result


@dataclass
class _Launch:
    """This process's place in the run: accelerate's view of the launch and the wall-clock deadline."""

    accelerator: Accelerator
    deadline: float

    @property
    def world(self) -> int:
        """Processes that train together."""
        return self.accelerator.num_processes

    @property
    def rank(self) -> int:
        """This process's index."""
        return self.accelerator.process_index

    @property
    def parallel(self) -> bool:
        """Whether several processes train together."""
        return self.world > 1

    @property
    def shared(self) -> Accelerator | None:
        """The share-and-gather helpers' accelerator: None runs one process's code."""
        return self.accelerator if self.parallel else None

    def note(self, level: int, msg: str, *args: object) -> None:
        """Log once, from the main process (accelerate's logger would also prefix every record with its rank)."""
        if self.accelerator.is_main_process:
            log.log(level, msg, *args)

    def out_of_time(self) -> bool:
        """Whether the wall-clock cap is reached (the main process decides for everyone: clocks differ)."""
        late = time.monotonic() > self.deadline
        if self.parallel and self.deadline != math.inf:
            late = bool(broadcast(torch.tensor([int(late)], device=self.accelerator.device), from_process=0).item())
        return late

    def shared_order(self, values: list[int]) -> list[int]:
        """The main process's draw (dropout leaves every process's random stream in another state)."""
        if not self.parallel:
            return values
        return broadcast(torch.tensor(values, dtype=torch.long, device=self.accelerator.device), from_process=0).tolist()


def _index_documents(model: GenIRModel, docs: list[Document], cfg: TrainConfig, run: _Launch) -> tuple[list[Document], torch.Tensor]:
    """Start the decoder, add one docid row per document; returns the documents as training sees them and the teacher's rows."""
    # docid rows = sentence embeddings of the documents (frozen encoder, mean pooling)
    model.hf.eval()
    if cfg.decoder_init == "pooling":
        start_as_pooling(model, fresh_parameters(model))
    distinct = distinct_documents(docs, boilerplate([d.text for d in docs])) if cfg.distinct_text else None
    views = row_views(docs, distinct)  # rows embed both texts; training sees the distinct text only
    if distinct is not None:
        docs = distinct

    def row_embeddings(items: list[int]) -> list[torch.Tensor]:
        return [row_embedding(model, [[v[i] for i in items] for v in views], cfg.row_tokens, progress=run.accelerator.is_local_main_process)]

    (rows,) = _shared(run.shared, len(docs), row_embeddings)
    held = [d.id for d in docs if d.id in model]
    if held:
        raise ValueError(f"the model already holds {len(held)} of these documents (e.g. {held[:3]}); train() indexes new documents: use a fresh base model or one without them")
    if cfg.row_init == "embedding":
        model.add_documents([d.id for d in docs], rows)
        doc_rows = model.docid_rows().detach().clone()
    else:  # classic DSI: unit-norm random rows from their own seeded stream (the run's other draws are unchanged)
        gen = torch.Generator(device=rows.device).manual_seed(cfg.seed)
        model.add_documents([d.id for d in docs], F.normalize(torch.randn(rows.shape, generator=gen, device=rows.device), dim=-1))
        doc_rows = model.docid_rows().detach().clone()
        doc_rows[[model.doc_index(d.id) for d in docs]] = rows.to(doc_rows.dtype)  # the dense teacher still reads embeddings
    return docs, F.normalize(doc_rows, dim=-1)


def _split_queries(collection: Collection, split: str, cfg: TrainConfig, rng: random.Random) -> tuple[list[tuple[Query, set[str]]], list[tuple[Query, set[str]]]]:
    """The split's (query, relevant docs) pairs, shuffled, as (dev, train): no dev split below 10 queries."""
    pairs = collection.split(split)
    rng.shuffle(pairs)
    n_dev = max(1, int(len(pairs) * cfg.dev_fraction)) if len(pairs) >= 10 else 0
    return pairs[:n_dev], pairs[n_dev:]


@dataclass
class _Inputs:
    """The encoded training inputs: queries and pseudo-queries (one pool), indexing texts (another)."""

    pool: TrainingPool
    index_pool: TrainingPool
    n_queries: int
    n_pseudo: int
    n_index: int  # indexing examples drawn per epoch

    def batches(self, run: _Launch, rng: random.Random, n_docs: int, batch_size: int) -> list[tuple[str, list[int]]]:
        """One epoch's batches of both pools, length-bucketed, in the main process's shuffled order."""
        # drawn on the host from the seeded CPU stream: the same order on every device
        order = run.shared_order(torch.randperm(len(self.pool.target), device="cpu").tolist())
        idx_order = run.shared_order(torch.randint(n_docs, (self.n_index,), device="cpu").tolist())
        batches = [("pool", b) for b in length_batches(order, self.pool.enc.mask.sum(1).tolist(), batch_size)]
        batches += [("index", b) for b in length_batches(idx_order, self.index_pool.enc.mask.sum(1).tolist(), batch_size)]
        rng.shuffle(batches)
        return batches


def _training_inputs(model: GenIRModel, docs: list[Document], train_pairs: list[tuple[Query, set[str]]], cfg: TrainConfig, run: _Launch) -> _Inputs:
    """Training queries, pseudo-queries and indexing texts with their target rows, encoded once (the encoder is frozen)."""
    q_texts, q_targets = [], []
    for q, rel in train_pairs:
        for d in sorted(rel):
            q_texts.append(q.text)
            q_targets.append(model.doc_index(d))
    d_texts: list[str] = []
    d_targets: list[int] = []
    for doc in docs:
        d_texts += pseudo_queries(doc, cfg.pseudo_queries)
        d_targets += [model.doc_index(doc.id)] * (len(d_texts) - len(d_targets))
    n_index = int(round(cfg.indexing_ratio * max(len(q_texts), 1)))
    index_texts = indexing_texts(model, docs, cfg.index_tokens)
    pool = encode_pool(model, q_texts + d_texts, q_targets + d_targets, [True] * len(q_texts) + [False] * len(d_texts), cfg.query_tokens, cfg.batch_size, run.shared)
    index_pool = encode_pool(model, index_texts, [model.doc_index(d.id) for d in docs], [False] * len(docs), cfg.index_tokens + 16, cfg.batch_size, run.shared)
    return _Inputs(pool, index_pool, len(q_texts), len(d_texts), n_index)


@dataclass
class _DevSplit:
    """This process's share of the dev queries, encoded, with their relevance over the model's rows."""

    share: list[int]
    enc: Encoded | None
    relevant: torch.Tensor | None

    @classmethod
    def build(cls, model: GenIRModel, pairs: list[tuple[Query, set[str]]], cfg: TrainConfig, run: _Launch) -> "_DevSplit":
        """Encode the dev queries (each process its share)."""
        if not pairs:
            return cls([], None, None)
        share = list(range(len(pairs)))
        if run.parallel:  # each process scores its share of the dev queries; the ranks are gathered
            with run.accelerator.split_between_processes(share, apply_padding=True) as mine:
                share = mine
        enc = model.encode([pairs[i][0].text for i in share], max_length=cfg.query_tokens)
        relevant = torch.zeros(len(share), model.n_docs, dtype=torch.bool, device="cpu")  # relevance over the model's rows (rank_of moves it)
        for row, i in enumerate(share):
            relevant[row, [model.doc_index(d) for d in pairs[i][1]]] = True
        return cls(share, enc, relevant)

    def scores(self, model: GenIRModel, run: _Launch) -> tuple[float, float, float]:
        """Dev Hits@1, Hits@10 and MRR@10 over every process's share (zeros without a dev split)."""
        if self.enc is None or self.relevant is None:
            return (0.0, 0.0, 0.0)
        if not run.parallel:
            return dev_scores(model, self.enc, self.relevant)
        (ranks,) = _gather_shares(run.accelerator, self.share, [rank_of(model.scores(self.enc), self.relevant.to(model.device))])
        return _measures(ranks)


@dataclass
class _Optimization:
    """What steps: the (DDP-wrapped) training forward, AdamW over the groups, the docid rows and the teacher's rows."""

    step: nn.Module
    optimizer: torch.optim.Optimizer
    row_param: nn.Parameter
    frozen_rows: torch.Tensor | None
    base_lrs: list[float]
    teacher_rows: torch.Tensor

    @classmethod
    def build(cls, model: GenIRModel, cfg: TrainConfig, run: _Launch, teacher_rows: torch.Tensor) -> "_Optimization":
        """Freeze the encoder and the output bias, group the trained weights, prepare forward and optimizer for the launch."""
        groups, row_param = _param_groups(model, cfg, fresh_parameters(model))
        model.hf.get_encoder().requires_grad_(False)  # its states are cached: it cannot learn here
        row_param.requires_grad_(True)  # T5 and BART tie it to the encoder's input embedding: their docid rows still train
        bias = getattr(model.cmap.unembedding(model.hf), "bias", None)  # BERT's prediction-head bias (BART's is a buffer)
        if isinstance(bias, nn.Parameter):
            bias.requires_grad_(False)  # never trained (detached in the logits): DDP must not wait for a gradient of it
        frozen_rows = _encoder_read_rows(model)
        # the fused kernel (CPU and CUDA) takes ~40% off a CPU step: AdamW over the 30k-row tied embedding dominates
        fused = model.device.type in ("cpu", "cuda")
        optimizer = torch.optim.AdamW(groups + [{"params": [row_param], "lr": cfg.lr_rows, "weight_decay": 0.0}], weight_decay=cfg.weight_decay, fused=fused)
        step, optimizer = run.accelerator.prepare(_TrainLogits(model.scorer), optimizer)  # several processes: DDP averages gradients
        return cls(step, optimizer, row_param, frozen_rows, [g["lr"] for g in optimizer.param_groups], teacher_rows)

    def decay(self, cfg: TrainConfig, epoch: int, progress_in_epoch: float) -> None:
        """Set every group's rate on the cosine decay over the DSI epochs."""
        progress = (epoch - cfg.distill_epochs + progress_in_epoch) / max(cfg.max_epochs - cfg.distill_epochs, 1)
        for g, lr in zip(self.optimizer.param_groups, self.base_lrs):
            g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * progress))


def _run_epoch(model: GenIRModel, cfg: TrainConfig, run: _Launch, inputs: _Inputs, opt: _Optimization, rng: random.Random, epoch: int, n_docs: int) -> tuple[float, int, bool]:
    """One epoch of steps; returns its mean loss (over the global batches), this process's example count, whether the cap cut it."""
    distill = epoch < cfg.distill_epochs
    batches = inputs.batches(run, rng, n_docs, cfg.batch_size)
    model.hf.train()
    total, count, truncated = 0.0, 0, False
    for b_i, (kind, idx) in enumerate(tqdm(batches, desc=f"epoch {epoch}", leave=False, disable=not run.accelerator.is_local_main_process)):
        if cfg.lr_decay and not distill:
            opt.decay(cfg, epoch, b_i / len(batches))
        if run.out_of_time():
            truncated = True
            break
        loss, n = _step(model, cfg, run, inputs.pool if kind == "pool" else inputs.index_pool, idx, opt, distill)
        total += loss * n
        count += n
    seen = count
    if run.parallel:  # the epoch's loss over the global batches
        total, count = run.accelerator.reduce(torch.tensor([total, count], dtype=torch.float64, device=run.accelerator.device), reduction="sum").tolist()
    return total / max(count, 1), seen, truncated


def _step(model: GenIRModel, cfg: TrainConfig, run: _Launch, src: TrainingPool, idx: list[int], opt: _Optimization, distill: bool) -> tuple[float, int]:
    """One optimizer step on this process's share of a global batch; returns its loss and how many examples it had."""
    mine, weight = idx, 1.0
    if run.parallel:
        # every world-th example: the batch is length-sorted, so each process gets short and long inputs alike.
        # DDP averages the processes' gradients; weighting each mean loss by its share of the global batch makes
        # that average the gradient of the global batch's mean loss, uneven shares included
        mine = idx[run.rank :: run.world]
        weight = len(mine) * run.world / len(idx)
    index = torch.tensor(mine or idx[:1], device="cpu")  # a process without a share still joins the all-reduce, with weight 0
    part = src.enc.select(index)
    is_q = src.is_query[index].to(model.device)
    # retrieval's logits (output bias included, frozen); real queries see detached rows: they train the
    # decoder, never the document rows
    logits = opt.step(part.hidden, part.mask, is_q)
    teacher = F.softmax(src.teacher[index] @ opt.teacher_rows.T / cfg.temperature, dim=-1)
    kl = F.kl_div(F.log_softmax(logits, -1), teacher, reduction="batchmean")
    loss = kl if distill else F.cross_entropy(logits, src.target[index].to(logits.device)) + cfg.kl_weight * kl
    opt.optimizer.zero_grad(set_to_none=True)
    run.accelerator.backward(loss * weight if run.parallel else loss)
    if distill:
        opt.row_param.grad = None
    elif opt.frozen_rows is not None and opt.row_param.grad is not None:
        opt.row_param.grad[opt.frozen_rows] = 0.0  # exactly 0: Adam leaves these rows bit-identical
    opt.optimizer.step()
    return loss.item(), len(mine)


class _Best:
    """Early stopping: the best dev epoch so far and its weights (without a dev split: the last epoch)."""

    def __init__(self, start: tuple[float, float, float], model: GenIRModel, has_dev: bool) -> None:
        self.has_dev = has_dev
        self.score, self.epoch = start[1] + start[2], -1
        self.state = {k: v.detach().clone() for k, v in model.hf.state_dict().items()} if has_dev else None
        self.bad_epochs = 0

    def stop_after(self, epoch: int, dev: tuple[float, float, float], distill: bool, patience: int, model: GenIRModel) -> bool:
        """Take in an epoch's dev scores (keeping its weights if best); whether patience ran out."""
        if not self.has_dev:
            self.epoch = epoch
        elif dev[1] + dev[2] > self.score + 1e-9:
            self.score, self.epoch = dev[1] + dev[2], epoch
            self.state = {k: v.detach().clone() for k, v in model.hf.state_dict().items()}
            self.bad_epochs = 0
        elif not distill:
            self.bad_epochs += 1
            return self.bad_epochs >= patience
        return False

    def restore(self, model: GenIRModel) -> None:
        """Load the best epoch's weights (nothing to do without a dev split)."""
        if self.state is not None:
            model.hf.load_state_dict(self.state)


def _record(model: GenIRModel, cfg: TrainConfig, result: TrainResult, world: int) -> None:
    """Write what the run was into the model's metadata (saved with it; editing reads the config)."""
    model.meta["train"] = {
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "seconds": round(result.seconds, 1),
        "start_dev": result.start_dev,
        "truncated": result.truncated,
        "config": asdict(cfg),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "processes": world,
        "examples_per_process": result.examples_per_process,
    }
