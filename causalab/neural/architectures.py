"""Per-family adapters that let :mod:`causalab.neural.resume` run a causal LM's blocks by hand.

An :class:`Architecture` knows how one model family embeds tokens, which modules are
its blocks and final norm, and how a block is called: through the Hugging Face module
(:meth:`Architecture.call_block`, used for whole sequences without autograd), and, for
the few positions per row that a fitting step runs with autograd, against keys and
values cached for the positions before them (:meth:`Architecture.live_block`).

GPT-NeoX, GPT-2 and the Llama-like families (Llama, Mistral, Qwen 2/3, OLMo 2, Gemma 2/3;
:class:`LlamaArchitecture`) write ``live_block`` by hand: norms, projections and MLP are
the model's own modules, attention is a few lines for ``L`` query positions against
``S`` cached keys plus the ``L`` new ones. That skips the Hugging Face attention
dispatch, its cache object and the concatenation of the cached keys with the new ones,
which at one query position per row are a large share of a block's time. Any other
registered family falls back to its Hugging Face block with the cache seeded; a model
of an unregistered family runs the full forward with a hook.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from causalab.errors import ArchitectureError


class SeededKeyValues:
    """A cache object for one Hugging Face block call: the cached keys/values, then the new ones appended."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        self.keys, self.values = keys, values

    def update(self, keys: torch.Tensor, values: torch.Tensor, layer_idx: int, *args: Any, **kwargs: Any):
        return torch.cat([self.keys.to(keys.dtype), keys], dim=-2), torch.cat([self.values.to(values.dtype), values], dim=-2)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, past_k: torch.Tensor, past_v: torch.Tensor,
           mask: torch.Tensor, scale: float, softcap: float | None = None) -> torch.Tensor:
    """Softmax attention of ``q`` ``(B, H, L, hd)`` over ``S`` cached keys and the ``L`` new ones.

    ``mask`` is additive, ``(B, 1, L, S + L)``. The cached part (often stored in half
    precision) is cast to ``q``'s dtype; scores against it and against the new keys are
    computed apart, so the cache is never concatenated with the new keys. Keys and
    values may have fewer heads than the queries (grouped-query attention: query head
    ``h`` reads key/value head ``h // (H / heads)``); ``softcap`` caps the scaled scores
    at ``softcap * tanh(score / softcap)`` before the mask (Gemma 2).
    Returns ``(B, L, H * hd)``.
    """
    if k.shape[1] != q.shape[1] or softcap is not None:
        return _attend_grouped(q, k, v, past_k, past_v, mask, scale, softcap)
    S, L = past_k.shape[-2], q.shape[-2]
    if L == 1:
        # one query position (a last-token step): every product is elementwise with a sum, not B x H
        # matrix products of one row (2-3x faster forward and backward at a few dozen cached positions)
        new = (q * k).sum(-1, keepdim=True)
        scores = torch.cat([(q * past_k.to(q.dtype)).sum(-1).unsqueeze(-2), new], -1) if S else new
        weights = torch.softmax(scores * scale + mask, dim=-1)
        out = weights[..., S:] * v
        if S:
            out = out + (weights[..., :S].transpose(-1, -2) * past_v.to(q.dtype)).sum(-2, keepdim=True)
    else:
        new = q @ k.transpose(-1, -2)
        scores = torch.cat([q @ past_k.to(q.dtype).transpose(-1, -2), new], -1) if S else new
        weights = torch.softmax(scores * scale + mask, dim=-1)
        out = weights[..., S:] @ v
        if S:
            out = out + weights[..., :S] @ past_v.to(q.dtype)
    B, H, L, hd = out.shape
    return out.transpose(1, 2).reshape(B, L, H * hd)


def _attend_grouped(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, past_k: torch.Tensor, past_v: torch.Tensor,
                    mask: torch.Tensor, scale: float, softcap: float | None) -> torch.Tensor:
    """:func:`attend` for grouped-query heads or capped scores: each key/value head's ``G`` query heads
    are stacked as ``G * L`` query rows, so no key or value is repeated; softmax in float32 as Hugging Face's."""
    B, H, L, hd = q.shape
    KV, S = k.shape[1], past_k.shape[-2]
    G = H // KV
    qg = q.reshape(B, KV, G * L, hd)  # rows g * L + i: query head kv * G + g at position i
    new = qg @ k.transpose(-1, -2)
    scores = (torch.cat([qg @ past_k.to(q.dtype).transpose(-1, -2), new], -1) if S else new) * scale
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    weights = torch.softmax(scores + mask.repeat(1, 1, G, 1), dim=-1, dtype=torch.float32).to(q.dtype)
    out = weights[..., S:] @ v
    if S:
        out = out + weights[..., :S] @ past_v.to(q.dtype)
    return out.view(B, KV, G, L, hd).reshape(B, H, L, hd).transpose(1, 2).reshape(B, L, H * hd)


