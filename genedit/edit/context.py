"""What an edit method works with: the model, where to edit, the indexed corpus's own texts, and the journal recorder."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path

import torch

from genedit.data.text import boilerplate, distinct_documents
from genedit.data.types import Collection, Document
from genedit.edit import statistics
from genedit.edit.activations import batch_rows, group_mean, read_keys
from genedit.edit.pseudo import PseudoQueries
from genedit.model.components import Site
from genedit.model.genir import GenIRModel
from genedit.model.journal import TensorChange
from genedit.model.rows import RowRecipe, indexing_texts, pseudo_queries, row_embedding, row_views
from genedit.model.storage import current_version

log = logging.getLogger(__name__)


@dataclass
class EditRequest:
    """One edit: the operation, its documents (new text for add/update) and the queries the user gave for them."""

    op: str  # add | delete | update
    ids: list[str]
    docs: list[Document] = field(default_factory=list)
    queries: dict[str, list[str]] = field(default_factory=dict)


def tensor_name(hf: torch.nn.Module, tensor: torch.Tensor) -> str:
    """State-dict name of a parameter or buffer of `hf` (first name of a tied tensor)."""
    for name, t in list(hf.named_parameters()) + list(hf.named_buffers()):
        if t is tensor:
            return name
    raise KeyError("tensor is not a parameter or buffer of the model")


def get_tensor(hf: torch.nn.Module, name: str) -> torch.Tensor:
    """A parameter or buffer of `hf` by state-dict name."""
    try:
        return hf.get_parameter(name)
    except AttributeError:
        return hf.get_buffer(name)


class Recorder:
    """Snapshots the tensors an edit touches (before it writes them) and turns them into journal changes."""

    def __init__(self, model: GenIRModel) -> None:
        self.model = model
        self.vocab_before = model.vocab_rows
        self._before: dict[str, tuple[list[int] | None, torch.Tensor]] = {}
        self._new_rows: dict[str, list[int]] = {}

    def touch(self, name: str, rows: Sequence[int] | None = None) -> None:
        """Record the current values of a whole tensor, or of some rows, before they are written."""
        tensor = get_tensor(self.model.hf, name)
        if rows is None:
            if name not in self._before:
                self._before[name] = (None, tensor.detach().clone())
            return
        rows = [int(r) for r in rows]
        old_rows, old = self._before.get(name, ([], tensor.new_zeros((0, *tensor.shape[1:]))))
        if old_rows is None:
            return  # the whole tensor is recorded already
        known = set(old_rows)
        existing = [r for r in rows if r < tensor.shape[0] and r not in known]
        self._before[name] = (old_rows + existing, torch.cat([old, tensor.detach()[existing].clone()]))
        self._new_rows.setdefault(name, []).extend(r for r in rows if r >= tensor.shape[0] and r not in self._new_rows.get(name, []))

    def changes(self) -> list[TensorChange]:
        """The recorded tensors' values before and after, as journal changes."""
        out = []
        for name, (rows, before) in self._before.items():
            tensor = get_tensor(self.model.hf, name).detach()
            if rows is None:
                out.append(TensorChange(name, before, tensor.clone()))
            elif rows:
                out.append(TensorChange(name, before, tensor[rows].clone(), rows))
        for name, rows in self._new_rows.items():
            if rows:
                out.append(TensorChange(name, None, get_tensor(self.model.hf, name).detach()[rows].clone(), rows))
        return out


@dataclass
class TextStates:
    """Readout states of preserved texts (a row per text) and the decoder version they were read at."""

    version: int
    row: dict[str, int]  # text -> its row in states
    states: torch.Tensor  # [M, D]


@dataclass
class EditSettings:
    """Shared settings of the editing context."""

    targets: str = "auto"  # editing-target selection from the circuit (circuits.artifact.EDIT_SELECTIONS)
    preserve_per_doc: int = 3  # preserved texts per indexed document (its training queries first)
    max_preserved: int = 20000  # cap on preserved texts (a seeded sample beyond it)
    seed: int = 0
    sentences: int = 3  # sentences of a document used as its pseudo-queries
    stale_states: int = 100  # preserved texts' readout states are kept over this many decoder changes, then read again


