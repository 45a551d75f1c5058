"""Preservation statistics kept with a model version, so the next process reads them instead of recomputing them.

What the statistics are: for each target linear (a `Site`), the sum of k k^T over the keys k (the linear's input at
decoder step 0) of the preserved texts (the indexed documents' training queries and pseudo-queries), and how many
texts were summed. `EditContext.covariance` is that sum over the count.

What they depend on, and how a saved file is checked before it is used (never trusted blindly):
- the keys of one site are computed by every weight that runs before that linear's input: the encoder, the decoder
  layers below it and the parts of its own layer before it. The file records, per site, a hash of every weight of
  the model EXCEPT that linear's own weight and bias and the docid rows (the rows of vocabulary-sized tensors past
  the tokenizer's base vocabulary: docid tokens are never an input at step 0). An edit of the target linear itself
  or of docid rows (rank-one, row, row-solve, mask on the default targets) keeps the file valid; an edit of any other
  weight (finetune, lora elsewhere, another target below) changes the hash, and the statistics are recomputed.
  Hashing weights above the site as well is conservative: it can only cause a recomputation, never a wrong reuse;
- the preserved texts: the file records them (a multiset); an add, delete or update changes the set, and the saved
  sums are brought up to date exactly by adding the keys of the new texts and subtracting those of the texts that
  left (only those are read: a few documents' texts instead of the whole corpus's), as long as the weights hash
  matches and the change is small; otherwise they are recomputed;
- the truncation of the texts (`query_tokens`) and the model's architecture, recorded in the hash.

The file lives in the model version's folder (`preservation.safetensors`, written by `GenIRModel.save` through its
`version_files` hook). A missing, unreadable or mismatching file is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from genedit.edit.activations import read_keys
from genedit.fileio import atomic_path
from genedit.model.components import Site
from genedit.model.genir import GenIRModel

log = logging.getLogger(__name__)

STATS_FILE = "preservation.safetensors"
FORMAT = 1
MAX_CHANGE = 0.5  # an update touching more than this fraction of the saved texts recomputes instead


@dataclass
class PreservationStats:
    """Sums of k k^T of the preserved texts' keys at each site, with what they were computed from."""

    sums: dict[Site, torch.Tensor]  # [d_in, d_in] float64 per site
    inputs: dict[Site, str]  # hash of the weights each site's keys depend on (see module doc)
    texts: Counter[str]  # the preserved texts summed (a multiset)
    query_tokens: int | None
    read_states: tuple[list[str], torch.Tensor] | None = field(default=None, repr=False)  # freshly computed: each distinct text's readout state (never saved)

    @property
    def count(self) -> int:
        """How many texts the sums are over."""
        return sum(self.texts.values())

    def moment(self, site: Site) -> torch.Tensor:
        """Second moment E[k k^T] at a site."""
        return self.sums[site] / max(self.count, 1)


def sample_texts(doc_ids: Sequence[str], per_doc: int, cap: int, seed: int,
                 candidates: Callable[[Sequence[int]], dict[int, list[str]]]) -> list[tuple[int, str]]:
    """At most `cap` preserved texts, (document position, text), sorted by position: a stable seeded sample.

    Each (document id, slot j < per_doc) has a seeded hash; the texts are taken in hash order (slot j of a document is
    its j-th candidate text; a slot past its candidates is skipped) until `cap` are held. So the sample is uniform and
    does not move when unrelated documents are added or removed: a new document's slots enter only where their hash
    falls below the cutoff, pushing as many out, and the saved statistics are brought up to date by those few texts
    (`refresh`) instead of recomputed. `candidates(positions)` gives the candidate texts of some documents: only the
    documents the sample reaches are asked for, so preparing stops growing with the corpus past the cap.
    """
    order = sorted((hashlib.blake2b(f"{seed}\t{d}\t{j}".encode(), digest_size=8).digest(), i, j) for i, d in enumerate(doc_ids) for j in range(per_doc))
    known: dict[int, list[str]] = {}
    picked: list[tuple[int, int]] = []
    start = 0
    while len(picked) < cap and start < len(order):
        window = order[start : start + cap - len(picked)]
        start += len(window)
        missing = sorted({i for _, i, _ in window if i not in known})
        if missing:
            known.update(candidates(missing))
        picked += [(i, j) for _, i, j in window if j < len(known[i])]
    return [(i, known[i][j]) for i, j in sorted(picked)]


def weight_digests(model: GenIRModel) -> dict[str, str]:
    """Hash of every weight of the model, docid rows left out (entries of vocabulary-sized axes past the base vocabulary)."""
    base = int(getattr(model.tokenizer, "vocab_size", 0) or 0)
    out: dict[str, str] = {}
    for name, tensor in sorted(model.hf.state_dict().items()):
        t = tensor.detach()
        for dim, size in enumerate(t.shape):  # the vocabulary axis (rows of embeddings, columns of BART's logits bias)
            if 0 < base < size and size == model.vocab_rows:
                t = t.narrow(dim, 0, base)
        out[name] = hashlib.sha256(t.to("cpu", torch.float32).contiguous().numpy().tobytes()).hexdigest()
    return out