class Architecture:
    """How one model family embeds tokens and calls its blocks. Subclasses set ``model_types``."""

    model_types: tuple[str, ...] = ()

    def blocks(self, model: nn.Module) -> nn.ModuleList:  # pragma: no cover - abstract
        raise NotImplementedError

    def final_norm(self, model: nn.Module) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def embed(self, model: nn.Module, input_ids: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover - abstract

    def positions(self, model: nn.Module, x: torch.Tensor, position_ids: torch.Tensor) -> Any:
        """Position context the blocks need (rotary cos/sin) for ``(1 or B, T)`` position ids, or ``None``."""
        return None

    def slice_positions(self, context: Any, start: int, stop: int) -> Any:
        return context

    def call_block(self, block: nn.Module, x: torch.Tensor, mask: torch.Tensor, context: Any, kv: Any) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover - abstract

    def live_block(self, block: nn.Module, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor],
                   mask: torch.Tensor, context: Any) -> torch.Tensor:
        """Block output at ``x``'s ``L`` positions, attending to cached ``past`` keys/values ``(B, H, S, hd)``.

        ``mask`` is additive ``(B, 1, L, S + L)``. This default runs the Hugging Face block.
        """
        return self.call_block(block, x, mask, context, SeededKeyValues(*past))

    def unembed(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Logits from the final norm's output ``x`` (the unembedding, and a family's logit soft-capping)."""
        return model.get_output_embeddings()(x)

    def key_value_shape(self, model: nn.Module, width: int) -> tuple[int, int]:
        """``(key/value heads, head width)`` of the keys and values a block caches."""
        heads = int(model.config.num_attention_heads)
        return heads, width // heads

    def exact_length(self, model: nn.Module) -> int | None:
        """Longest sequence the resume path computes exactly (a sliding attention window), or None for any."""
        return None

    def positional(self, model: nn.Module) -> str:
        """The family's positional scheme, in words."""
        return "learned absolute position embeddings"


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class GPTNeoXArchitecture(Architecture):
    model_types = ("gpt_neox",)

    def blocks(self, model):
        return model.gpt_neox.layers

    def final_norm(self, model):
        return model.gpt_neox.final_layer_norm

    def embed(self, model, input_ids, position_ids):
        return model.gpt_neox.embed_in(input_ids)

    def positions(self, model, x, position_ids):
        return model.gpt_neox.rotary_emb(x, position_ids=position_ids)

    def slice_positions(self, context, start, stop):
        cos, sin = context
        return cos[:, start:stop], sin[:, start:stop]

    def call_block(self, block, x, mask, context, kv):
        out = block(x, attention_mask=mask, layer_past=kv, position_embeddings=context)
        return out[0] if isinstance(out, tuple) else out

    def positional(self, model):
        rotary = 2 * model.gpt_neox.rotary_emb.inv_freq.numel()  # measured: the rotated dimensions of each head
        head = model.config.hidden_size // model.config.num_attention_heads
        return f"rotary (rotate-half) on {rotary} of each head's {head} dimensions"

    def live_block(self, block, x, past, mask, context):
        if block.training:  # dropout: only the Hugging Face module knows it
            return super().live_block(block, x, past, mask, context)
        attn = block.attention
        B, L, _ = x.shape
        H = past[0].shape[1]
        qkv = attn.query_key_value(block.input_layernorm(x)).view(B, L, H, 3, -1).transpose(1, 2)
        cos, sin = (c[:, None, :, None] for c in context)  # (B, 1, L, 1, rotary dims): queries and keys at once
        r = cos.shape[-1]
        qk = qkv[..., :2, :]
        rot = qk[..., :r] * cos + _rotate_half(qk[..., :r]) * sin
        q, k = torch.cat([rot, qk[..., r:]], dim=-1).unbind(-2)
        a = attn.dense(attend(q, k, qkv[..., 2, :], past[0], past[1], mask, attn.scaling))
        if block.use_parallel_residual:
            return x + a + block.mlp(block.post_attention_layernorm(x))
        x = x + a
        return x + block.mlp(block.post_attention_layernorm(x))


