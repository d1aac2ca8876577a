"""Identity: the hidden state's own neurons are the coordinates; the partition picks neuron blocks.

Two ways to pick them:

- ``identity`` (``search="fixed"``): the partition's coordinates *are* the neurons
  (``z = h``), as for an oracle network whose blocks are known.
- ``identity:search=greedy``: the neurons are searched, as the paper's identity map
  does (Sutter et al. 2025): each variable's block grows by the one neuron per step
  that most improves the validation score (:mod:`causalab.fit.neuron_search`). The map is
  then a permutation, ``z = h[..., order]``, that puts the chosen neurons at the
  partition's coordinates: partition coordinate ``block_v[t]`` holds the ``t``-th
  neuron chosen for ``v``. It has no trainable parameters; ``fit_alignment`` runs the
  search instead of gradient steps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from causalab.errors import AlignmentError
from causalab.maps.alignment import AlignmentMap
from causalab.maps.intervene import Partition
from causalab.registry import register_alignment

SEARCHES = ("fixed", "greedy")


@register_alignment("identity")
class IdentityMap(AlignmentMap):
    """``phi(h) = h`` on fixed blocks, or ``h[..., order]`` on greedily searched ones. No parameters."""

    tolerance = 0.0

    def __init__(self, width: int, search: str = "fixed") -> None:
        super().__init__(width)
        if search not in SEARCHES:
            raise AlignmentError(f"identity: search must be one of {SEARCHES}, got {search!r}")
        self.search = search
        self.fitting = "search" if search == "greedy" else "gradient"  # the declared capability fit_alignment reads
        self.register_buffer("order", torch.arange(width))
        self.register_buffer("unorder", torch.arange(width))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        self.check_width(h)
        return h if self.search == "fixed" else h[..., self.order]

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        self.check_width(z)
        return z if self.search == "fixed" else z[..., self.unorder]

    def matrix(self) -> torch.Tensor:
        """``M`` with ``phi(h) = h @ M``: the identity, or the permutation that picks the chosen neurons."""
        return torch.eye(self.width)[:, self.order.cpu()]

    def reset(self) -> None:
        """Back to ``z = h`` (no neurons chosen)."""
        self.order.copy_(torch.arange(self.width))
        self.unorder.copy_(self.order)

    def assign(self, partition: Partition, neurons: Mapping[str, Sequence[int]]) -> None:
        """Put ``neurons[v]`` at ``partition[v]``'s coordinates; every other neuron keeps ascending order."""
        order = [-1] * self.width
        for var, coords in partition.blocks.items():
            chosen = list(neurons.get(var, ()))
            if len(chosen) != len(coords):
                raise AlignmentError(f"identity: {len(chosen)} neuron(s) given for {var!r}, whose block has {len(coords)}")
            for c, n in zip(coords, chosen):
                order[c] = int(n)
        taken = [n for n in order if n >= 0]
        if len(set(taken)) != len(taken) or not all(0 <= n < self.width for n in taken):
            raise AlignmentError(f"identity: neurons {dict(neurons)} must be distinct and inside 0..{self.width - 1}")
        rest = iter(n for n in range(self.width) if n not in set(taken))
        order = [n if n >= 0 else next(rest) for n in order]
        self.order.copy_(torch.tensor(order))
        self.unorder.copy_(torch.argsort(self.order))

    def neurons(self, partition: Partition) -> dict[str, list[int]]:
        """The neurons each variable's block stands for."""
        return {v: [int(self.order[c]) for c in coords] for v, coords in partition.blocks.items()}