def input_hashes(model: GenIRModel, sites: Sequence[Site], query_tokens: int | None, digests: dict[str, str] | None = None) -> dict[Site, str]:
    """Per site: a hash of every weight its keys may depend on (all but the site's own linear) and the settings."""
    digests = digests if digests is not None else weight_digests(model)
    out = {}
    for site in sites:
        own = model.cmap.path(site.component, site.layer)
        h = hashlib.sha256(json.dumps([FORMAT, model.cmap.arch, str(site), query_tokens]).encode())
        for name, digest in digests.items():
            if name not in (f"{own}.weight", f"{own}.bias"):
                h.update(f"{name}={digest};".encode())
        out[site] = h.hexdigest()[:32]
    return out


def _key_sums(model: GenIRModel, texts: Counter[str], sites: Sequence[Site], query_tokens: int | None) -> tuple[dict[Site, torch.Tensor], torch.Tensor]:
    """Sum of k k^T (float64) over a multiset of texts at each site, and each distinct text's readout state (read alike)."""
    items = list(texts.items())
    keys, states, _ = read_keys(model, [t for t, _ in items], list(sites), max_length=query_tokens)
    weights = torch.tensor([float(c) for _, c in items], dtype=torch.float64, device=model.device)
    out = {}
    for site, k in keys.items():
        k = k.to(torch.float64)
        out[site] = (k * weights.to(k.device)[:, None]).T @ k
    return out, states


def compute(model: GenIRModel, texts: Sequence[str], sites: Sequence[Site], query_tokens: int | None) -> PreservationStats:
    """Statistics of the preserved texts at the sites, from scratch (with the texts' readout states, read in the same pass)."""
    multiset = Counter(texts)
    sums, states = _key_sums(model, multiset, sites, query_tokens)
    return PreservationStats(sums, input_hashes(model, sites, query_tokens), multiset, query_tokens, read_states=(list(multiset), states))


def refresh(stats: PreservationStats, model: GenIRModel, texts: Sequence[str], sites: Sequence[Site], query_tokens: int | None,
            inputs: dict[Site, str] | None = None) -> PreservationStats | None:
    """The statistics brought up to date for the model and texts, or None when they cannot be (recompute instead).

    Valid only when every site's weights hash matches (the keys of texts summed earlier are unchanged); then the keys
    of texts that joined are added and those of texts that left are subtracted, read on the current model.
    """
    inputs = inputs if inputs is not None else input_hashes(model, sites, query_tokens)
    if stats.query_tokens != query_tokens or any(stats.inputs.get(s) != inputs[s] or s not in stats.sums for s in sites):
        return None
    current = Counter(texts)
    added, removed = current - stats.texts, stats.texts - current
    changed = sum(added.values()) + sum(removed.values())
    if changed > MAX_CHANGE * max(stats.count, 1):
        return None
    sums = {s: stats.sums[s].clone() for s in sites}
    for sign, part in ((1.0, added), (-1.0, removed)):
        if part:
            for s, v in _key_sums(model, part, sites, query_tokens)[0].items():
                sums[s] += sign * v.to(sums[s].device)
    if changed:
        log.info("preservation statistics updated: %d texts joined, %d left", sum(added.values()), sum(removed.values()))
    return PreservationStats(sums, {s: inputs[s] for s in sites}, current, query_tokens)


def obtain(model: GenIRModel, texts: Sequence[str], sites: Sequence[Site], query_tokens: int | None,
           saved: PreservationStats | None) -> tuple[PreservationStats, bool]:
    """Statistics for the model and texts: the saved ones brought up to date when valid, else computed; and whether reused."""
    if saved is not None:
        stats = refresh(saved, model, texts, sites, query_tokens)
        if stats is not None:
            return stats, True
        log.info("saved preservation statistics do not match this model or corpus: recomputing them")
    return compute(model, texts, sites, query_tokens), False


def save(stats: PreservationStats, path: str | Path) -> Path:
    """Write statistics to a safetensors file (atomically), what they were computed from in its metadata."""
    from safetensors.torch import save_file

    meta = {
        "format": FORMAT,
        "query_tokens": stats.query_tokens,
        "inputs": {str(s): h for s, h in stats.inputs.items()},
        "texts": [[t, c] for t, c in stats.texts.items()],
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file({str(s): v.detach().to("cpu", torch.float64).contiguous() for s, v in stats.sums.items()}, str(tmp), metadata={"genedit": json.dumps(meta)})
    return path


def load(path: str | Path) -> PreservationStats | None:
    """Statistics saved by `save`, or None when the file is missing, unreadable or of another format."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})["genedit"])
            if meta.get("format") != FORMAT:
                return None
            sums = {Site.parse(name): f.get_tensor(name) for name in f.keys()}
        inputs = {Site.parse(s): h for s, h in meta["inputs"].items()}
        texts = Counter({t: int(c) for t, c in meta["texts"]})
    except Exception as e:  # noqa: BLE001 - a damaged cache file is recomputed, whatever is wrong with it
        log.warning("ignoring unreadable preservation statistics %s: %s", path, e)
        return None
    if set(sums) != set(inputs):
        return None
    return PreservationStats(sums, inputs, texts, meta.get("query_tokens"))
