"""The protocol every alignment-map family implements.

An alignment map ``phi : R^d -> R^d`` is invertible. Families subclass
:class:`AlignmentMap` (an ``nn.Module``), take the hidden width first and their
complexity knobs as keyword arguments, and implement ``forward`` and ``inverse``
on tensors of shape ``(..., width)``.

What a user inspects on any fitted map, whatever its family: ``spec`` (the spec string
it was built from, e.g. ``"rotation:rank=4"``; set by :func:`causalab.make_alignment`),
``matrix()`` (the ``(width, width)`` matrix ``M`` of a linear map, ``phi(h) = h @ M``;
``None`` for a non-linear one), ``num_parameters``, ``swappable`` and ``describe()``.
"""

from __future__ import annotations

import torch
from torch import nn

from causalab.errors import AlignmentError


class AlignmentMap(nn.Module):
    """Base class: ``forward(h) -> z``, ``inverse(z) -> h``, ``num_parameters``.

    ``swappable`` is the number of leading coordinates of ``z`` that carry learnt
    features (a low-rank map's rank); partitions must lie inside it.
    ``tolerance`` is the round-trip error ``inverse(forward(h))`` is held to in
    float32, relative to the scale of ``h``. ``constructed`` declares a map that is
    built, not fitted (see :func:`causalab.construct_alignment`).
    """

    tolerance: float = 1e-5
    # a map built from the pairs it is scored on instead of fitted (the paper's Theorem 1,
    # ``alignments/constructed.py``): causalab.measure builds it with causalab.construct_alignment
    constructed: bool = False

    def __init__(self, width: int) -> None:
        super().__init__()
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise AlignmentError(f"{type(self).__name__}: width must be a positive integer, got {width!r}")
        self.width = width
        # the spec string the map was built from (``family:knob=value,...``): set by make_alignment,
        # read by causalab.save_alignment to rebuild the map; None for a map built by its constructor
        self.spec: str | None = None

    @property
    def swappable(self) -> int:
        return self.width

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def inverse(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def orthonormal_columns(self) -> torch.Tensor | None:
        """For a map that is an orthogonal matrix, ``phi(h) = h @ Q``: the columns of ``Q`` for
        the swappable coordinates, shape ``(width, swappable)``. ``None`` for every other map.

        :func:`causalab.interchange` uses it to swap by projection instead of running the map.
        """
        return None

    def matrix(self) -> torch.Tensor | None:
        """For a linear map ``phi(h) = h @ M``: the ``(width, width)`` matrix ``M``. ``None`` for a non-linear map.

        The identity gives the identity matrix, a rotation its orthogonal matrix (a low-rank
        rotation's learnt columns first, then the complement it completes them with).
        """
        return None

    @property
    def num_parameters(self) -> int:
        """Trainable parameter count: the map's complexity."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def check_width(self, h: torch.Tensor) -> None:
        if h.shape[-1] != self.width:
            raise AlignmentError(
                f"{type(self).__name__} has width {self.width} but got a hidden state of width {h.shape[-1]}"
            )

    def describe(self) -> str:
        return f"{type(self).__name__}(width={self.width}, params={self.num_parameters})"
