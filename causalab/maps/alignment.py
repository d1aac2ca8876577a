"""The protocol every alignment-map family implements.

An alignment map ``phi : R^d -> R^d`` is invertible. Families subclass
:class:`AlignmentMap` (an ``nn.Module`` and an abstract base class), take the hidden
width first and their complexity knobs as keyword arguments, and implement ``forward``
and ``inverse`` on tensors of shape ``(..., width)``; a family that leaves either out
fails at construction with an :class:`~causalab.errors.AlignmentError` naming it.

Optional capabilities are declared on the base class with defaults, never discovered:

- ``fit_statistics(h)``: statistics fitted on the training base states before the first
  step (a standardisation); a no-op by default.
- ``fitting``: how :func:`causalab.fit_alignment` fits the map, ``"gradient"`` (gradient
  steps on its trainable parameters; a map without any is only scored) or ``"search"``
  (a greedy search over neurons, through ``reset()`` and ``assign()``, which such a map
  implements).
- ``constructed``: a map built from the pairs it is scored on, not fitted.

What a user inspects on any fitted map, whatever its family: ``spec`` (the spec string
it was built from, e.g. ``"rotation:rank=4"``; set by :func:`causalab.make_alignment`),
``matrix()`` (the ``(width, width)`` matrix ``M`` of a linear map, ``phi(h) = h @ M``;
``None`` for a non-linear one), ``num_parameters``, ``swappable`` and ``describe()``.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from causalab.errors import AlignmentError

FITTINGS = ("gradient", "search")


class AlignmentMap(nn.Module, metaclass=ABCMeta):
    """Base class: ``forward(h) -> z``, ``inverse(z) -> h``, ``num_parameters``.

    ``swappable`` is the number of leading coordinates of ``z`` that carry learnt
    features (a low-rank map's rank); partitions must lie inside it.
    ``tolerance`` is the round-trip error ``inverse(forward(h))`` is held to in
    float32, relative to the scale of ``h``. ``constructed`` declares a map that is
    built, not fitted (see :func:`causalab.construct_alignment`); ``fitting`` says how
    a fitted one is fitted (``"gradient"`` or ``"search"``).
    """

    tolerance: float = 1e-5
    # a map built from the pairs it is scored on instead of fitted (the paper's Theorem 1,
    # ``alignments/constructed.py``): causalab.measure builds it with causalab.construct_alignment
    constructed: bool = False
    # how fit_alignment fits the map: "gradient" (Adam on its trainable parameters; none: only scored)
    # or "search" (a greedy neuron search: reset(), then assign() with the chosen neurons)
    fitting: str = "gradient"

    def __new__(cls, *args: object, **kwargs: object) -> AlignmentMap:
        missing = sorted(getattr(cls, "__abstractmethods__", ()))
        if missing:
            raise AlignmentError(
                f"{cls.__name__} does not implement {', '.join(missing)}: an AlignmentMap family implements "
                "forward(h) -> z and inverse(z) -> h on tensors of shape (..., width)"
            )
        return super().__new__(cls)

    def __init__(self, width: int) -> None:
        super().__init__()
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise AlignmentError(f"{type(self).__name__}: width must be a positive integer, got {width!r}")
        self.width = width
        # the spec string the map was built from (``family:knob=value,...``): set by make_alignment,
        # read by causalab.save_alignment to rebuild the map; None for a map built by its constructor
        self.spec: str | None = None

    @classmethod
    def example_knobs(cls, width: int) -> dict[str, list[Any]]:
        """Valid values per knob for the property-testing kit (:mod:`causalab.testing`), simplest first.

        Knobs left out are drawn from their defaults and annotations; a family whose knobs
        constrain each other (a rank at most the width) lists them here.
        """
        return {}

    @property
    def swappable(self) -> int:
        return self.width

    @abstractmethod
    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """``z = phi(h)`` on ``(..., width)``."""

    @abstractmethod
    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """``h = phi^-1(z)`` on ``(..., width)``."""

    def fit_statistics(self, h: torch.Tensor, refit: bool = False) -> None:
        """Fit statistics (a standardisation's mean and spread) on hidden states ``h`` before fitting.

        :func:`causalab.fit_alignment` calls it with the training base states. A no-op
        unless a family keeps statistics; ``refit`` replaces statistics already fitted.
        """

    def reset(self) -> None:
        """Forget the neurons a search chose (maps with ``fitting = "search"``)."""
        raise AlignmentError(f"{type(self).__name__} is not fitted by a neuron search (fitting={self.fitting!r})")

    def assign(self, partition: Any, neurons: Mapping[str, Sequence[int]]) -> None:
        """Put the searched ``neurons[v]`` at ``partition[v]``'s coordinates (maps with ``fitting = "search"``).

        ``partition`` is the :class:`~causalab.Partition` being fitted.
        """
        raise AlignmentError(f"{type(self).__name__} is not fitted by a neuron search (fitting={self.fitting!r})")

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
