"""Identity: the hidden state's own neurons are the coordinates; the partition picks neuron blocks."""

from __future__ import annotations

import torch

from causalab.alignment import AlignmentMap
from causalab.registry import register_alignment


@register_alignment("identity")
class IdentityMap(AlignmentMap):
    """``phi(h) = h``. No parameters; nothing to fit. Variables map to chosen neurons."""

    tolerance = 0.0

    def __init__(self, width: int) -> None:
        super().__init__(width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        self.check_width(h)
        return h

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        self.check_width(z)
        return z

    def matrix(self) -> torch.Tensor:
        return torch.eye(self.width)
