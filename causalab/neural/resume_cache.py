"""What a target keeps per dataset so that a fitting step resumes above the site: a typed cache.

:meth:`~causalab.neural.target.Target.resume_cache` builds it once per dataset (the
network is frozen); :class:`~causalab.fit.fitting.PreparedPairs` carries it beside the base
inputs, selects its rows with theirs, and hands it to ``hidden`` and ``patched_logits``
as ``resume=``. An LM keeps one of three things (:meth:`ResumeCache.kind`):

- ``"window"``: each row's residual stream after the site's block from its first patched
  or read position ``starts[r]`` to its read position, and the upper blocks' keys and
  values before it (one contiguous tensor per block and kind, ``keys_<i>``/``values_<i>``);
- ``"stream"``: the whole residual stream after the site's block;
- ``"recompute"``: nothing; each step recomputes the stream without autograd.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

KINDS = ("window", "stream", "recompute")


def take_rows(t: torch.Tensor, idx: torch.Tensor | slice) -> torch.Tensor:
    """Rows ``idx`` of ``t``: one copy per row for an index tensor, a view for a slice."""
    if isinstance(idx, torch.Tensor) and idx.dim() == 1 and not idx.is_floating_point() and idx.dtype != torch.bool:
        return t.index_select(0, idx.to(t.device))
    return t[idx]


@dataclass(frozen=True, eq=False)
class ResumeCache:
    """A dataset's resume state at one site's block (``layer``); rows first in every tensor.

    ``stream`` is ``(B, W, d)`` (windows from ``starts``, ``(B,)``) or ``(B, T, d)`` (the whole
    stream, ``starts`` is ``None``), or ``None`` when each step recomputes it;
    ``keys_values`` maps ``keys_<i>``/``values_<i>`` (``i`` counts the blocks above the
    site) to ``(B, key/value heads, P, head width)`` tensors, or is empty. ``compile``:
    steps on this cache run the resumed blocks through ``torch.compile`` (the runtime
    setting it was built with, :class:`~causalab.runtime.RuntimeSettings`).
    """

    layer: int
    stream: torch.Tensor | None = None
    starts: torch.Tensor | None = None
    keys_values: dict[str, torch.Tensor] = field(default_factory=dict)
    compile: bool = False

    def __post_init__(self) -> None:
        if self.starts is not None and self.stream is None:
            raise ValueError("ResumeCache: window starts without a stream")
        if self.keys_values and self.starts is None:
            raise ValueError("ResumeCache: cached keys and values belong to a windowed stream (give starts)")

    @property
    def kind(self) -> str:
        """``"window"``, ``"stream"`` or ``"recompute"`` (see the module's docstring)."""
        if self.stream is None:
            return "recompute"
        return "stream" if self.starts is None else "window"

    def serves(self, layer: int) -> bool:
        """Whether this cache was built for the block output of ``layer``."""
        return self.layer == layer

    def rows(self, idx: torch.Tensor | slice) -> ResumeCache:
        """The cache of rows ``idx`` (each tensor's rows, selected as the inputs' rows are)."""
        pick = lambda t: None if t is None else take_rows(t, idx)  # noqa: E731
        return ResumeCache(self.layer, pick(self.stream), pick(self.starts),
                           {k: take_rows(v, idx) for k, v in self.keys_values.items()}, self.compile)

    def to(self, device: torch.device | str) -> ResumeCache:
        """The cache on ``device``."""
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return ResumeCache(self.layer, move(self.stream), move(self.starts),
                           {k: v.to(device) for k, v in self.keys_values.items()}, self.compile)

    def nbytes(self) -> int:
        """Bytes the cache holds."""
        tensors = [t for t in (self.stream, self.starts) if t is not None] + list(self.keys_values.values())
        return sum(t.numel() * t.element_size() for t in tensors)
