"""Resume a causal LM from a patched residual stream: run only the blocks above the site.

The network is frozen, so the residual stream after block ``L`` on the base inputs
is computed once per dataset (:func:`residual_stream`). Each fitting step then
writes the patched vector ``h'`` into that stream at one position per row and runs
blocks ``L+1..N``, the final norm and the unembedding (:func:`resume_logits`).

Two savings over a full forward pass, both exact:

* positions before the earliest patched (and read) position of the batch do not
  depend on ``h'``; they run without autograd and only hand their keys and values
  to the later positions (a key/value cache, as in generation). At the last token
  this leaves one position per upper block on the autograd tape. Their keys and
  values can be computed once per dataset too (:func:`prefix_keys_values`), up to
  the earliest patched or read position of the whole dataset;
* the unembedding runs on the read position only, not on every position.

A small :class:`Architecture` adapter per model family (GPT-NeoX, GPT-2) knows how
to embed, which modules are the blocks and the final norm, and how a block is
called (rotary position embeddings for GPT-NeoX, computed once per call and sliced).
Other architectures use :func:`hooked_logits`, a full forward pass with a forward
hook that patches the block's output: slower, but needs nothing but the blocks.

Layers count as in :class:`~causalab.neural.target.Site`: ``layer=L`` is the
residual stream after block ``L`` (1-based); ``layer=0`` is the embedding output.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from causalab.errors import ArchitectureError, SiteError

# --- architecture adapters -----------------------------------------------------------------


class Architecture:
    """How one model family embeds tokens and calls its blocks. Subclasses set ``model_types``."""

    model_types: tuple[str, ...] = ()

    def body(self, model: nn.Module) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def blocks(self, model: nn.Module) -> nn.ModuleList:  # pragma: no cover - abstract
        raise NotImplementedError

    def final_norm(self, model: nn.Module) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def embed(self, model: nn.Module, input_ids: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover - abstract

    def positions(self, model: nn.Module, x: torch.Tensor, position_ids: torch.Tensor) -> Any:
        """Per-call position context the blocks need (rotary cos/sin), or ``None``."""
        return None

    def slice_positions(self, context: Any, start: int, stop: int) -> Any:
        return context

    def call_block(self, block: nn.Module, x: torch.Tensor, mask: torch.Tensor, context: Any, kv: Any) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover - abstract


class GPTNeoXArchitecture(Architecture):
    model_types = ("gpt_neox",)

    def body(self, model):
        return model.gpt_neox

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


class GPT2Architecture(Architecture):
    model_types = ("gpt2",)

    def body(self, model):
        return model.transformer

    def blocks(self, model):
        return model.transformer.h

    def final_norm(self, model):
        return model.transformer.ln_f

    def embed(self, model, input_ids, position_ids):
        return model.transformer.wte(input_ids) + model.transformer.wpe(position_ids)

    def call_block(self, block, x, mask, context, kv):
        out = block(x, past_key_values=kv, attention_mask=mask)
        return out[0] if isinstance(out, tuple) else out


ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(arch: Architecture) -> Architecture:
    """Make :func:`resume_logits` available for every ``config.model_type`` in ``arch.model_types``."""
    for name in arch.model_types:
        ARCHITECTURES[name] = arch
    return arch


register_architecture(GPTNeoXArchitecture())
register_architecture(GPT2Architecture())


def model_type(model: nn.Module) -> str:
    return str(getattr(getattr(model, "config", None), "model_type", type(model).__name__))


def supports_resume(model: nn.Module) -> bool:
    """Whether :func:`resume_logits` has an adapter for this model (else use :func:`hooked_logits`)."""
    return model_type(model) in ARCHITECTURES


def architecture(model: nn.Module) -> Architecture:
    name = model_type(model)
    if name not in ARCHITECTURES:
        raise ArchitectureError(
            f"no resume-from-site adapter for model type {name!r} (have: {', '.join(sorted(ARCHITECTURES))}); "
            "use hooked_logits, or register_architecture an adapter"
        )
    return ARCHITECTURES[name]


def find_blocks(model: nn.Module) -> nn.ModuleList:
    """The model's transformer blocks: its longest ``ModuleList`` (of ``config.num_hidden_layers`` if known)."""
    if supports_resume(model):
        return architecture(model).blocks(model)
    n = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    lists = [m for m in model.modules() if isinstance(m, nn.ModuleList) and (n is None or len(m) == n)]
    if not lists:
        raise ArchitectureError(f"cannot find the transformer blocks of {type(model).__name__} (no ModuleList of {n} blocks)")
    return max(lists, key=len)


def _check_layer(model: nn.Module, layer: int, n_blocks: int) -> None:
    if not isinstance(layer, int) or not 0 <= layer <= n_blocks:
        raise SiteError(
            f"{model_type(model)} has {n_blocks} blocks: layer must be 0 (embeddings) .. {n_blocks}, got {layer!r}"
        )


