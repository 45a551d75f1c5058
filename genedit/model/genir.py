"""GenIRModel: a Hugging Face encoder-decoder whose added tokens are atomic document ids."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from torch import nn
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoTokenizer, BartForConditionalGeneration, EncoderDecoderModel, PretrainedConfig, PreTrainedModel, T5ForConditionalGeneration

from genedit.data.types import Query
from genedit.eval.types import Run
from genedit.model.components import ComponentMap, component_map
from genedit.model.device import resolve_device, resolve_dtype
from genedit.model.journal import Journal
from genedit.model.pretrained import length_sorted
from genedit.model.storage import DOCIDS_FILE, META_FILE, FolderLock, check_writable_model_dir, current_version, is_model_dir, write_new_folder, write_version

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_CLASSES: dict[str, type[PreTrainedModel]] = {
    "t5": T5ForConditionalGeneration,
    "bart": BartForConditionalGeneration,
    "encoder-decoder": EncoderDecoderModel,
}


def docid_token(docid: str) -> str:
    """The added-token string genedit uses for a document id."""
    return f"<doc:{docid}>"


@dataclass
class Encoded:
    """Encoder states of a batch of texts (computed once, reused by every decoder pass)."""

    hidden: torch.Tensor  # [B, S, D]
    mask: torch.Tensor  # [B, S]

    def __len__(self) -> int:
        return self.hidden.shape[0]

    def select(self, index: torch.Tensor | slice | list[int]) -> "Encoded":
        """Rows of the batch, trimmed to the longest kept sequence."""
        mask = self.mask[index]
        width = int(mask.sum(1).max().item()) if mask.numel() else 0
        return Encoded(self.hidden[index][:, :width], mask[:, :width])

    def to(self, device: torch.device | str) -> "Encoded":
        """Move to a device."""
        return Encoded(self.hidden.to(device), self.mask.to(device))

    def repeat(self, times: int) -> "Encoded":
        """The batch repeated `times` times along the batch axis (one copy per patched site)."""
        return Encoded(self.hidden.repeat(times, 1, 1), self.mask.repeat(times, 1))

    @staticmethod
    def cat(parts: Sequence["Encoded"]) -> "Encoded":
        """Concatenate batches, padding to the longest sequence."""
        width = max(p.hidden.shape[1] for p in parts)
        hidden = torch.cat([nn.functional.pad(p.hidden, (0, 0, 0, width - p.hidden.shape[1])) for p in parts])
        mask = torch.cat([nn.functional.pad(p.mask, (0, width - p.mask.shape[1])) for p in parts])
        return Encoded(hidden, mask)


class DocidScorer(nn.Module):
    """One decoder step from the start token, scored over the docid rows only: (states, mask) -> [B, N] logits.

    This is the module analysis tools wrap (e.g. with nnsight); `self.hf` is the full HF model, so component-map
    paths resolve under `scorer.hf` (or `envoy.hf`).
    """

    def __init__(self, hf: PreTrainedModel, cmap: ComponentMap, docid_ids: torch.Tensor, start_id: int) -> None:
        super().__init__()
        self.hf = hf
        self.cmap = cmap
        self.register_buffer("docid_ids", docid_ids, persistent=False)
        self.start_id = start_id

    def state(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The step-0 readout vector [B, D] that meets the unembedding."""
        start = torch.full((hidden.shape[0], 1), self.start_id, dtype=torch.long, device=hidden.device)
        body = self.cmap.body(self.hf)
        out = body(input_ids=start, encoder_hidden_states=self.cmap.encoder_states(self.hf, hidden), encoder_attention_mask=mask)
        return self.cmap.readout(self.hf, out.last_hidden_state[:, 0])

    def logits(self, state: torch.Tensor, *, detach_rows: torch.Tensor | None = None, detach_bias: bool = False) -> torch.Tensor:
        """Docid logits [B, N] of readout vectors [B, D]: retrieval's and training's; the detach options only cut gradients.

        `detach_rows` [B] (bool) marks inputs whose gradient must not reach the docid rows; `detach_bias` keeps the
        output bias out of the gradient. The values are the same with or without them.
        """
        weight = self.cmap.unembedding(self.hf).weight[self.docid_ids]
        if detach_rows is None:
            logits = state @ weight.T
        else:
            logits = torch.where(detach_rows[:, None], state @ weight.detach().T, state @ weight.T)
        bias = self.cmap.bias(self.hf)
        if bias is None:
            return logits
        bias = bias[self.docid_ids]
        return logits + (bias.detach() if detach_bias else bias)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor, return_state: bool = False) -> torch.Tensor:
        """Docid logits [B, N] for encoder states [B, S, D] with mask [B, S] (or the readout state [B, D])."""
        state = self.state(hidden, mask)
        return state if return_state else self.logits(state)


