"""Building fresh GenIR models: the MiniLM BERT2BERT default, tiny random models, any supported HF base."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from safetensors import safe_open
from transformers import (
    AutoTokenizer,
    BartConfig,
    BartForConditionalGeneration,
    BertConfig,
    BertLMHeadModel,
    BertModel,
    EncoderDecoderModel,
    PreTrainedModel,
    T5Config,
    T5ForConditionalGeneration,
)

from genedit.model.device import resolve_device
from genedit.model.genir import _CLASSES, GenIRModel, load_config
from genedit.model.pretrained import minilm_path

log = logging.getLogger(__name__)

TINY_ARCHS = ("t5", "bart", "bert2bert")


@dataclass(frozen=True)
class TinySpec:
    """Shape of a tiny random model for tests."""

    n_layers: int = 2
    d_model: int = 32
    n_heads: int = 4
    d_ff: int = 64
    seed: int = 0
    d_kv: int | None = None  # T5 only: width of one attention head (default d_model // n_heads)


def _tiny_hf(arch: str, vocab_size: int, spec: TinySpec, pad_id: int, start_id: int) -> PreTrainedModel:
    torch.manual_seed(spec.seed)
    if spec.d_kv is not None and arch != "t5":
        raise ValueError(f"TinySpec.d_kv sets T5's head width; a {arch} head is d_model // n_heads wide")
    if arch == "t5":
        d_kv = spec.d_kv if spec.d_kv is not None else spec.d_model // spec.n_heads
        cfg = T5Config(vocab_size=vocab_size, d_model=spec.d_model, d_kv=d_kv, d_ff=spec.d_ff, num_layers=spec.n_layers, num_decoder_layers=spec.n_layers,
                       num_heads=spec.n_heads, pad_token_id=pad_id, decoder_start_token_id=start_id, dropout_rate=0.0)
        return T5ForConditionalGeneration(cfg)
    if arch == "bart":
        cfg = BartConfig(vocab_size=vocab_size, d_model=spec.d_model, encoder_layers=spec.n_layers, decoder_layers=spec.n_layers,
                         encoder_attention_heads=spec.n_heads, decoder_attention_heads=spec.n_heads, encoder_ffn_dim=spec.d_ff, decoder_ffn_dim=spec.d_ff,
                         pad_token_id=pad_id, decoder_start_token_id=start_id, dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
                         max_position_embeddings=128)
        return BartForConditionalGeneration(cfg)
    if arch == "bert2bert":
        common = dict(vocab_size=vocab_size, hidden_size=spec.d_model, num_hidden_layers=spec.n_layers, num_attention_heads=spec.n_heads,
                      intermediate_size=spec.d_ff, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, max_position_embeddings=128, pad_token_id=pad_id)
        enc = BertModel(BertConfig(**common))
        dec = BertLMHeadModel(BertConfig(**common, is_decoder=True, add_cross_attention=True))
        model = EncoderDecoderModel(encoder=enc, decoder=dec)
        model.config.decoder_start_token_id = start_id
        model.config.pad_token_id = pad_id
        return model
    raise ValueError(f"unknown tiny architecture {arch!r}; choose from {TINY_ARCHS}")


# random-weight shapes of published models (T5's real dimensions; MiniLM's tokenizer), for scale benchmarks without a download
SHAPES: dict[str, TinySpec] = {
    "tiny": TinySpec(),
    "t5-small": TinySpec(n_layers=6, d_model=512, n_heads=8, d_ff=2048, d_kv=64),
    "t5-base": TinySpec(n_layers=12, d_model=768, n_heads=12, d_ff=3072, d_kv=64),
    "t5-large": TinySpec(n_layers=24, d_model=1024, n_heads=16, d_ff=4096, d_kv=64),
}


def tiny_model(arch: str, docids: Sequence[str], spec: TinySpec | None = None, *, device: torch.device | None = None) -> GenIRModel:
    """A tiny randomly initialised GenIR model (MiniLM's WordPiece tokenizer) for tests and planted circuits.

    `device`: build the weights there directly (a T5-large shape initialises in seconds on a GPU); None: on the CPU.
    """
    spec = spec or TinySpec()
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    place = torch.device(device) if device is not None else contextlib.nullcontext()
    with torch.random.fork_rng(devices=[]), place:  # seeded by spec.seed, the caller's random state untouched
        hf = _tiny_hf(arch, len(tokenizer), spec, tokenizer.pad_token_id, tokenizer.cls_token_id)
        hf.eval()
        model = GenIRModel(hf, tokenizer, [], meta={"name": f"tiny-{arch}", "base": f"tiny-{arch}"})
        with torch.no_grad():
            model.add_documents(list(docids), torch.randn(len(docids), model.cmap.d_model) * spec.d_model**-0.5)
    return model


def minilm_bert2bert(seed: int = 0) -> tuple[PreTrainedModel, object, list[str]]:
    """BERT2BERT warm-started from all-MiniLM-L6-v2 on both sides; also the names of freshly initialised parameters."""
    path = minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    with torch.random.fork_rng(devices=[]):  # seeded fresh weights, the caller's random state untouched
        torch.manual_seed(seed)
        hf = EncoderDecoderModel.from_encoder_decoder_pretrained(str(path), str(path))
    hf.config.decoder_start_token_id = tokenizer.cls_token_id
    hf.config.pad_token_id = tokenizer.pad_token_id
    with safe_open(str(path / "model.safetensors"), "pt") as f:
        carried = set(f.keys())
    decoder = {id(p) for p in hf.get_decoder().parameters()}
    fresh = [n for n, p in hf.named_parameters() if id(p) in decoder and not any(n.endswith("." + key) for key in carried)]
    return hf, tokenizer, fresh


def base_model(base: str, seed: int = 0, *, device: torch.device | str | None = None) -> GenIRModel:
    """A GenIR model with no documents yet from a base name: 'minilm' (default), 'tiny-<arch>', or an HF id/path.

    The weights are built on the CPU (the same seeded values everywhere) and moved to `device` (auto | cpu | cuda |
    cuda:N; None: the CPU); an unusable device is refused (ValueError) before anything is built.
    """
    target = resolve_device(device) if device is not None else None
    model = _base_model(base, seed)
    return model.to(target) if target is not None else model


def _base_model(base: str, seed: int) -> GenIRModel:
    """base_model's model, on the CPU."""
    fresh: list[str] = []
    if base == "minilm":
        hf, tokenizer, fresh = minilm_bert2bert(seed)
    elif base.startswith("tiny-"):
        model = tiny_model(base.removeprefix("tiny-"), [], TinySpec(seed=seed))
        model.meta["fresh_parameters"] = [n for n, _ in model.hf.named_parameters()]
        return model
    else:
        config = load_config(base)
        if config.model_type not in _CLASSES:
            raise ValueError(f"base {base!r} is a {config.model_type!r} model; supported: t5, bart, encoder-decoder")
        hf = _CLASSES[config.model_type].from_pretrained(base)
        tokenizer = AutoTokenizer.from_pretrained(base)
    hf.eval()
    return GenIRModel(hf, tokenizer, [], meta={"name": "genir", "base": base, "fresh_parameters": fresh})


POOLED_GAIN = 20.0  # the pooled encoder state outweighs the decoder's own residual stream after the cross-attention
HEAD_SHIFT = 5.0  # a prediction-head transform (dense -> GELU -> LayerNorm) sees x + 5: GELU ~ identity, the LayerNorm drops the shift


def start_as_pooling(model: GenIRModel, fresh: set[str], gain: float = POOLED_GAIN) -> bool:
    """Initialise a fresh decoder to read out the mean of the encoder states, as the dense teacher does; True if done.

    The last layer's cross-attention gets a zero query (uniform attention over the query's tokens), an identity value
    and a gained identity output, so the residual stream carries the mean-pooled encoder states; a BERT
    prediction-head transform becomes a shifted identity. With docid rows = sentence embeddings, the untrained student
    then ranks almost as its teacher (on shortdocs: start dev Hits@1 0.549, the teacher's 0.549, against 0.000 from
    random weights); the larger `gain`, the closer to the teacher (20 is what training was measured with). Pretrained
    cross-attention (e.g. T5's) is never overwritten: nothing is done and False returned.
    """
    cmap, hf = model.cmap, model.hf
    last = cmap.n_layers - 1
    query, value = cmap.cross_query_value(hf, last)
    output = cmap.module(hf, "cross_attn", last)
    linears = {"query": query, "value": value, "output": output}
    names = {id(p): n for n, p in hf.named_parameters()}
    pretrained = [k for k, lin in linears.items() if names[id(lin.weight)] not in fresh]
    if pretrained:
        log.warning("decoder layer %d's cross-attention %s is pretrained: left as it is, the decoder starts as loaded", last, "/".join(pretrained))
        return False
    if cmap.d_attn != cmap.d_model:
        log.warning("cross-attention width %d != d_model %d: no identity value map, the decoder starts as loaded", cmap.d_attn, cmap.d_model)
        return False
    with torch.no_grad():
        eye = torch.eye(cmap.d_model, dtype=value.weight.dtype, device=value.weight.device)
        query.weight.zero_()
        value.weight.copy_(eye)
        output.weight.copy_(gain * eye)
        for lin in linears.values():
            if lin.bias is not None:
                lin.bias.zero_()
        head = cmap.norm(hf)
        dense = getattr(head, "dense", None)  # BertPredictionHeadTransform; T5 and BART read out through a norm or nothing
        if isinstance(dense, torch.nn.Linear) and names[id(dense.weight)] in fresh:
            dense.weight.copy_(eye)
            dense.bias.fill_(HEAD_SHIFT)
    return True
