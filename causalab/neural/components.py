"""Sites inside a transformer block: the attention output, the MLP output, and attention heads.

A site's ``component`` names what is read and patched at a block:

- ``"block_output"``: the residual stream after the block (the default; the fast resume path);
- ``"attention_output"``: the attention sub-layer's output, before it joins the residual stream;
- ``"mlp_output"``: the MLP sub-layer's output;
- ``"heads:3"`` or ``"heads:0,5"``: the outputs of those attention heads (the per-head
  values the attention's output projection mixes), concatenated head by head.

Modules are resolved from the model itself, not from a per-architecture table: the
block's child whose class is an attention (``...Attention``) or an MLP (``...MLP``);
the attention's output projection is the last linear layer a forward pass calls, and
the head width is that projection's input width (read by running) over the model's
head count. Every architecture whose blocks have such children is covered (GPT-NeoX,
GPT-2, Llama, ...). These sites run through hooks on the full forward pass (the resume
fast path is exact only for the residual stream).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from causalab.errors import SiteError

COMPONENTS = ("block_output", "attention_output", "mlp_output", "heads:H[,H...]")


@dataclass(frozen=True)
class Component:
    """A parsed component name: its kind and, for heads, which heads."""

    kind: str  # block_output | attention_output | mlp_output | heads
    heads: tuple[int, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Component:
        if not isinstance(text, str):
            raise SiteError(f"a component is a string, one of {list(COMPONENTS)}; got {text!r}")
        name, _, rest = text.partition(":")
        if name in ("block_output", "attention_output", "mlp_output") and not rest:
            return cls(name)
        if name == "heads":
            try:
                heads = tuple(int(h) for h in rest.split(",") if h.strip())
            except ValueError:
                heads = ()
            if not heads or len(set(heads)) != len(heads) or min(heads) < 0:
                raise SiteError(f"component {text!r}: give distinct head indices >= 0, e.g. 'heads:3' or 'heads:0,5'")
            return cls("heads", heads)
        raise SiteError(f"unknown component {text!r}; LM targets offer {', '.join(COMPONENTS)}")


def _child(block: nn.Module, marker: str, what: str) -> nn.Module:
    found = [c for c in block.children() if marker in type(c).__name__]
    if len(found) != 1:
        kinds = ", ".join(type(c).__name__ for c in block.children())
        raise SiteError(f"cannot find the block's {what} (a child whose class names {marker!r}); its children: {kinds}")
    return found[0]


def _linear(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or (type(module).__name__ == "Conv1D" and hasattr(module, "nf"))


class BlockParts:
    """The modules of one model's blocks that component sites hook, and the head layout, read once by running."""

    def __init__(self, model: nn.Module, blocks: nn.ModuleList, heads: int | None) -> None:
        self.blocks = blocks
        self.heads = heads
        self.attention = [_child(b, "Attention", "attention") for b in blocks]
        self.mlp = [_child(b, "MLP", "MLP") for b in blocks]
        self.out_proj = self._output_projection(model)
        d = self._width_into(model, self.out_proj)
        if heads is None or heads < 1 or d % heads:
            raise SiteError(f"cannot split the attention output projection's {d} inputs into heads "
                            f"(the model's config gives {heads!r} heads)")
        self.head_width = d // heads

    def _output_projection(self, model: nn.Module) -> nn.Module:
        """The last linear layer the first block's attention calls in a forward pass."""
        calls: list[nn.Module] = []
        hooks = [m.register_forward_hook(lambda mod, a, o: calls.append(mod))
                 for m in self.attention[0].modules() if _linear(m)]
        try:
            _dry_forward(model)
        finally:
            for h in hooks:
                h.remove()
        if not calls:
            raise SiteError(f"the attention module {type(self.attention[0]).__name__} calls no linear layer")
        return calls[-1]

    @staticmethod
    def _width_into(model: nn.Module, module: nn.Module) -> int:
        got: dict[str, int] = {}

        def width(mod: nn.Module, args: tuple[Any, ...]) -> None:
            got.setdefault("d", args[0].shape[-1])

        handle = module.register_forward_pre_hook(width)
        try:
            _dry_forward(model)
        finally:
            handle.remove()
        return int(got["d"])

    def projections(self) -> list[nn.Module]:
        """Each block's attention output projection (same attribute path as the first block's)."""
        first = self.attention[0]
        name = next(n for n, m in first.named_modules() if m is self.out_proj)
        return [a.get_submodule(name) for a in self.attention]

    def width(self, component: Component, block_width: int) -> int:
        if component.kind == "heads":
            bad = [h for h in component.heads if h >= self.heads]
            if bad:
                raise SiteError(f"head(s) {bad} do not exist: this model has heads 0..{self.heads - 1}")
            return len(component.heads) * self.head_width
        return block_width


def _dry_forward(model: nn.Module) -> None:
    p = next(model.parameters())
    with torch.no_grad():
        model(input_ids=torch.zeros(1, 2, dtype=torch.long, device=p.device), use_cache=False)


def hook(parts: BlockParts, component: Component, layer: int, pos: torch.Tensor,
         read: Callable[[torch.Tensor], None] | None = None, value: torch.Tensor | None = None):
    """Register the hook that reads (``read``) or replaces (``value``) the component at rows' ``pos``.

    Returns the hook handle. Heads hook the output projection's input; the sub-layers their output.
    """
    if component.kind == "heads":
        idx = torch.tensor(component.heads)
        hd = parts.head_width

        def pre(module: nn.Module, args: tuple[Any, ...]):
            x = args[0]
            rows = torch.arange(x.shape[0], device=x.device)
            at = x[rows, pos].view(x.shape[0], parts.heads, hd)
            if read is not None:
                read(at[:, idx].reshape(x.shape[0], -1))
                return None
            at = at.clone()
            at[:, idx] = value.to(x.dtype).view(x.shape[0], len(idx), hd)
            return (x.index_put((rows, pos), at.view(x.shape[0], -1)), *args[1:])

        return parts.projections()[layer - 1].register_forward_pre_hook(pre)

    module = parts.attention[layer - 1] if component.kind == "attention_output" else parts.mlp[layer - 1]

    def post(module: nn.Module, args: tuple[Any, ...], output: Any):
        hs = output[0] if isinstance(output, tuple) else output
        rows = torch.arange(hs.shape[0], device=hs.device)
        if read is not None:
            read(hs[rows, pos])
            return None
        hs = hs.index_put((rows, pos), value.to(hs.dtype))
        return (hs, *output[1:]) if isinstance(output, tuple) else hs

    return module.register_forward_hook(post)