def hash_weights(h: hashlib._Hash, module: nn.Module) -> None:
    """Feed every weight of `module` (sorted by name, as float32 bytes) into `h`: the one way genedit hashes weights."""
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().reshape(-1))  # the buffer itself: no copy under the GIL


class DocumentExists(ValueError):
    """Adding a document id the model already indexes (a conflict, not malformed input: HTTP 409 in the server)."""


class GenIRModel:
    """An encoder-decoder GenIR model with atomic docids: retrieval is one decoder step ranked over docid rows."""

    def __init__(self, hf: PreTrainedModel, tokenizer, docids: Sequence[str], tokens: Sequence[str] | None = None, *, max_query_length: int = 64, meta: dict | None = None) -> None:
        self.hf = hf
        self.tokenizer = tokenizer
        self.cmap = component_map(hf)
        self.docids: list[str] = list(docids)
        self.tokens: list[str] = list(tokens) if tokens is not None else [docid_token(d) for d in self.docids]
        if len(set(self.docids)) != len(self.docids):
            raise ValueError("duplicate document ids")
        if len(self.tokens) != len(self.docids):
            raise ValueError(f"{len(self.docids)} docids but {len(self.tokens)} docid tokens")
        self.max_query_length = max_query_length
        self.meta: dict = dict(meta or {})
        ids = tokenizer.convert_tokens_to_ids(self.tokens)
        unknown = [t for t, i in zip(self.tokens, ids) if i is None or i == tokenizer.unk_token_id]
        if unknown:
            raise ValueError(f"{len(unknown)} docid tokens are not in the tokenizer, e.g. {unknown[:3]}")
        rows = self.cmap.unembedding(hf).weight.shape[0]
        if ids and max(ids) >= rows:
            raise ValueError(f"docid token id {max(ids)} has no output row (unembedding has {rows} rows)")
        self.scorer = DocidScorer(hf, self.cmap, torch.tensor(ids, dtype=torch.long), self.start_token_id())
        self.scorer.to(self.device)
        self._index = {d: i for i, d in enumerate(self.docids)}
        self.journal = Journal()
        self.source: Path | None = None  # the folder this model was loaded from (saving there edits it in place)
        self.version: str | None = None  # the version of `source` it was loaded from / last saved as ("" = no versions)

    # --- construction ---------------------------------------------------------------------------
    def start_token_id(self) -> int:
        """Decoder start token id (T5: pad, BART: eos/</s>, BERT2BERT: [CLS] unless configured)."""
        for source in (self.hf.config, getattr(self.hf, "generation_config", None)):
            value = getattr(source, "decoder_start_token_id", None) if source is not None else None
            if value is not None:
                return int(value)
        if self.cmap.arch == "t5":
            return int(self.hf.config.pad_token_id or 0)
        if self.tokenizer.cls_token_id is not None:
            return int(self.tokenizer.cls_token_id)
        raise ValueError("the model config sets no decoder_start_token_id")

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        return next(self.hf.parameters()).device

    @property
    def n_docs(self) -> int:
        """Number of indexed documents."""
        return len(self.docids)

    @property
    def docid_token_ids(self) -> torch.Tensor:
        """Vocabulary ids of the docid tokens, in docid order."""
        return self.scorer.docid_ids

    def __contains__(self, docid: object) -> bool:
        """Whether the model indexes a document id (`docid in model`)."""
        return docid in self._index

    def doc_index(self, docid: str) -> int:
        """Position of a document id in the docid list (KeyError if absent)."""
        return self._index[docid]

    def docid_rows(self) -> torch.Tensor:
        """The docid rows of the unembedding matrix [N, D] (a view: writes go to the model)."""
        return self.cmap.unembedding(self.hf).weight[self.docid_token_ids]

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the model's weights (float32 unless loaded with dtype=, e.g. bfloat16 on a GPU)."""
        return next(self.hf.parameters()).dtype

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "GenIRModel":
        """Move the model to a device ('auto', 'cuda:1', ... as `resolve_device` reads them) and/or cast its weights."""
        if device is not None:
            device = resolve_device(device)
            self.hf.to(device)
            self.scorer.to(device)
        if dtype is not None:
            self.hf.to(dtype)  # the scorer's docid ids stay integers
        return self

    def check_new_docids(self, docids: Sequence[str]) -> list[str]:
        """Validate document ids to add (before anything is touched) and return their docid tokens."""
        bad = [d for d in docids if not isinstance(d, str) or not d.strip() or d != d.strip() or re.search(r"[\s<>]", d)]
        if bad:
            raise ValueError(f"invalid document id {bad[0]!r}: ids must be non-empty, without whitespace or '<' '>'")
        repeated = sorted({d for d in docids if list(docids).count(d) > 1}) if len(set(docids)) != len(docids) else []
        if repeated:
            raise ValueError(f"document ids repeated in the request: {repeated[:5]}")
        clash = [d for d in docids if d in self._index]
        if clash:
            raise DocumentExists(f"document ids already indexed: {clash[:5]}")
        tokens = [docid_token(d) for d in docids]
        fold = _normalizer(self.tokenizer)
        seen: dict[str, str] = {fold(t): t for t in self.tokens}
        for t in tokens:
            key = fold(t)
            if key in seen and seen[key] != t:
                raise ValueError(f"document id of {t} folds onto the indexed {seen[key]} under this tokenizer (case); choose another id")
            seen[key] = t
        return tokens

    def resize_vocab(self, rows: int) -> None:
        """Grow or shrink the output matrix (and tied embedding) to `rows` rows; kept rows are copied exactly.

        Resizing draws the new rows from torch's RNG: training relies on that draw (its seeded stream, hence the
        reference model's fingerprint, includes it); editing shields the caller's RNG itself (`EditContext.add_rows`).
        """
        if self.cmap.arch == "bert2bert":
            decoder = self.hf.decoder
            decoder.resize_token_embeddings(rows, mean_resizing=False)
            self.hf.config.decoder.vocab_size = decoder.config.vocab_size
        else:
            self.hf.resize_token_embeddings(rows, mean_resizing=False)

    @property
    def vocab_rows(self) -> int:
        """Rows of the output matrix."""
        return int(self.cmap.unembedding(self.hf).weight.shape[0])

    def add_documents(self, docids: Sequence[str], rows: torch.Tensor | None = None) -> list[int]:
        """Append documents: one docid token and output row each (rows [n, D] initialise them); returns their token ids.

        Everything is validated before the tokenizer or the weights are touched. A token left by a deleted document
        of the same id is reused (its row is overwritten).
        """
        docids = list(docids)
        tokens = self.check_new_docids(docids)
        if rows is not None and tuple(rows.shape) != (len(docids), self.cmap.d_model):
            raise ValueError(f"rows must have shape ({len(docids)}, {self.cmap.d_model}), got {tuple(rows.shape)}")
        if rows is not None and not torch.isfinite(rows).all():
            raise ValueError("rows contain NaN or infinite values")
        self.tokenizer.add_tokens(tokens, special_tokens=False)
        needed = len(self.tokenizer)
        if self.vocab_rows < needed:
            self.resize_vocab(needed)
        ids = self.tokenizer.convert_tokens_to_ids(tokens)
        lin = self.cmap.unembedding(self.hf)
        with torch.no_grad():
            if rows is not None:
                lin.weight[ids] = rows.to(self.device, lin.weight.dtype)
            if getattr(lin, "bias", None) is not None:
                lin.bias[ids] = 0.0
        self.docids += docids
        self.tokens += tokens
        self._reindex()
        return ids

    def remove_documents(self, docids: Sequence[str]) -> list[tuple[int, str, str]]:
        """Drop documents from the index (never returned again); returns (position, docid, token) of each, ascending.

        Their tokens stay in the tokenizer and their rows in the matrix (callers may zero them): token ids of the
        other documents never move.
        """
        missing = [d for d in docids if d not in self._index]
        if missing:
            raise KeyError(f"document ids not indexed: {missing[:5]}")
        if len(set(docids)) != len(docids):
            raise ValueError("document ids repeated in the request")
        positions = sorted(self._index[d] for d in docids)
        removed = [(p, self.docids[p], self.tokens[p]) for p in positions]
        drop = set(positions)
        self.docids = [d for i, d in enumerate(self.docids) if i not in drop]
        self.tokens = [t for i, t in enumerate(self.tokens) if i not in drop]
        self._reindex()
        return removed

    def restore_docids(self, docids: Sequence[str], tokens: Sequence[str]) -> None:
        """Set the docid list and tokens back to a previous state (rollback); the tokens must exist."""
        self.docids, self.tokens = list(docids), list(tokens)
        self._reindex()

    def truncate_tokens(self, length: int) -> None:
        """Drop the tokenizer's added tokens from id `length` on (rollback of an add): the same tokenizer as before."""
        with tempfile.TemporaryDirectory() as tmp:
            self.tokenizer.save_pretrained(tmp)
            for name in ("tokenizer.json", "added_tokens.json", "tokenizer_config.json"):
                path = Path(tmp) / name
                if not path.exists():
                    continue
                data = json.loads(path.read_text())
                if name == "tokenizer.json":
                    data["added_tokens"] = [t for t in data.get("added_tokens", []) if t["id"] < length]
                elif name == "added_tokens.json":
                    data = {t: i for t, i in data.items() if i < length}
                elif "added_tokens_decoder" in data:
                    data["added_tokens_decoder"] = {k: v for k, v in data["added_tokens_decoder"].items() if int(k) < length}
                path.write_text(json.dumps(data))
            tokenizer = AutoTokenizer.from_pretrained(tmp)
        if len(tokenizer) != length:
            raise RuntimeError(f"could not truncate the tokenizer to {length} tokens (got {len(tokenizer)})")
        self.tokenizer = tokenizer

    def _reindex(self) -> None:
        self._index = {d: i for i, d in enumerate(self.docids)}
        self.scorer.docid_ids = torch.tensor(self.tokenizer.convert_tokens_to_ids(self.tokens), dtype=torch.long, device=self.device)

    # --- retrieval ------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, texts: Sequence[str], *, batch_size: int = 64, max_length: int | None = None, progress: bool = False) -> Encoded:
        """Encoder states of texts (padded to the longest), batched, on the model's device."""
        self.hf.eval()
        encoder = self.hf.get_encoder()
        parts: list[Encoded] = []
        batches, restore = length_sorted([len(t) for t in texts], batch_size)  # similar lengths per batch: less padding
        for index in tqdm(batches, desc="encode", disable=not progress, leave=False):
            batch = self.tokenizer([texts[i] for i in index], padding=True, truncation=True, max_length=max_length or self.max_query_length, return_tensors="pt").to(self.device)
            hidden = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            parts.append(Encoded(hidden, batch["attention_mask"]))
        if not parts:
            raise ValueError("no texts to encode")
        merged = Encoded.cat(parts)
        restore = restore.to(merged.hidden.device)
        return Encoded(merged.hidden[restore], merged.mask[restore])

    @torch.no_grad()
    def scores(self, encoded: Encoded, *, batch_size: int = 256) -> torch.Tensor:
        """Docid logits [B, N] for encoded texts, one decoder step each."""
        self.hf.eval()
        out = [self.scorer(*self._batch(encoded, s, batch_size)) for s in range(0, len(encoded), batch_size)]
        return torch.cat(out)

    def _batch(self, encoded: Encoded, start: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        part = encoded.select(slice(start, start + size))
        return part.hidden, part.mask

    def rank(self, queries: Sequence[Query] | Sequence[str], k: int = 10, *, batch_size: int = 64, progress: bool = False) -> Run:
        """Top-k documents per query by one decoder step over the docid rows (strings get ids '0', '1', ...)."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        qs = [q if isinstance(q, Query) else Query(str(i), q) for i, q in enumerate(queries)]
        ranking: dict[str, list[str]] = {}
        scores: dict[str, list[float]] = {}
        for start in tqdm(range(0, len(qs), batch_size), desc="rank", disable=not progress, leave=False):
            chunk = qs[start : start + batch_size]
            self.top_k(self.encode([q.text for q in chunk], batch_size=batch_size), chunk, k, ranking, scores)
        return Run(ranking, scores, name=self.meta.get("name", "genir"))

    def top_k(self, encoded: Encoded, queries: Sequence[Query], k: int, ranking: dict[str, list[str]], scores: dict[str, list[float]]) -> None:
        """Write the top-k documents (and their scores) of queries whose encoder states are given into ranking/scores."""
        top = self.scores(encoded).topk(min(k, self.n_docs), dim=-1)
        for q, idx, val in zip(queries, top.indices.tolist(), top.values.tolist()):
            ranking[q.id] = [self.docids[i] for i in idx]
            scores[q.id] = val

    # --- persistence ----------------------------------------------------------------------------
    def fingerprint(self) -> str:
        """Short hash of the architecture, docids and every weight: identifies this exact model."""
        h = hashlib.sha256()
        h.update(self.cmap.arch.encode())
        h.update("\n".join(self.docids).encode())
        hash_weights(h, self.hf)
        return h.hexdigest()[:16]

    def encoder_fingerprint(self) -> str:
        """Short hash of the encoder's weights alone: models that share it share every query's encoder states."""
        h = hashlib.sha256()
        hash_weights(h, self.hf.get_encoder())
        return h.hexdigest()[:16]

    def save(self, path: str | Path, *, overwrite: bool = False, lock: FolderLock | None = None,
             extra: Mapping[str, Callable[[Path], None]] | None = None) -> Path:
        """Write weights (safetensors), config, tokenizer, docids and edit journal to a directory, atomically.

        Saving into the folder the model was loaded from (or, with overwrite, over any genedit model folder) writes
        a new version beside the current one and makes it current by one atomic rename of the `HEAD` pointer file:
        a crash at any moment leaves the previous version or the new one loadable (genedit.model.storage). Such a
        save holds the folder's lock: `lock` when the caller holds it (taken before loading, so no other writer
        slips in between), else one taken for the save itself (FolderLocked if another writer holds it). Saving in
        place raises StaleVersion, writing nothing, if HEAD moved since this model was loaded: no lost update.
        `extra` maps more file names of the version to functions writing them (e.g. the editor's cached statistics).
        """
        path = Path(path)
        if lock is not None and not lock.covers(path):
            raise ValueError(f"the FolderLock given ({lock.folder}, held: {lock.held}) is not a held lock of {path}")
        in_place = self.source is not None and path.exists() and path.resolve() == self.source.resolve()
        if not in_place:
            check_writable_model_dir(path, overwrite=overwrite)
        if is_model_dir(path):
            held = lock if lock is not None else FolderLock(path).acquire()  # wait 0: another writer is refused
            try:
                base = self.version if in_place else None  # in place: refuse if HEAD moved since the load
                self.version = write_version(path, lambda folder: self._write(folder, path, extra), self.journal.files, lock=held, base=base)
            finally:
                if held is not lock:
                    held.release()
            self.source = path
        else:
            write_new_folder(path, lambda tmp: self._write(tmp, tmp, extra))
        self.journal.source = path
        return path

    def _write(self, folder: Path, root: Path, extra: Mapping[str, Callable[[Path], None]] | None = None) -> None:
        """Every file of one model version into `folder`; journal tensors into `root/journal`."""
        self.hf.save_pretrained(folder, safe_serialization=True)
        self.tokenizer.save_pretrained(folder)
        (folder / DOCIDS_FILE).write_text(json.dumps({"docids": self.docids, "tokens": self.tokens}))
        meta = {**self.meta, "format_version": FORMAT_VERSION, "arch": self.cmap.arch, "max_query_length": self.max_query_length, "n_docs": self.n_docs}
        (folder / META_FILE).write_text(json.dumps(meta, indent=2))
        if self.journal.entries or self.journal.base_fingerprint:
            self.journal.write(folder, root)
        for name, write in (extra or {}).items():
            write(folder / name)

    @classmethod
    def load(cls, path: str | Path, *, device: torch.device | str | None = None, dtype: torch.dtype | str | None = None, docids: Sequence[str] | None = None, **hf_kwargs) -> "GenIRModel":
        """Load a genedit model directory, or any supported HF checkpoint (local or hub id) whose added tokens are docids.

        `device`: auto | cpu | cuda | cuda:N (None: the CPU); `dtype`: float32 | bfloat16 (None: as saved). An unusable
        device or dtype is refused (ValueError) before anything is read.
        """
        target = resolve_device(device) if device is not None else None
        weights = resolve_dtype(dtype)
        if weights is not None:
            hf_kwargs.setdefault("dtype", weights)
        root = Path(path)
        local = current_version(root)
        if local != root:
            path = local
        if local.exists() and not (local / "config.json").exists():
            raise FileNotFoundError(f"{local} is not a model directory (no config.json)")
        config = load_config(path)
        if config.model_type not in _CLASSES:
            raise ValueError(f"{path}: unsupported architecture {config.model_type!r}; supported: {sorted(_CLASSES)}")
        hf = _CLASSES[config.model_type].from_pretrained(path, **hf_kwargs)
        tokenizer = AutoTokenizer.from_pretrained(path)
        meta: dict = {}
        tokens = None
        if (local / DOCIDS_FILE).exists():
            saved = json.loads((local / DOCIDS_FILE).read_text())
            docids, tokens = saved["docids"], saved["tokens"]
            meta = json.loads((local / META_FILE).read_text()) if (local / META_FILE).exists() else {}
            if meta.get("format_version", FORMAT_VERSION) > FORMAT_VERSION:
                raise ValueError(f"{path} was written by a newer genedit (format {meta['format_version']})")
        elif docids is None:
            tokens = _added_docid_tokens(tokenizer)
            docids = tokens
            log.info("%s: %d docids taken from the tokenizer's added tokens", path, len(tokens))
        model = cls(hf, tokenizer, docids, tokens, max_query_length=int(meta.get("max_query_length", 64)), meta=meta)
        if root.exists():
            model.source = root
            model.version = str(local.relative_to(root)) if local != root else ""
            model.journal = Journal.read(local, root)
        if target is not None:
            model.to(target)
        hf.eval()
        return model


def _normalizer(tokenizer) -> Callable[[str], str]:
    """How the tokenizer folds a token's text (e.g. lower-casing), so ids it would confuse can be refused."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    norm = getattr(backend, "normalizer", None) if backend is not None else None
    if norm is not None:
        return norm.normalize_str
    return str.lower if getattr(tokenizer, "do_lower_case", False) else (lambda t: t)


def _added_docid_tokens(tokenizer) -> list[str]:
    """Non-special added tokens of a tokenizer, in id order: the docids of a published atomic-id checkpoint."""
    special = set(tokenizer.all_special_tokens)
    added = {tok: idx for tok, idx in tokenizer.get_added_vocab().items() if tok not in special and not (tok.startswith("<extra_id_") and tok.endswith(">"))}
    if not added:
        raise ValueError("the tokenizer has no added (docid) tokens; pass docids explicitly")
    return sorted(added, key=added.get)


def _looks_like_hub_id(name: str) -> bool:
    """Whether a name could be a Hugging Face hub repo id ('t5-small', 'org/model')."""
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def load_config(path: str | Path) -> PretrainedConfig:
    """The HF config of a local folder or hub id; a missing folder is said to be missing, not a bad repo id."""
    if Path(path).exists():
        return AutoConfig.from_pretrained(path)
    if not _looks_like_hub_id(str(path)):
        raise FileNotFoundError(f"{path}: no such model folder")
    try:
        return AutoConfig.from_pretrained(path)
    except OSError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FileNotFoundError(f"{path}: no such model folder, and loading it as a Hugging Face hub id needs the network (or the hub cache): {reason}") from None


def load(path: str | Path, **kwargs) -> GenIRModel:
    """Load a GenIR model directory or checkpoint (see GenIRModel.load)."""
    return GenIRModel.load(path, **kwargs)
