"""Orthogonal rotation (distributed alignment search, DAS), full or low-rank.

Full: ``z = h @ Q`` with ``Q`` a learnt ``width x width`` orthogonal matrix (torch's
orthogonal parametrization through the Cayley map, which stays orthogonal to float32
precision where the matrix exponential drifts by ~1e-5), ``h = z @ Q.T``.

Low-rank (``rank=k``): only ``k`` orthonormal columns ``R`` are learnt (``width * k``
parameters). The remaining coordinates are an orthonormal basis of the complement,
obtained by a QR step that is differentiable in ``R``, so ``phi`` stays an exact
rotation and partitions must lie within the first ``k`` coordinates.

A known matrix is loaded with :meth:`RotationMap.set_matrix` (or built with
:meth:`RotationMap.from_matrix`). The Cayley map cannot be inverted onto every
orthogonal matrix (none with eigenvalue -1, so no reflection), so the map keeps the
given matrix as a fixed ``base`` and learns on from it: ``Q = base @ cayley(A)`` with
``A`` reset to zero, where ``cayley(0)`` is exactly the identity. The learnt columns
then equal the given ones to the bit, and fitting on continues as a rotation.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import orthogonal

from causalab.errors import AlignmentError
from causalab.maps.alignment import AlignmentMap
from causalab.registry import register_alignment

# largest entry of |Q^T Q - I| a loaded matrix may have: the float32 round-trip tolerance of the map
ORTHOGONALITY_TOLERANCE = 1e-5


@register_alignment("rotation")
class RotationMap(AlignmentMap):
    """DAS rotation. Knob ``rank``: 0 (default) for a full rotation, else the learnt subspace's dimension."""

    def __init__(self, width: int, rank: int = 0) -> None:
        super().__init__(width)
        if not isinstance(rank, int) or rank < 0 or rank > width:
            raise AlignmentError(f"rotation: rank must be an integer in [0, {width}] (0 = full), got {rank!r}")
        self.rank = rank if 0 < rank < width else 0
        k = self.rank or width
        # weight: (k, width), orthonormal rows
        self.layer = orthogonal(nn.Linear(width, k, bias=False), orthogonal_map="cayley", use_trivialization=False)
        if self.rank:
            g = torch.Generator().manual_seed(width * 7919 + k)
            self.register_buffer("_complement_seed", torch.randn(width, width - k, generator=g))
        # a loaded matrix (set_matrix): the learnt columns are base @ (the parametrized columns)
        self.register_buffer("base", None)
        self.register_load_state_dict_pre_hook(self._make_room_for_base)

    @property
    def swappable(self) -> int:
        return self.rank or self.width

    def _columns(self) -> torch.Tensor:
        """The learnt orthonormal columns, ``(width, swappable)``."""
        r = self.layer.weight.T
        return r if self.base is None else self.base.to(r.dtype) @ r

    def _complement(self, r: torch.Tensor) -> torch.Tensor:
        """An orthonormal basis of the complement of ``span(r)``, ``(width, width - rank)``."""
        # project span(R) out twice, in float64: R is orthonormal only to float32 precision,
        # and one pass leaves an overlap that the QR step amplifies
        r64 = r.double()
        rest = self._complement_seed.double()
        for _ in range(2):
            rest = rest - r64 @ (r64.T @ rest)
        c, _ = torch.linalg.qr(rest, mode="reduced")
        return c.to(r.dtype)

    def matrix(self) -> torch.Tensor:
        """The full ``width x width`` orthogonal matrix ``Q`` (columns are the new coordinates)."""
        r = self._columns()  # (width, k)
        if not self.rank:
            return r
        return torch.cat([r, self._complement(r)], dim=1)

    def orthonormal_columns(self) -> torch.Tensor:
        return self._columns()  # the learnt columns; a low-rank map's complement is never swapped

    @torch.no_grad()
    def set_matrix(self, q: torch.Tensor) -> RotationMap:
        """Make the map's learnt columns exactly ``q`` (and fit on from there).

        ``q`` is ``(width, width)`` orthogonal for a full rotation, ``(width, rank)`` with
        orthonormal columns for a low-rank one. Raises :class:`AlignmentError` naming the
        expected shape, or the orthogonality error found (allowed: ``ORTHOGONALITY_TOLERANCE``).
        """
        k = self.swappable
        what = "an orthogonal (width, width) matrix" if not self.rank else f"(width, {k}) orthonormal columns"
        if not isinstance(q, torch.Tensor):
            raise AlignmentError(f"rotation: set_matrix takes a tensor ({what}), got {type(q).__name__}")
        if tuple(q.shape) != (self.width, k):
            raise AlignmentError(
                f"rotation of width {self.width}{f' and rank {k}' if self.rank else ''} takes {what}, "
                f"shape {(self.width, k)}; got shape {tuple(q.shape)}"
            )
        if not q.is_floating_point() or not bool(torch.isfinite(q).all()):
            raise AlignmentError("rotation: set_matrix needs a finite floating-point matrix")
        dtype = self.layer.parametrizations.weight.original.dtype
        q = q.detach().to(dtype=dtype, device=self.layer.parametrizations.weight.original.device)
        q64 = q.double()
        error = float((q64.T @ q64 - torch.eye(k, dtype=torch.float64, device=q.device)).abs().max())
        if error > ORTHOGONALITY_TOLERANCE:
            raise AlignmentError(
                f"rotation: the matrix's columns are not orthonormal (largest entry of |Q^T Q - I| is {error:.2e}, "
                f"allowed {ORTHOGONALITY_TOLERANCE:g}); orthonormalise it first, e.g. torch.linalg.qr"
            )
        base = q if not self.rank else torch.cat([q, self._complement(q)], dim=1)
        self.layer.parametrizations.weight.original.zero_()  # cayley(0) is the identity, exactly
        self.base = base.clone()
        return self

    @classmethod
    def from_matrix(cls, q: torch.Tensor) -> RotationMap:
        """A rotation whose learnt columns are ``q``: ``(width, width)`` for a full rotation, ``(width, k)`` for rank ``k``."""
        if not isinstance(q, torch.Tensor) or q.dim() != 2 or q.shape[1] > q.shape[0] or q.shape[1] < 1:
            shape = tuple(q.shape) if isinstance(q, torch.Tensor) else type(q).__name__
            raise AlignmentError(f"rotation: from_matrix takes a (width, k) matrix with 1 <= k <= width, got {shape}")
        width, k = q.shape
        phi = cls(width, rank=0 if k == width else k)
        if q.is_floating_point():
            phi = phi.to(q.dtype)
        phi.spec = "rotation" if k == width else f"rotation:rank={k}"
        return phi.set_matrix(q)

    def _make_room_for_base(self, module, state_dict, prefix, *args) -> None:
        """Loading the state of a map with a loaded matrix into a fresh map: allocate its ``base``."""
        saved = state_dict.get(prefix + "base")
        if saved is not None and self.base is None:
            self.base = torch.empty_like(saved)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        self.check_width(h)
        return h @ self.matrix().to(h.dtype)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        self.check_width(z)
        return z @ self.matrix().to(z.dtype).T
