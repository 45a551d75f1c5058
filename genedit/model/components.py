"""One component map per architecture: the only place in genedit where module paths are written.

Every decoder component is addressed by its *output linear*:
- its output is the component's contribution to the residual stream (before the residual add and, for the
  post-LN architectures BART and BERT, before the LayerNorm);
- its input is, for attention, the concatenation of the heads ([..., H * d_head] = [..., d_attn], see `heads`)
  and, for the MLP, the hidden activation that feeds the output projection (the "key" of locate-then-edit methods).
The residual width `d_model` and the attention width `d_attn` are equal for BART and BERT but not always for T5
(t5-3b / t5-11b: 32 or 128 heads of d_kv 128 against d_model 1024).
The same paths resolve on a torch module and on an nnsight Envoy wrapping it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

Component = Literal["self_attn", "cross_attn", "mlp"]
COMPONENTS: tuple[Component, ...] = ("self_attn", "cross_attn", "mlp")


@dataclass(frozen=True)
class Site:
    """A decoder component (optionally one attention head) of one layer."""

    layer: int
    component: Component
    head: int | None = None

    def __str__(self) -> str:
        suffix = "" if self.head is None else f".h{self.head}"
        return f"L{self.layer}.{self.component}{suffix}"

    @classmethod
    def parse(cls, text: str) -> "Site":
        """Inverse of str(): 'L3.cross_attn.h2' -> Site(3, 'cross_attn', 2)."""
        parts = text.split(".")
        if len(parts) not in (2, 3) or not parts[0].startswith("L") or parts[1] not in COMPONENTS:
            raise ValueError(f"not a site: {text!r} (expected e.g. 'L3.mlp' or 'L3.cross_attn.h2')")
        head = int(parts[2][1:]) if len(parts) == 3 else None
        return cls(int(parts[0][1:]), parts[1], head)  # type: ignore[arg-type]


def _resolve(root: Any, path: str) -> Any:
    """Follow a dotted path with integer parts as indices; works on modules and nnsight Envoys."""
    obj = root
    for part in path.split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj


@dataclass(frozen=True)
class ComponentMap:
    """Where each decoder component of one architecture lives, and how the residual maps to logits."""

    arch: str
    n_layers: int
    n_heads: int
    d_model: int  # residual-stream width: component outputs, readout vectors, docid rows
    d_head: int  # width of one attention head (T5: d_kv)
    decoder_body: str  # module taking (input_ids, encoder_hidden_states, encoder_attention_mask) -> last_hidden_state
    layer: str  # decoder layer i, "{i}" placeholder; output[0] is the residual stream after the layer
    outputs: dict[Component, str]  # output linear of each component, "{i}" placeholder
    final_norm: str | None  # applied to the residual stream before unembedding; None: the architecture has none
    final_norm_inside_body: bool  # True when decoder_body already applies final_norm to its output
    unembed: str  # Linear whose rows are the output vocabulary (docids included)
    logits_bias: str | None  # extra additive logits buffer (BART final_logits_bias)
    output_scale: float  # multiply the normed state by this before unembedding (T5 tied embeddings)
    post_ln: bool  # True: per-component decompositions (lens of a component output) are approximate
    cross_qv: tuple[str, str]  # query and value linears of the cross-attention, "{i}" placeholder
    enc_to_dec: str | None = None  # optional projection of encoder states (EncoderDecoderModel)

    @property
    def d_attn(self) -> int:
        """Width of an attention output linear's input: the heads concatenated (n_heads * d_head)."""
        return self.n_heads * self.d_head

    def path(self, component: Component, layer: int) -> str:
        """Dotted module path of a component's output linear in layer `layer`."""
        if not 0 <= layer < self.n_layers:
            raise IndexError(f"layer {layer} out of range for a {self.n_layers}-layer {self.arch} decoder")
        return self.outputs[component].format(i=layer)

    def module(self, root: Any, component: Component, layer: int) -> Any:
        """The output linear of a component (torch module or Envoy, following `root`)."""
        return _resolve(root, self.path(component, layer))

    def layer_module(self, root: Any, layer: int) -> Any:
        """Decoder layer `layer` (its output[0] is the residual stream after it)."""
        return _resolve(root, self.layer.format(i=layer))

    def cross_query_value(self, root: Any, layer: int) -> tuple[Any, Any]:
        """The query and value linears of layer `layer`'s cross-attention (its output linear is `module`)."""
        self.path("cross_attn", layer)  # range check
        return _resolve(root, self.cross_qv[0].format(i=layer)), _resolve(root, self.cross_qv[1].format(i=layer))

    def body(self, root: Any) -> Any:
        """The decoder stack without the LM head."""
        return _resolve(root, self.decoder_body)

    def unembedding(self, root: Any) -> Any:
        """The output projection whose rows are vocabulary (and docid) vectors."""
        return _resolve(root, self.unembed)

    def bias(self, root: Any) -> torch.Tensor | None:
        """Additive logit bias over the whole vocabulary, if the architecture has one."""
        parts = []
        lin = self.unembedding(root)
        if getattr(lin, "bias", None) is not None:
            parts.append(lin.bias)
        if self.logits_bias is not None:
            parts.append(_resolve(root, self.logits_bias).reshape(-1))
        return sum(parts) if parts else None  # type: ignore[return-value]

    def norm(self, root: Any) -> nn.Module | None:
        """The final norm (or prediction-head transform) module; None only when the architecture has none."""
        if self.final_norm is None:
            return None
        try:
            return _resolve(root, self.final_norm)
        except (AttributeError, IndexError):
            raise ValueError(f"the {self.arch} component map puts the final norm at {self.final_norm!r}, but the model has no such module") from None

    def readout(self, root: nn.Module, body_output: torch.Tensor) -> torch.Tensor:
        """Vector that meets the unembedding, from the decoder body's last hidden state."""
        norm = None if self.final_norm_inside_body else self.norm(root)
        x = norm(body_output) if norm is not None else body_output
        return x * self.output_scale

    def lens(self, root: nn.Module, residual: torch.Tensor) -> torch.Tensor:
        """Vector that meets the unembedding, from any residual-stream vector (logit lens)."""
        norm = self.norm(root)
        x = norm(residual) if norm is not None else residual
        return x * self.output_scale

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        """Per-head view [..., H, d_head] of an attention output linear's input [..., H * d_head]."""
        return x.view(*x.shape[:-1], self.n_heads, self.d_head)

    def encoder_states(self, root: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        """Encoder states as the decoder's cross-attention sees them."""
        if self.enc_to_dec is None:
            return hidden
        proj = getattr(root, self.enc_to_dec, None)
        return proj(hidden) if proj is not None else hidden

    def sites(self, heads: bool = False) -> list[Site]:
        """All component sites, and with heads=True also every attention head."""
        out = [Site(layer, comp) for layer in range(self.n_layers) for comp in COMPONENTS]
        if heads:
            out += [Site(layer, comp, h) for layer in range(self.n_layers) for comp in ("self_attn", "cross_attn") for h in range(self.n_heads)]
        return out


def _even_heads(width: int, n_heads: int) -> int:
    """Head width of an architecture whose heads split the residual width evenly (BART, BERT)."""
    if width % n_heads:
        raise ValueError(f"d_model {width} not divisible by {n_heads} heads")
    return width // n_heads


def _t5_map(model: nn.Module) -> ComponentMap:
    cfg = model.config
    scale = cfg.d_model**-0.5 if getattr(cfg, "scale_decoder_outputs", getattr(cfg, "tie_word_embeddings", True)) else 1.0
    return ComponentMap(
        arch="t5",
        n_layers=cfg.num_decoder_layers,
        n_heads=cfg.num_heads,
        d_model=cfg.d_model,
        d_head=cfg.d_kv,
        decoder_body="decoder",
        layer="decoder.block.{i}",
        outputs={
            "self_attn": "decoder.block.{i}.layer.0.SelfAttention.o",
            "cross_attn": "decoder.block.{i}.layer.1.EncDecAttention.o",
            "mlp": "decoder.block.{i}.layer.2.DenseReluDense.wo",
        },
        final_norm="decoder.final_layer_norm",
        final_norm_inside_body=True,
        unembed="lm_head",
        logits_bias=None,
        output_scale=scale,
        post_ln=False,
        cross_qv=("decoder.block.{i}.layer.1.EncDecAttention.q", "decoder.block.{i}.layer.1.EncDecAttention.v"),
    )


def _bart_has_final_norm(cfg: Any) -> bool:
    """Whether a BART config asks for a final decoder LayerNorm (mBART-style: add_final_layer_norm / normalize_before)."""
    return bool(getattr(cfg, "add_final_layer_norm", False) or getattr(cfg, "normalize_before", False))


def _bart_map(model: nn.Module) -> ComponentMap:
    cfg = model.config
    return ComponentMap(
        arch="bart",
        n_layers=cfg.decoder_layers,
        n_heads=cfg.decoder_attention_heads,
        d_model=cfg.d_model,
        d_head=_even_heads(cfg.d_model, cfg.decoder_attention_heads),
        decoder_body="model.decoder",
        layer="model.decoder.layers.{i}",
        outputs={
            "self_attn": "model.decoder.layers.{i}.self_attn.out_proj",
            "cross_attn": "model.decoder.layers.{i}.encoder_attn.out_proj",
            "mlp": "model.decoder.layers.{i}.fc2",
        },
        final_norm="model.decoder.layer_norm" if _bart_has_final_norm(cfg) else None,  # BART proper has none
        final_norm_inside_body=True,
        unembed="lm_head",
        logits_bias="final_logits_bias",
        output_scale=1.0,
        post_ln=not getattr(cfg, "normalize_before", False),
        cross_qv=("model.decoder.layers.{i}.encoder_attn.q_proj", "model.decoder.layers.{i}.encoder_attn.v_proj"),
    )


def _bert2bert_map(model: nn.Module) -> ComponentMap:
    cfg = model.config.decoder
    return ComponentMap(
        arch="bert2bert",
        n_layers=cfg.num_hidden_layers,
        n_heads=cfg.num_attention_heads,
        d_model=cfg.hidden_size,
        d_head=_even_heads(cfg.hidden_size, cfg.num_attention_heads),
        decoder_body="decoder.bert",
        layer="decoder.bert.encoder.layer.{i}",
        outputs={
            "self_attn": "decoder.bert.encoder.layer.{i}.attention.output.dense",
            "cross_attn": "decoder.bert.encoder.layer.{i}.crossattention.output.dense",
            "mlp": "decoder.bert.encoder.layer.{i}.output.dense",
        },
        final_norm="decoder.cls.predictions.transform",
        final_norm_inside_body=False,
        unembed="decoder.cls.predictions.decoder",
        logits_bias=None,
        output_scale=1.0,
        post_ln=True,
        enc_to_dec="enc_to_dec_proj",
        cross_qv=("decoder.bert.encoder.layer.{i}.crossattention.self.query", "decoder.bert.encoder.layer.{i}.crossattention.self.value"),
    )


_BUILDERS = {"t5": _t5_map, "bart": _bart_map, "encoder-decoder": _bert2bert_map}


def component_map(model: nn.Module) -> ComponentMap:
    """The component map of a supported Hugging Face encoder-decoder (T5, BART, BERT2BERT)."""
    model_type = getattr(model.config, "model_type", None)
    if model_type == "encoder-decoder" and getattr(model.config.decoder, "model_type", None) != "bert":
        raise ValueError(f"EncoderDecoderModel is supported with a BERT decoder only, got {model.config.decoder.model_type!r}")
    if model_type not in _BUILDERS:
        raise ValueError(f"unsupported architecture {model_type!r}; supported: t5, bart, encoder-decoder (BERT2BERT)")
    cmap = _BUILDERS[model_type](model)
    cmap.norm(model)  # a final norm the map names but the model lacks fails here, not silently later
    return cmap


def head_contribution(weight: torch.Tensor, head_input: torch.Tensor, cmap: ComponentMap, head: int) -> torch.Tensor:
    """One head's share of an attention output linear: its d_head slice of the input times its weight columns."""
    sl = slice(head * cmap.d_head, (head + 1) * cmap.d_head)
    return head_input[..., sl] @ weight[:, sl].T