class EditContext:
    """The model being edited, its editing targets, and cached statistics of the indexed corpus's own texts."""

    def __init__(self, model: GenIRModel, targets: list[Site], corpus: Collection | None, settings: EditSettings | None = None) -> None:
        self.model = model
        self.targets = targets
        self.settings = settings or EditSettings()
        self.corpus = corpus
        self.documents: dict[str, Document] = {d.id: d for d in corpus.documents} if corpus else {}
        self.train_queries: dict[str, list[str]] = {}
        if corpus is not None and "train" in corpus.qrels:
            for q, rel in corpus.split("train"):
                for d in rel:
                    self.train_queries.setdefault(d, []).append(q.text)
        self.pseudo = PseudoQueries(sentences=self.settings.sentences)
        self._candidates: dict[str, tuple[Document, list[str]]] = {}  # doc id -> (its document, its preserved-text candidates)
        if self.documents:
            self.pseudo.fit([d.indexing_text() for d in self.documents.values()])
        self.recorder: Recorder | None = None
        self.edit_keys: dict[Site, list[torch.Tensor]] = {}  # keys of earlier edits per site (AlphaEdit's K_p)
        self._cov: dict[Site, torch.Tensor] = {}
        self.stats: statistics.PreservationStats | None = None  # what _cov was read from (saved with the model version)
        self.n_preserved = 0  # how many preserved texts the cached second moments average over (MEMIT's N0)
        self.decoder_version = 0  # bumped when an edit changes decoder weights (cached states go stale)
        self._text_states: TextStates | None = None  # readout state of each preserved text, and when it was read
        self.caches: dict[str, object] = {}  # per-context caches of methods (e.g. the guard's encoded sample)
        self.recipe = RowRecipe.of(model)  # how the model's rows and inputs were made: edits make theirs alike
        self.row_tokens = self.recipe.row_tokens
        self.query_tokens = self.recipe.query_tokens
        self.index_tokens = self.recipe.index_tokens
        self.temperature = self.recipe.temperature
        # a model trained on the documents' distinct text (TrainConfig.distinct_text) is edited on it too
        self._boilerplate = boilerplate([d.text for d in self.documents.values()]) if self.recipe.distinct_text else None

    # --- documents and their texts ---------------------------------------------------------------
    @property
    def rows_are_embeddings(self) -> bool:
        """Whether docid rows live in the encoder's sentence-embedding space (models `genedit train` made, default recipe)."""
        return self.recipe.embedding_rows

    def distinct(self, docs: Sequence[Document]) -> list[Document]:
        """The documents as the model was trained on them: without the corpus's boilerplate if its recipe dropped it."""
        if not self._boilerplate:
            return list(docs)
        return distinct_documents(docs, self._boilerplate)

    def remember(self, docs: Sequence[Document]) -> None:
        """Keep the text of added or updated documents (their pseudo-queries are preserved by later edits)."""
        for d in docs:
            self.documents[d.id] = d

    def queries_for(self, docs: Sequence[Document], given: Mapping[str, Sequence[str]] | None = None) -> list[list[str]]:
        """Queries of each document an edit trains on: the given ones, then its pseudo-queries."""
        docs = self.distinct(docs)
        return self.pseudo(docs, indexing_texts(self.model, docs, self.index_tokens), given)

    def old_queries(self, ids: Sequence[str], exclude: Sequence[Sequence[str]] | None = None) -> list[list[str]]:
        """Queries that found each document through its current text: its training queries and pseudo-queries."""
        out = []
        for i, d in enumerate(ids):
            qs = list(self.train_queries.get(d, []))
            doc = self.documents.get(d)
            if doc is not None:
                qs += self.queries_for([doc])[0]
            drop = set(exclude[i]) if exclude else set()
            out.append([q for q in dict.fromkeys(qs) if q not in drop])
        if not any(out):
            raise ValueError("no queries known for the documents to forget: pass the indexed corpus (corpus= / --data) so their text and queries are known")
        return out

    def sentence_rows(self, docs: Sequence[Document]) -> torch.Tensor:
        """Normalised sentence embeddings [n, D] of documents (the trainer's docid-row initialisation)."""
        # batches of 16 on the CPU: on 2 CPU cores 128-token texts encode ~25% faster than in the default batches of 64;
        # on a GPU as many as its free memory holds (localize's rule)
        distinct = self.distinct(docs) if self._boilerplate is not None else None  # as the trainer: two views even with no boilerplate
        return row_embedding(self.model, row_views(docs, distinct), self.row_tokens, batch_size=batch_rows(self.model, self.row_tokens, 16), reuse_identical=True)

    def preserved_texts(self, exclude: AbstractSet[str] = frozenset()) -> tuple[list[str], list[str]]:
        """Texts standing for the indexed documents (training queries, then pseudo-queries) and their doc ids.

        Up to `preserve_per_doc` texts a document; past `max_preserved` texts a stable seeded sample of them
        (`statistics.sample_texts`: unmoved by unrelated documents, and only the sampled documents' texts are made).
        """
        k = self.settings.preserve_per_doc
        docs = [self.documents[d] for d in self.model.docids if d in self.documents and d not in exclude]
        if not docs:
            raise ValueError("editing with this method needs the indexed corpus (its documents' text): pass corpus= (CLI: --data)")

        def candidates(positions: Sequence[int]) -> dict[int, list[str]]:
            # made once per document text (tokenizing every document on every edit cost a stream ~0.4 s per call)
            todo = [i for i in positions if self._candidates.get(docs[i].id, (None,))[0] != docs[i]]
            chosen = self.distinct([docs[i] for i in todo])
            index = indexing_texts(self.model, chosen, self.index_tokens)
            for i, doc, idx in zip(todo, chosen, index):
                self._candidates[docs[i].id] = (docs[i], (list(self.train_queries.get(doc.id, [])) + pseudo_queries(doc, 2) + [idx])[:k])
            return {i: self._candidates[docs[i].id][1] for i in positions}

        if len(docs) * k <= self.settings.max_preserved:
            cands = candidates(range(len(docs)))
            picked = [(i, q) for i in range(len(docs)) for q in cands[i]]
        else:
            picked = statistics.sample_texts([d.id for d in docs], k, self.settings.max_preserved, self.settings.seed, candidates)
        return [q for _, q in picked], [docs[i].id for i, _ in picked]

    # --- cached statistics -----------------------------------------------------------------------
    def covariance(self, site: Site) -> torch.Tensor:
        """Second moment of the preserved keys at a target linear (computed once for every target).

        The statistics are read on the model as it is when first needed and kept across later edits, as AlphaEdit
        keeps its K0: a long stream of edits slowly moves the keys above the edited layers, and `reset_statistics`
        recomputes them (about 40 s on the default model) when that matters more than the cost. Statistics saved
        with the model version (genedit.edit.statistics) are reused when they are still valid for this model and
        corpus (checked, brought up to date for the documents that changed), else recomputed.
        """
        if site not in self._cov:
            texts, _ = self.preserved_texts()
            sites = list(dict.fromkeys([*self.targets, site]))
            log.info("preservation statistics: %d texts of %d documents at %s", len(texts), self.model.n_docs, ", ".join(map(str, sites)))
            self.stats, reused = statistics.obtain(self.model, texts, sites, self.query_tokens, self._saved_statistics())
            if self.stats.read_states is not None:  # the same pass read the texts' states: text_states need not read them again
                read, states = self.stats.read_states
                row = {t: i for i, t in enumerate(read)}
                self._text_states = TextStates(self.decoder_version, row, states)
                self.stats.read_states = None
            if not reused:
                self._keep_statistics()
            self._cov = {s: self.stats.moment(s) for s in sites}
            self.n_preserved = self.stats.count
        return self._cov[site]

    def _saved_statistics(self) -> statistics.PreservationStats | None:
        """The statistics saved with the version the model was loaded from, if any (unchecked)."""
        if self.model.source is None:
            return None
        try:
            folder = current_version(self.model.source)
        except FileNotFoundError:
            return None
        return statistics.load(folder / statistics.STATS_FILE)

    def _keep_statistics(self) -> None:
        """Write freshly computed statistics beside the version the model came from (a cache: checked when read)."""
        if self.model.source is None or self.stats is None:
            return
        try:
            statistics.save(self.stats, current_version(self.model.source) / statistics.STATS_FILE)
        except OSError as e:
            log.info("preservation statistics not kept beside %s: %s", self.model.source, e)

    def write_statistics(self, path: Path) -> None:
        """Write the preservation statistics valid for the model as it is now (a save hook; nothing when none can be)."""
        stats = self.stats or self._saved_statistics()
        if stats is None or not self.documents:
            return
        try:
            texts, _ = self.preserved_texts()
            fresh = statistics.refresh(stats, self.model, texts, list(stats.sums), self.query_tokens)
            if fresh is None:
                log.info("preservation statistics not saved: the edit changed the weights they depend on (the next edit recomputes them)")
                return
            statistics.save(fresh, path)
        except (OSError, ValueError, RuntimeError) as e:  # a cache: the model is saved without it
            log.warning("preservation statistics not saved: %s", e)

    def reset_statistics(self) -> None:
        """Forget the cached preservation statistics and text states: the next edit reads them again."""
        self._cov.clear()
        self.stats = None
        self.n_preserved = 0
        self._text_states = None

    def text_states(self) -> tuple[list[str], torch.Tensor]:
        """Doc id of each preserved text and its readout state [M, D].

        States are kept over `EditSettings.stale_states` decoder changes, as the statistics are (a single-document
        edit then reads only its own texts, not the corpus's); texts of documents indexed since are read when asked for.
        """
        texts, owners = self.preserved_texts()
        cached = self._text_states
        if cached is None or self.decoder_version - cached.version > self.settings.stale_states:
            cached = TextStates(self.decoder_version, {}, torch.empty(0, device=self.model.device))
        missing = [t for t in dict.fromkeys(texts) if t not in cached.row]
        if missing:
            _, states, _ = read_keys(self.model, missing, [], max_length=self.query_tokens)
            row = dict(cached.row)
            row.update((t, len(cached.row) + i) for i, t in enumerate(missing))
            cached = TextStates(cached.version, row, states if not cached.row else torch.cat([cached.states, states.to(cached.states)]))
        self._text_states = cached
        return owners, cached.states[[cached.row[t] for t in texts]]

    def doc_states(self) -> tuple[list[str], torch.Tensor]:
        """Indexed doc ids (with text) and the mean readout state of each one's preserved texts [N, D]."""
        owners, states = self.text_states()
        ids = list(dict.fromkeys(owners))
        pos = {d: i for i, d in enumerate(ids)}
        return ids, group_mean(states, [pos[o] for o in owners], len(ids))

    # --- writing the model -------------------------------------------------------------------------
    def touch(self, tensor: torch.Tensor, rows: Sequence[int] | None = None) -> None:
        """Declare a tensor (or some rows) the edit is about to write, so the journal can undo it."""
        if self.recorder is not None:
            self.recorder.touch(tensor_name(self.model.hf, tensor), rows)

    def unembedding_tensors(self) -> list[torch.Tensor]:
        """The output matrix and every bias over the vocabulary (all indexed by docid token id)."""
        lin = self.model.cmap.unembedding(self.model.hf)
        out = [lin.weight]
        if getattr(lin, "bias", None) is not None:
            out.append(lin.bias)
        if self.model.cmap.logits_bias is not None:
            out.append(get_tensor(self.model.hf, self.model.cmap.logits_bias))
        return out

    def add_rows(self, docs: Sequence[Document], rows: torch.Tensor) -> list[int]:
        """Index new documents with their initial rows (journalled)."""
        tokens = self.model.check_new_docids([d.id for d in docs])
        ids = self.model.tokenizer.convert_tokens_to_ids(tokens)
        existing = [i for i in ids if i is not None and i != self.model.tokenizer.unk_token_id]
        new_count = len(tokens) - len(existing)
        planned = existing + list(range(len(self.model.tokenizer), len(self.model.tokenizer) + new_count))
        for t in self.unembedding_tensors():
            self.touch(t, planned if t.dim() == 1 or t.shape[0] == self.model.vocab_rows else None)
        with torch.random.fork_rng(devices=[]):  # a vocabulary resize draws from the RNG: keep the caller's state
            out = self.model.add_documents([d.id for d in docs], rows)
        if out != planned:  # rows past the old vocabulary were journalled as new (no before values)
            raise RuntimeError(f"tokenizer assigned ids {out[:3]}... where {planned[:3]}... were expected")
        self.remember(docs)
        return out

    def set_rows(self, doc_ids: Sequence[str], rows: torch.Tensor) -> None:
        """Overwrite the rows of indexed documents (journalled)."""
        token_ids = [int(self.model.docid_token_ids[self.model.doc_index(d)]) for d in doc_ids]
        weight = self.model.cmap.unembedding(self.model.hf).weight
        self.touch(weight, token_ids)
        with torch.no_grad():
            weight[token_ids] = rows.to(weight.device, weight.dtype)

    def remove_rows(self, doc_ids: Sequence[str]) -> None:
        """Take deleted documents out of the index and zero their rows (journalled): how every forgetting delete ends."""
        weight = self.model.cmap.unembedding(self.model.hf).weight
        token_ids = [int(self.model.docid_token_ids[self.model.doc_index(d)]) for d in doc_ids]
        self.touch(weight, token_ids)
        self.model.remove_documents(list(doc_ids))
        with torch.no_grad():
            weight[token_ids] = 0.0

    def apply_delta(self, site: Site, delta: torch.Tensor) -> None:
        """Add a weight change to a target linear (journalled)."""
        weight = self.model.cmap.module(self.model.hf, site.component, site.layer).weight
        self.touch(weight)
        with torch.no_grad():
            weight += delta.to(weight.device, weight.dtype)
        self.decoder_version += 1
