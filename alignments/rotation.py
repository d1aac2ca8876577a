"""Orthogonal rotation (distributed alignment search, DAS), full or low-rank.

Full: ``z = h @ Q`` with ``Q`` a learnt ``width x width`` orthogonal matrix (torch's
orthogonal parametrization through the Cayley map, which stays orthogonal to float32
precision where the matrix exponential drifts by ~1e-5), ``h = z @ Q.T``.

Low-rank (``rank=k``): only ``k`` orthonormal columns ``R`` are learnt (``width * k``
parameters). The remaining coordinates are an orthonormal basis of the complement,
obtained by a QR step that is differentiable in ``R``, so ``phi`` stays an exact
rotation and partitions must lie within the first ``k`` coordinates.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import orthogonal

from causalab.alignment import AlignmentMap
from causalab.errors import AlignmentError
from causalab.registry import register_alignment


@register_alignment("rotation")
class RotationMap(AlignmentMap):
    """DAS rotation. Knob ``rank``: 0 (default) for a full rotation, else the learnt subspace's dimension."""

    def __init__(self, width: int, rank: int = 0) -> None:
        super().__init__(width)
        if not isinstance(rank, int) or rank < 0 or rank > width:
            raise AlignmentError(f"rotation: rank must be an integer in [0, {width}] (0 = full), got {rank!r}")
        self.rank = rank if 0 < rank < width else 0
        k = self.rank or width
        self.layer = orthogonal(nn.Linear(width, k, bias=False), orthogonal_map="cayley", use_trivialization=False)  # weight: (k, width), orthonormal rows
        if self.rank:
            g = torch.Generator().manual_seed(width * 7919 + k)
            self.register_buffer("_complement_seed", torch.randn(width, width - k, generator=g))

    @property
    def swappable(self) -> int:
        return self.rank or self.width

    def matrix(self) -> torch.Tensor:
        """The full ``width x width`` orthogonal matrix ``Q`` (columns are the new coordinates)."""
        r = self.layer.weight.T  # (width, k)
        if not self.rank:
            return r
        # project span(R) out twice, in float64: R is orthonormal only to float32 precision,
        # and one pass leaves an overlap that the QR step amplifies
        r64 = r.double()
        rest = self._complement_seed.double()
        for _ in range(2):
            rest = rest - r64 @ (r64.T @ rest)
        c, _ = torch.linalg.qr(rest, mode="reduced")
        c = c.to(r.dtype)
        return torch.cat([r, c], dim=1)

    def orthonormal_columns(self) -> torch.Tensor:
        return self.layer.weight.T  # the learnt columns; a low-rank map's complement is never swapped

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        self.check_width(h)
        return h @ self.matrix().to(h.dtype)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        self.check_width(z)
        return z @ self.matrix().to(z.dtype).T
