"""`Target`: a frozen network and the sites where it can be intervened on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from causalab.neural.resume_cache import ResumeCache
from causalab.runtime import RuntimeSettings


@dataclass(frozen=True)
class Site:
    """Where in a network a hidden state is read and patched.

    ``layer`` counts from 1 (the first hidden layer / first block's output).
    ``position`` names a token position for sequence models (``"last"``, an int, or a
    task-defined name); it is ``None`` for MLPs. ``component`` names what is read
    (``"block_output"``: an MLP hidden layer's activation or a transformer's residual stream;
    language models also offer ``"attention_output"``, ``"mlp_output"`` and attention heads
    ``"heads:3"`` / ``"heads:0,5"``, see :mod:`causalab.neural.components`).
    """

    layer: int
    position: str | int | None = None
    component: str = "block_output"

    def __str__(self) -> str:
        pos = "" if self.position is None else f"@{self.position}"
        part = "" if self.component == "block_output" else f"/{self.component}"
        return f"layer{self.layer}{pos}{part}"


class Target(nn.Module):
    """A frozen network. Subclasses implement ``hidden`` and ``patched_logits``.

    ``hidden(inputs, site)`` returns the ``(batch, width)`` hidden state at ``site``;
    ``patched_logits(inputs, site, h)`` runs ``inputs`` with the hidden state at
    ``site`` replaced by ``h`` and returns the logits the task scores. A target whose
    :meth:`resume_cache` returns a cache also takes it, rows as ``inputs``, as the
    keyword ``resume`` of both (the fitting code passes it only when there is one).
    ``positions`` are the named token positions the network itself knows (none for an MLP;
    ``"last"`` for a language model); a task marks its own (:attr:`causalab.Task.positions`).
    """

    positions: tuple[str, ...] = ()

    def sites(self) -> list[Site]:  # pragma: no cover - abstract
        raise NotImplementedError

    def check_site(self, site: Site) -> Site:  # pragma: no cover - abstract
        raise NotImplementedError

    def width(self, site: Site) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def hidden(self, inputs: Any, site: Site) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def patched_logits(self, inputs: Any, site: Site, h: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def logits(self, inputs: Any) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, inputs: Any) -> torch.Tensor:
        """``target(inputs)`` is ``target.logits(inputs)``: what a wrapper such as pyvene's ``IntervenableModel`` calls."""
        return self.logits(inputs)

    def resume_cache(self, inputs: Any, site: Site, runtime: RuntimeSettings | None = None) -> ResumeCache | None:
        """What ``patched_logits`` needs to resume from ``site`` without recomputing below it, or ``None``.

        Called once per dataset by :func:`causalab.fit.fitting.prepare` on the base inputs,
        which carry it beside them (:class:`~causalab.fit.fitting.PreparedPairs`) and hand
        each batch's rows of it to ``hidden`` and ``patched_logits`` as ``resume=``;
        ``runtime`` bounds what is kept (:class:`~causalab.runtime.RuntimeSettings`). The
        default caches nothing (an MLP's upper layers read only the patched state).
        """
        return None

    def freeze(self) -> Target:
        for p in self.parameters():
            p.requires_grad_(False)
        return self.eval()

    def fingerprint(self) -> torch.Tensor:
        """A cheap checksum of every weight, to verify the network is unchanged."""
        vals = [p.detach().double().sum() + p.detach().double().abs().sum() for p in self.parameters()]
        return torch.stack(vals) if vals else torch.zeros(0, dtype=torch.float64)
