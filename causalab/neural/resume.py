"""Resume a causal LM from a patched residual stream: run only the blocks above the site.

The network is frozen, so the residual stream after block ``L`` on the base inputs
is computed once per dataset (:func:`residual_stream`). Each fitting step then
writes the patched vector ``h'`` into that stream at one position per row and runs
blocks ``L+1..N``, the final norm and the unembedding (:func:`resume_logits`).

Savings over a full forward pass, all exact:

* each row's positions before its own first patched (or read) position do not depend
  on ``h'``; they run without autograd and only hand their keys and values to the
  later positions (a key/value cache, as in generation). At the last token this
  leaves one position per row on the autograd tape in each upper block. Those keys and
  values can be computed once per dataset (:func:`prefix_keys_values`) and each step
  then runs from a per-row window of the stream (:func:`resume_window`);
* the positions that do run with autograd go through hand-written blocks
  (:mod:`causalab.neural.architectures`): attention of a few query positions against
  the cached keys, without the Hugging Face attention's per-call overhead;
* the unembedding runs on the read position only, not on every position.

The runtime setting ``compile`` (:class:`~causalab.runtime.RuntimeSettings`; ``--compile``,
``CAUSALAB_COMPILE=1``) runs that last part (the hand-written blocks above the site, the
final norm and the unembedding) through ``torch.compile`` (:func:`compile_resume`, one
per target: ``compiled=`` of :func:`resume_logits` and :func:`resume_window`): its elementwise work (norms,
rotary, GELU, attention against the cached keys, forward and backward) becomes fused
loops instead of one pass over memory per operation. The same logits and gradients to
float32 rounding; it needs a C++ compiler, and each new shape costs a compilation
(10-20 s at the first step, cached on disk for later processes). Off by default.

Families: GPT-NeoX, GPT-2, and the Llama-like ones (Llama, Mistral, Qwen 2/3, OLMo 2,
Gemma 2/3) while a sequence fits in their sliding attention window, if any.
Other architectures use :func:`hooked_logits`, a full forward pass with a forward
hook that patches the block's output: slower, but needs nothing but the blocks.

Layers count as in :class:`~causalab.neural.target.Site`: ``layer=L`` is the
residual stream after block ``L`` (1-based); ``layer=0`` is the embedding output.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from causalab.errors import ArchitectureError, ConfigError, SiteError
from causalab.neural.architectures import (  # noqa: F401  (re-exported: the adapters' public names)
    ARCHITECTURES,
    Architecture,
    GPT2Architecture,
    GPTNeoXArchitecture,
    architecture,
    model_type,
    register_architecture,
    supports_resume,
)
from causalab.runtime import ENV


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


def _check_length(model: nn.Module, arch: Architecture, length: int) -> None:
    """Refuse sequences longer than a sliding attention window: the resume path's masks are plain causal."""
    limit = arch.exact_length(model)
    if limit is not None and length > limit:
        raise ArchitectureError(
            f"{model_type(model)} attends within a sliding window of {limit} positions; the resume path is exact "
            f"for sequences of at most {limit} positions, got {length}: use hooked_logits"
        )


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
    """Keys and values of already-computed positions, per block: the one method Hugging Face blocks call on a cache.

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
    _check_length(model, arch, T)
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
    _check_length(model, arch, T)
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


def _window_mask(starts: torch.Tensor, L: int, S: int, prefix_real: torch.Tensor | None,
                 live_real: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """Additive ``(B, 1, L, S + L)`` mask: row ``r``'s query ``i`` sees cached keys ``< starts[r]`` and new keys ``<= i``.

    ``prefix_real`` ``(B, S)`` and ``live_real`` ``(B, L)`` mark real (not padded) key positions.
    """
    B, device = starts.shape[0], starts.device
    j = torch.arange(L, device=device)
    live = (j[None, :] <= j[:, None])[None].expand(B, L, L)
    if live_real is not None:
        live = live & live_real[:, None, :]
    prefix = torch.arange(S, device=device)[None, :] < starts[:, None]
    if prefix_real is not None:
        prefix = prefix & prefix_real
    allowed = torch.cat([prefix[:, None, :].expand(B, L, S), live], dim=-1)[:, None]
    return torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(~allowed, torch.finfo(dtype).min)


def split_keys_values(prefix_kv: torch.Tensor) -> dict[str, torch.Tensor]:
    """:func:`prefix_keys_values`' ``(B, blocks, 2, heads, P, head_dim)`` as one tensor per block and kind.

    Keys ``keys_<i>`` and ``values_<i>`` (``i`` counts the blocks above the site), each a
    contiguous ``(B, heads, P, head_dim)``: selecting a batch of rows copies each row's
    entries in one piece, and attention reads them without another copy.
    """
    return {f"{kind}_{i}": prefix_kv[:, i, j].contiguous()
            for i in range(prefix_kv.shape[1]) for j, kind in enumerate(("keys", "values"))}


def _prefix_length(prefix_kv: Any, B: int, n_upper: int, layer: int) -> int:
    """Positions ``prefix_kv`` covers (a 6-d tensor or :func:`split_keys_values`' mapping), after checking its shape."""
    if isinstance(prefix_kv, Mapping):
        names = {f"{kind}_{i}" for i in range(n_upper) for kind in ("keys", "values")}
        if set(prefix_kv) != names or any(t.dim() != 4 or t.shape[0] != B for t in prefix_kv.values()):
            raise SiteError(f"prefix_kv must map keys_<i>/values_<i> for the {n_upper} blocks above layer {layer} "
                            f"to ({B}, heads, positions, head_dim) tensors, got {sorted(prefix_kv)}")
        return next(iter(prefix_kv.values())).shape[-2] if n_upper else 0
    if prefix_kv.dim() != 6 or prefix_kv.shape[:3] != (B, n_upper, 2):
        raise SiteError(
            f"prefix_kv must be ({B}, {n_upper}, 2, heads, positions, head_dim) for {B} rows and "
            f"{n_upper} blocks above layer {layer}, got {tuple(prefix_kv.shape)}"
        )
    return prefix_kv.shape[-2]


def _stacked(prefix_kv: Any) -> torch.Tensor:
    if not isinstance(prefix_kv, Mapping):
        return prefix_kv
    n = len(prefix_kv) // 2
    return torch.stack([torch.stack([prefix_kv[f"keys_{i}"], prefix_kv[f"values_{i}"]], 1) for i in range(n)], 1)


def _split_prefix(model: nn.Module, prefix_kv: Any, n_blocks: int, S: int,
                  x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per upper block, the cached ``(keys, values)`` of the first ``S`` positions (empty when ``S == 0``)."""
    if prefix_kv is None or S == 0:
        B, _, d = x.shape
        heads, head_width = architecture(model).key_value_shape(model, d)
        empty = x.new_zeros(B, heads, 0, head_width)
        return [(empty, empty)] * n_blocks
    if isinstance(prefix_kv, Mapping):
        return [(prefix_kv[f"keys_{i}"][..., :S, :], prefix_kv[f"values_{i}"][..., :S, :]) for i in range(n_blocks)]
    return [(prefix_kv[:, i, 0, :, :S], prefix_kv[:, i, 1, :, :S]) for i in range(n_blocks)]


def _resume(model: nn.Module, arch: Architecture, upper: Any, x: torch.Tensor, patch_col: torch.Tensor,
            read_col: torch.Tensor, h: torch.Tensor, past: list, mask: torch.Tensor, context: Any,
            fused: bool) -> torch.Tensor:
    """Write ``h`` at each row's ``patch_col`` of the window ``x``, run ``upper`` on it, read logits at ``read_col``."""
    B, L, _ = x.shape
    here = (torch.arange(L, device=x.device)[None, :] == patch_col[:, None]).unsqueeze(-1)
    x = torch.where(here, h.to(x.dtype).unsqueeze(1), x)
    for block, kv in zip(upper, past):
        x = arch.live_block(block, x, kv, mask, context) if fused else Architecture.live_block(arch, block, x, kv, mask, context)
    x = x[torch.arange(B, device=x.device), read_col]
    return arch.unembed(model, arch.final_norm(model)(x))


def compile_resume() -> Callable[..., torch.Tensor]:
    """A ``torch.compile`` of the resumed blocks (the live blocks, final norm, unembedding), compiled on first call.

    :meth:`~causalab.neural.lm.LMTarget.compiled_resume` keeps one per target; pass it as
    ``compiled=`` to :func:`resume_logits` or :func:`resume_window`.
    """
    return torch.compile(_resume)


def _run_resume(compiled: Callable[..., torch.Tensor] | None, *args: Any) -> torch.Tensor:
    """:func:`_resume`, through ``compiled`` when given (and it is the hand-written ``fused`` path)."""
    if compiled is None or not args[-1]:
        return _resume(*args)
    try:
        return compiled(*args)
    except Exception as exc:
        from torch._dynamo.exc import TorchDynamoException

        failures: tuple[type[BaseException], ...] = (TorchDynamoException,)
        try:
            from torch._inductor.exc import InductorError

            failures += (InductorError,)
        except ImportError:  # pragma: no cover - older torch
            pass
        if not isinstance(exc, failures):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ConfigError(f"runtime setting compile: torch.compile could not compile the resumed blocks "
                          f"({type(exc).__name__}: {first[:300]}); it needs a working C++ compiler. "
                          f"Turn compile off (unset {ENV['compile']} or set it to 0, drop --compile) to run them "
                          "eagerly") from None


def _check_h(h: torch.Tensor, B: int, d: int) -> None:
    if h.shape != (B, d):
        raise SiteError(f"patched vectors must have shape {(B, d)} to match the residual stream, got {tuple(h.shape)}")


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
    *,
    fused: bool = True,
    compiled: Callable[..., torch.Tensor] | None = None,
) -> torch.Tensor:
    """Logits ``(B, vocab)`` at ``read_positions`` (default: the last) after patching and resuming.

    ``hidden`` is the base inputs' residual stream after block ``layer`` (from
    :func:`residual_stream`), ``positions`` the patched position of each row, ``h``
    the ``(B, d)`` vectors written there. Gradients flow to ``h`` only, and only
    through each row's own positions from ``min(patched, read)`` to ``read``; the
    positions before run without autograd. ``prefix_kv`` (optional, from
    :func:`prefix_keys_values`) holds the upper blocks' keys and values of the first
    positions, which are then not recomputed (a row reads only the entries before its
    own first patched or read position). ``fused=False`` runs the Hugging Face blocks
    instead of :meth:`Architecture.live_block`'s hand-written ones (same logits);
    ``compiled`` (:func:`compile_resume`) runs the hand-written ones compiled.
    """
    arch = architecture(model)
    blocks = arch.blocks(model)
    _check_layer(model, layer, len(blocks))
    if hidden.dim() != 3:
        raise SiteError(f"hidden must be the (batch, seq, width) residual stream, got shape {tuple(hidden.shape)}")
    B, T, d = hidden.shape
    _check_length(model, arch, T)
    _check_h(h, B, d)
    positions = _check_positions("positions", positions, B, T).to(hidden.device)
    read = _check_positions("read_positions", T - 1 if read_positions is None else read_positions, B, T).to(hidden.device)
    if position_ids is None:
        position_ids = _default_position_ids(T, hidden.device)
    upper = blocks[layer:]
    starts = torch.minimum(positions, read)
    S = int(starts.max()) if B else 0
    cached = _prefix_length(prefix_kv, B, len(upper), layer) if prefix_kv is not None and B else 0
    if S > cached and len(upper):  # positions no row has cached: no autograd, only their keys and values are kept
        kv = _KeyValues(_stacked(prefix_kv) if cached else None)
        _fill_keys_values(arch, upper, hidden, cached, S, attention_mask, arch.positions(model, hidden, position_ids), kv)
        past = list(kv.store.values())
    else:
        past = _split_prefix(model, prefix_kv, len(upper), S, hidden)
    L = int((read - starts).max()) + 1 if B else 1
    cols = (starts[:, None] + torch.arange(L, device=hidden.device)[None, :]).clamp(max=T - 1)
    x = hidden.gather(1, cols.unsqueeze(-1).expand(B, L, d))
    context = arch.positions(model, x, position_ids.expand(B, T).gather(1, cols))
    real = None if attention_mask is None else attention_mask.bool()
    mask = _window_mask(starts, L, S, None if real is None else real[:, :S],
                        None if real is None else real.gather(1, cols), hidden.dtype)
    return _run_resume(compiled, model, arch, upper, x, positions - starts, read - starts, h, past, mask, context, fused)


def resume_window(
    model: nn.Module,
    layer: int,
    window: torch.Tensor,
    starts: torch.Tensor,
    positions: torch.Tensor,
    h: torch.Tensor,
    read_positions: torch.Tensor,
    prefix_kv: torch.Tensor | None = None,
    *,
    fused: bool = True,
    compiled: Callable[..., torch.Tensor] | None = None,
) -> torch.Tensor:
    """:func:`resume_logits` from each row's own slice of the stream and its own cached prefix (no padding mask).

    ``window`` ``(B, W, d)`` holds the residual stream after block ``layer`` at positions
    ``starts[r] .. starts[r] + W - 1`` of row ``r``; ``prefix_kv`` the upper blocks' keys
    and values at positions ``0 .. P - 1`` with ``P >= starts.max()`` (row ``r`` reads
    its first ``starts[r]``). Each row must start at or before its patched and read
    positions, and its window must reach its read position. This is what a fitting
    step runs on :meth:`~causalab.neural.lm.LMTarget.resume_cache`'s cache: at the
    last token, one position per row and upper block.
    """
    arch = architecture(model)
    blocks = arch.blocks(model)
    _check_layer(model, layer, len(blocks))
    if window.dim() != 3:
        raise SiteError(f"window must be (batch, positions, width), got shape {tuple(window.shape)}")
    B, W, d = window.shape
    _check_h(h, B, d)
    starts, positions, read = (torch.as_tensor(t, dtype=torch.long, device=window.device).expand(B)
                               for t in (starts, positions, read_positions))
    upper = blocks[layer:]
    S = int(starts.max()) if B else 0
    if B and (bool((starts > torch.minimum(positions, read)).any()) or int((read - starts).max()) >= W
              or int(starts.min()) < 0):
        raise SiteError(f"every row's window (width {W}) must start at or before its patched and read positions "
                        f"and reach its read position; got starts {starts.tolist()}, patched {positions.tolist()}, "
                        f"read {read.tolist()}")
    cached = _prefix_length(prefix_kv, B, len(upper), layer) if prefix_kv is not None and B else 0
    if len(upper) and cached < S:
        raise SiteError(f"prefix_kv covers {cached} positions; rows start as late as position {S}")
    L = int((read - starts).max()) + 1 if B else 1
    _check_length(model, arch, S + L)
    x = window[:, :L]
    context = arch.positions(model, x, starts[:, None] + torch.arange(L, device=window.device)[None, :])
    mask = _window_mask(starts, L, S, None, None, window.dtype)
    past = _split_prefix(model, prefix_kv, len(upper), S, window)
    return _run_resume(compiled, model, arch, upper, x, positions - starts, read - starts, h, past, mask, context, fused)


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