def _check_positions(name: str, positions: torch.Tensor, batch: int, length: int) -> torch.Tensor:
    positions = torch.as_tensor(positions, dtype=torch.long)
    if positions.dim() == 0:
        positions = positions.expand(batch)
    if positions.shape != (batch,):
        raise SiteError(f"{name} must hold one position per row ({batch}), got shape {tuple(positions.shape)}")
    if positions.numel() and (int(positions.min()) < 0 or int(positions.max()) >= length):
        raise SiteError(f"{name} must lie in 0..{length - 1} (sequence length {length}), got {positions.tolist()}")
    return positions


def _default_position_ids(length: int, device: torch.device) -> torch.Tensor:
    return torch.arange(length, device=device).unsqueeze(0)


def additive_causal_mask(
    q_start: int, q_stop: int, kv_len: int, attention_mask: torch.Tensor | None, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """``(B or 1, 1, q, kv)`` additive mask: query ``q_start + i`` sees keys ``j <= q_start + i`` not padded.

    Additive (0 / most negative) so eager and SDPA attention read it alike.
    """
    q = torch.arange(q_start, q_stop, device=device)[:, None]
    k = torch.arange(kv_len, device=device)[None, :]
    allowed = (k <= q)[None, None]
    if attention_mask is not None:
        allowed = allowed & attention_mask[:, None, None, :kv_len].bool()
    mask = torch.zeros(allowed.shape, dtype=dtype, device=device)
    return mask.masked_fill(~allowed, torch.finfo(dtype).min)


class _KeyValues:
    """Keys and values of already-computed positions, per block: the one method blocks call on a cache.

    ``prefix`` (optional, ``(B, blocks, 2, heads, P, head_dim)``) holds the first ``P``
    positions' keys and values of the blocks in call order, as :func:`prefix_keys_values`
    stores them; the first call of each block starts from its entry.
    """

    def __init__(self, prefix: torch.Tensor | None = None) -> None:
        self.store: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.prefix = prefix

    def update(self, keys: torch.Tensor, values: torch.Tensor, layer_idx: int, *args: Any, **kwargs: Any):
        if layer_idx not in self.store and self.prefix is not None:
            i = len(self.store)
            self.store[layer_idx] = (self.prefix[:, i, 0].to(keys.dtype), self.prefix[:, i, 1].to(values.dtype))
        if layer_idx in self.store:
            k0, v0 = self.store[layer_idx]
            keys, values = torch.cat([k0, keys], dim=-2), torch.cat([v0, values], dim=-2)
        self.store[layer_idx] = (keys, values)
        return keys, values


# --- the cached stream and the resumed run ------------------------------------------------


@torch.no_grad()
def residual_stream(
    model: nn.Module,
    input_ids: torch.Tensor,
    layer: int,
    attention_mask: torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """The ``(B, T, d)`` residual stream after block ``layer`` on ``input_ids`` (inference mode)."""
    arch = architecture(model)
    blocks = arch.blocks(model)
    _check_layer(model, layer, len(blocks))
    T = input_ids.shape[1]
    if position_ids is None:
        position_ids = _default_position_ids(T, input_ids.device)
    x = arch.embed(model, input_ids, position_ids)
    context = arch.positions(model, x, position_ids)
    mask = additive_causal_mask(0, T, T, attention_mask, x.dtype, x.device)
    for block in blocks[:layer]:
        x = arch.call_block(block, x, mask, context, None)
    return x


@torch.no_grad()
def prefix_keys_values(
    model: nn.Module,
    hidden: torch.Tensor,
    layer: int,
    length: int,
    attention_mask: torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Keys and values of positions ``0..length-1`` in every block above ``layer``, for :func:`resume_logits`.

    ``hidden`` is the residual stream after block ``layer`` (:func:`residual_stream`).
    Positions before every row's patched and read positions do not depend on the
    patch, so their keys and values can be computed once per dataset instead of once
    per step. Returns ``(B, blocks above layer, 2, heads, length, head_dim)``.
    """
    arch = architecture(model)
    blocks = arch.blocks(model)
    _check_layer(model, layer, len(blocks))
    B, T, _ = hidden.shape
    if not 0 < length <= T:
        raise SiteError(f"the cached prefix must cover 1..{T} positions, got {length}")
    if position_ids is None:
        position_ids = _default_position_ids(T, hidden.device)
    kv = _KeyValues()
    context = arch.positions(model, hidden, position_ids)
    _fill_keys_values(arch, blocks[layer:], hidden, 0, length, attention_mask, context, kv)
    return torch.stack([torch.stack(pair, dim=1) for pair in kv.store.values()], dim=1)


@torch.no_grad()
def _fill_keys_values(
    arch: Architecture,
    blocks: Any,
    hidden: torch.Tensor,
    start: int,
    stop: int,
    attention_mask: torch.Tensor | None,
    context: Any,
    kv: _KeyValues,
) -> None:
    """Run positions ``start..stop-1`` of ``hidden`` through ``blocks`` without autograd, only to fill ``kv``."""
    x = hidden[:, start:stop]
    mask = additive_causal_mask(start, stop, stop, attention_mask, hidden.dtype, hidden.device)
    ctx = arch.slice_positions(context, start, stop)
    for block in blocks:
        x = arch.call_block(block, x, mask, ctx, kv)


def resume_logits(
    model: nn.Module,
    layer: int,
    hidden: torch.Tensor,
    positions: torch.Tensor | int,
    h: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None,
    read_positions: torch.Tensor | int | None = None,
    prefix_kv: torch.Tensor | None = None,
) -> torch.Tensor:
    """Logits ``(B, vocab)`` at ``read_positions`` (default: the last) after patching and resuming.

    ``hidden`` is the base inputs' residual stream after block ``layer`` (from
    :func:`residual_stream`), ``positions`` the patched position of each row, ``h``
    the ``(B, d)`` vectors written there. Gradients flow to ``h`` only.
    ``prefix_kv`` (optional, from :func:`prefix_keys_values`) holds the upper blocks'
    keys and values of the first positions, which are then not recomputed; it must
    not reach past any row's patched or read position.
    """
    arch = architecture(model)
    blocks = arch.blocks(model)
    _check_layer(model, layer, len(blocks))
    if hidden.dim() != 3:
        raise SiteError(f"hidden must be the (batch, seq, width) residual stream, got shape {tuple(hidden.shape)}")
    B, T, d = hidden.shape
    if h.shape != (B, d):
        raise SiteError(f"patched vectors must have shape {(B, d)} to match the residual stream, got {tuple(h.shape)}")
    positions = _check_positions("positions", positions, B, T).to(hidden.device)
    read = _check_positions("read_positions", T - 1 if read_positions is None else read_positions, B, T).to(hidden.device)
    if position_ids is None:
        position_ids = _default_position_ids(T, hidden.device)
    start = int(torch.minimum(positions, read).min()) if B else 0
    context = arch.positions(model, hidden, position_ids)
    upper = blocks[layer:]
    cached = 0
    if prefix_kv is not None and B:
        cached = prefix_kv.shape[-2]
        if prefix_kv.dim() != 6 or prefix_kv.shape[:3] != (B, len(upper), 2):
            raise SiteError(
                f"prefix_kv must be ({B}, {len(upper)}, 2, heads, positions, head_dim) for {B} rows and "
                f"{len(upper)} blocks above layer {layer}, got {tuple(prefix_kv.shape)}"
            )
        if cached > start:
            raise SiteError(f"prefix_kv covers {cached} positions, past the first patched or read position {start}")
    kv = _KeyValues(prefix_kv if cached else None)
    if start > cached:  # positions before the first patch: no autograd, only their keys and values are kept
        _fill_keys_values(arch, upper, hidden, cached, start, attention_mask, context, kv)
    here = (torch.arange(start, T, device=hidden.device)[None, :] == positions[:, None]).unsqueeze(-1)
    x = torch.where(here, h.to(hidden.dtype).unsqueeze(1), hidden[:, start:])
    mask = additive_causal_mask(start, T, T, attention_mask, hidden.dtype, hidden.device)
    ctx = arch.slice_positions(context, start, T)
    for block in upper:
        x = arch.call_block(block, x, mask, ctx, kv)
    x = x[torch.arange(B, device=x.device), read - start]
    return model.get_output_embeddings()(arch.final_norm(model)(x))


def hooked_logits(
    model: nn.Module,
    layer: int,
    input_ids: torch.Tensor,
    positions: torch.Tensor | int,
    h: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None,
    read_positions: torch.Tensor | int | None = None,
) -> torch.Tensor:
    """The general path for any causal LM: a full forward with block ``layer``'s output patched by a hook."""
    blocks = find_blocks(model)
    _check_layer(model, layer, len(blocks))
    B, T = input_ids.shape
    positions = _check_positions("positions", positions, B, T).to(input_ids.device)
    read = _check_positions("read_positions", T - 1 if read_positions is None else read_positions, B, T)
    here = (torch.arange(T, device=input_ids.device)[None, :] == positions[:, None]).unsqueeze(-1)

    def patch(x: torch.Tensor) -> torch.Tensor:
        return torch.where(here, h.to(x.dtype).unsqueeze(1), x)

    if layer == 0:
        def hook(module, args, kwargs):
            if args:
                return (patch(args[0]), *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": patch(kwargs["hidden_states"])}

        handle = blocks[0].register_forward_pre_hook(hook, with_kwargs=True)
    else:
        def hook(module, args, out):
            if isinstance(out, tuple):
                return (patch(out[0]), *out[1:])
            return patch(out)

        handle = blocks[layer - 1].register_forward_hook(hook)
    try:
        kwargs = {"attention_mask": attention_mask}
        if position_ids is not None:
            kwargs["position_ids"] = position_ids
        logits = model(input_ids, **kwargs).logits
    finally:
        handle.remove()
    return logits[torch.arange(B, device=logits.device), read.to(logits.device)]
