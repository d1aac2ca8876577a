"""Per-family adapters that let :mod:`causalab.neural.resume` run a causal LM's blocks by hand.

An :class:`Architecture` knows how one model family embeds tokens, which modules are
its blocks and final norm, and how a block is called: through the Hugging Face module
(:meth:`Architecture.call_block`, used for whole sequences without autograd), and, for
the few positions per row that a fitting step runs with autograd, against keys and
values cached for the positions before them (:meth:`Architecture.live_block`).

GPT-NeoX and GPT-2 write ``live_block`` by hand: layer norms, projections and MLP are
the model's own modules, attention is a few lines for ``L`` query positions against
``S`` cached keys plus the ``L`` new ones. That skips the Hugging Face attention
dispatch, its cache object and the concatenation of the cached keys with the new ones,
which at one query position per row are a large share of a block's time. Any other
registered family falls back to its Hugging Face block with the cache seeded.
"""

from __future__ import annotations

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
           mask: torch.Tensor, scale: float) -> torch.Tensor:
    """Softmax attention of ``q`` ``(B, H, L, hd)`` over ``S`` cached keys and the ``L`` new ones.

    ``mask`` is additive, ``(B, 1, L, S + L)``. The cached part (often stored in half
    precision) is cast to ``q``'s dtype; scores against it and against the new keys are
    computed apart, so the cache is never concatenated with the new keys.
    Returns ``(B, L, H * hd)``.
    """
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


ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(arch: Architecture) -> Architecture:
    """Make :func:`~causalab.neural.resume.resume_logits` available for every ``config.model_type`` in ``arch.model_types``."""
    for name in arch.model_types:
        ARCHITECTURES[name] = arch
    return arch


register_architecture(GPTNeoXArchitecture())
register_architecture(GPT2Architecture())


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
