"""What a causal LM target is made of, as a user can read it: ``LMTarget.layout()``.

Widths and head layouts are measured from the model (a dry forward pass through the
attention's output projection, the key projection's real output width), not taken
from the config, so grouped-query attention and head widths that are not
``width / heads`` (Gemma) come out right. ``path`` says how patched logits are
computed: ``"resume"`` (only the blocks above the site, :mod:`causalab.neural.resume`)
or ``"hooked"`` (a full forward pass with a hook; any other family, component sites,
or a sequence longer than a sliding attention window).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from causalab.neural.architectures import ARCHITECTURES, model_type
from causalab.neural.components import BlockParts


@dataclass(frozen=True)
class Layout:
    """One model's pieces. Module names are paths for ``model.get_submodule``; block-relative ones for a block."""

    family: str  # config.model_type
    path: str  # "resume" or "hooked" (block-output sites; component sites always run hooked)
    blocks: str  # e.g. "model.layers"
    layers: int
    width: int  # residual stream
    attention: str  # child of a block, e.g. "self_attn"
    mlp: str
    output_projection: str  # inside the attention, e.g. "o_proj": its input is the heads, concatenated
    heads: int
    key_value_heads: int  # fewer than heads: grouped-query attention
    head_width: int
    final_norm: str | None
    unembedding: str | None
    positions: str  # the positional scheme, in words
    sliding_window: int | None  # shortest sliding attention window (the resume path's longest exact sequence)


def _name(root: nn.Module, module: nn.Module | None) -> str | None:
    if module is None:
        return None
    return next((n for n, m in root.named_modules() if m is module), None)


def measure_layout(model: nn.Module, blocks_path: str, blocks: nn.ModuleList, width: int, parts: BlockParts,
                   path: str) -> Layout:
    """The :class:`Layout` of ``model``, read from its modules and the parts' dry forward pass."""
    arch = ARCHITECTURES.get(model_type(model))
    block, attention = blocks[0], parts.attention[0]
    kv_heads = arch.key_value_shape(model, width)[0] if arch is not None else \
        int(getattr(model.config, "num_key_value_heads", None) or parts.heads)
    final_norm = arch.final_norm(model) if arch is not None else None
    return Layout(
        family=model_type(model),
        path=path,
        blocks=blocks_path,
        layers=len(blocks),
        width=width,
        attention=_name(block, attention),
        mlp=_name(block, parts.mlp[0]),
        output_projection=_name(attention, parts.out_proj),
        heads=parts.heads,
        key_value_heads=kv_heads,
        head_width=parts.head_width,
        final_norm=_name(model, final_norm),
        unembedding=_name(model, model.get_output_embeddings()),
        positions=arch.positional(model) if arch is not None else "unknown (the model's own forward pass)",
        sliding_window=arch.exact_length(model) if arch is not None else None,
    )