class GPT2Architecture(Architecture):
    model_types = ("gpt2",)

    def blocks(self, model):
        return model.transformer.h

    def final_norm(self, model):
        return model.transformer.ln_f

    def embed(self, model, input_ids, position_ids):
        return model.transformer.wte(input_ids) + model.transformer.wpe(position_ids)

    def call_block(self, block, x, mask, context, kv):
        out = block(x, cache=kv, attention_mask=mask)
        return out[0] if isinstance(out, tuple) else out

    def live_block(self, block, x, past, mask, context):
        attn = block.attn
        if block.training or getattr(attn, "is_cross_attention", False) or hasattr(block, "crossattention"):
            return super().live_block(block, x, past, mask, context)
        B, L, d = x.shape
        H = past[0].shape[1]
        q, k, v = (t.view(B, L, H, -1).transpose(1, 2) for t in attn.c_attn(block.ln_1(x)).split(d, dim=2))
        x = x + attn.c_proj(attend(q, k, v, past[0], past[1], mask, attn.scaling))
        return x + block.mlp(block.ln_2(x))


class LlamaArchitecture(Architecture):
    """Llama and the families built like it: RMSNorm, rotary positions, grouped-query attention, a gated MLP.

    What varies is read from each block's own modules, not from a list of names:

    - norm placement: before attention and MLP (Llama, Qwen 2/3, Mistral); after them, on the
      sub-layer outputs (OLMo 2: ``post_attention_layernorm``/``post_feedforward_layernorm``, no
      ``input_layernorm``); or both (Gemma 2/3: ``pre_feedforward_layernorm`` as well);
    - QK-norm: ``q_norm``/``k_norm`` over each head (Qwen 3, Gemma 3) or over the whole
      projection (OLMo 2), told apart by the norm's width;
    - attention soft-capping (``attn_logit_softcapping``, Gemma 2), the score scale
      (``scaling``: Gemma's ``query_pre_attn_scalar``), and final logit soft-capping;
    - rotary tables per layer type (Gemma 3: local and global bases);
    - sliding windows: exact while a sequence fits in the window (:meth:`exact_length`).

    Embedding scaling (Gemma) happens inside the model's own ``embed_tokens``.
    """

    model_types = ("llama", "mistral", "qwen2", "qwen3", "olmo2", "gemma2", "gemma3_text")

    def blocks(self, model):
        return model.model.layers

    def final_norm(self, model):
        return model.model.norm

    def embed(self, model, input_ids, position_ids):
        return model.model.embed_tokens(input_ids)

    def positions(self, model, x, position_ids):
        rotary = model.model.rotary_emb
        types = getattr(model.config, "layer_types", None)
        if types and "layer_type" in inspect.signature(rotary.forward).parameters:
            return {t: rotary(x, position_ids, t) for t in sorted(set(types))}
        return rotary(x, position_ids)

    def slice_positions(self, context, start, stop):
        if isinstance(context, dict):
            return {t: self.slice_positions(c, start, stop) for t, c in context.items()}
        cos, sin = context
        return cos[:, start:stop], sin[:, start:stop]

    @staticmethod
    def _rotary(block: nn.Module, context: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return context[block.self_attn.layer_type] if isinstance(context, dict) else context

    def call_block(self, block, x, mask, context, kv):
        out = block(x, attention_mask=mask, position_embeddings=self._rotary(block, context), cache=kv)
        return out[0] if isinstance(out, tuple) else out

    def live_block(self, block, x, past, mask, context):
        placement = norm_placement(block)
        if block.training or placement is None:
            return super().live_block(block, x, past, mask, context)
        attn = block.self_attn
        B, L, _ = x.shape
        hd = attn.head_dim
        a = block.input_layernorm(x) if placement != "post" else x
        q, k, v = attn.q_proj(a), attn.k_proj(a), attn.v_proj(a)
        q_norm, k_norm = getattr(attn, "q_norm", None), getattr(attn, "k_norm", None)
        whole = q_norm is not None and q_norm.weight.shape[-1] == q.shape[-1] != hd  # OLMo 2: over the projection
        if whole:
            q, k = q_norm(q), k_norm(k)
        q, k, v = (t.view(B, L, -1, hd) for t in (q, k, v))
        if q_norm is not None and not whole:  # Qwen 3, Gemma 3: over each head
            q, k = q_norm(q), k_norm(k)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        cos, sin = (c.unsqueeze(1) for c in self._rotary(block, context))
        # OLMo 2's rotary tables stay float32: back to the projections' dtype, as its own attention does
        q, k = (q * cos + _rotate_half(q) * sin).to(v.dtype), (k * cos + _rotate_half(k) * sin).to(v.dtype)
        o = attn.o_proj(attend(q, k, v, past[0], past[1], mask, attn.scaling,
                               getattr(attn, "attn_logit_softcapping", None)))
        if placement == "pre":
            x = x + o
            return x + block.mlp(block.post_attention_layernorm(x))
        x = x + block.post_attention_layernorm(o)
        m = block.pre_feedforward_layernorm(x) if placement == "sandwich" else x
        return x + block.post_feedforward_layernorm(block.mlp(m))

    def unembed(self, model, x):
        logits = model.get_output_embeddings()(x)
        cap = getattr(model.config, "final_logit_softcapping", None)
        return logits if cap is None else torch.tanh(logits / cap) * cap

    def key_value_shape(self, model, width):
        attn = self.blocks(model)[0].self_attn
        return attn.k_proj.out_features // attn.head_dim, attn.head_dim

    def exact_length(self, model):
        windows = [window for block in self.blocks(model) if (window := sliding_window(block)) is not None]
        return min(windows) if windows else None

    def positional(self, model):
        types = getattr(model.config, "layer_types", None)
        rotary = model.model.rotary_emb
        if types and "layer_type" in inspect.signature(rotary.forward).parameters:
            return f"rotary (rotate-half), one table per layer type ({', '.join(sorted(set(types)))})"
        return f"rotary (rotate-half) on each head's {2 * rotary.inv_freq.numel()} dimensions"


def norm_placement(block: nn.Module) -> str | None:
    """Where a Llama-like block's norms sit: "pre" (Llama), "post" (OLMo 2), "sandwich" (Gemma), or None (unknown)."""
    has = {name for name, _ in block.named_children()}
    if {"input_layernorm", "pre_feedforward_layernorm", "post_attention_layernorm", "post_feedforward_layernorm"} <= has:
        return "sandwich"
    if {"post_attention_layernorm", "post_feedforward_layernorm"} <= has and "input_layernorm" not in has:
        return "post"
    if {"input_layernorm", "post_attention_layernorm"} <= has and not has & {"pre_feedforward_layernorm",
                                                                             "post_feedforward_layernorm"}:
        return "pre"
    return None


def sliding_window(block: nn.Module) -> int | None:
    """A block's sliding attention window (keys within ``window - 1`` positions of the query), or None."""
    attn = block.self_attn
    if hasattr(attn, "sliding_window"):  # Qwen 2/3, Gemma: set per layer type
        return attn.sliding_window
    return getattr(getattr(attn, "config", None), "sliding_window", None)  # Mistral: every layer


ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(arch: Architecture) -> Architecture:
    """Make :func:`~causalab.neural.resume.resume_logits` available for every ``config.model_type`` in ``arch.model_types``."""
    for name in arch.model_types:
        ARCHITECTURES[name] = arch
    return arch


register_architecture(GPTNeoXArchitecture())
register_architecture(GPT2Architecture())
register_architecture(LlamaArchitecture())


def model_type(model: nn.Module) -> str:
    return str(getattr(getattr(model, "config", None), "model_type", type(model).__name__))


def supports_resume(model: nn.Module) -> bool:
    """Whether :func:`~causalab.neural.resume.resume_logits` has an adapter for this model (else :func:`hooked_logits`)."""
    return model_type(model) in ARCHITECTURES


def architecture(model: nn.Module) -> Architecture:
    name = model_type(model)
    if name not in ARCHITECTURES:
        raise ArchitectureError(
            f"no resume-from-site adapter for model type {name!r} (have: {', '.join(sorted(ARCHITECTURES))}); "
            "use hooked_logits, or register_architecture an adapter"
        )
    return ARCHITECTURES[name]
