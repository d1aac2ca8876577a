"""Invertible per-coordinate standardisation, fitted on activation statistics.

Hidden states live at uneven scales (ReLU units that are mostly off, residual
streams with a few huge coordinates). A non-linear map initialised for unit-scale
inputs behaves badly there, and a spline flow is the identity outside its
``tail_bound``. ``z = (h - mean) / std`` fixes the scale without losing
invertibility: it is an affine map with fixed (not learnt) statistics.

Two ways to use it:

- the knob ``standardize=True`` on the non-linear families (``revnet``,
  ``affine_flow``, ``spline_flow``, ``glow``);
- :class:`Standardized` wrapping any map in Python: ``Standardized(RotationMap(16))``.

Either way the map's ``fit_statistics(h)`` (a no-op on :class:`~causalab.AlignmentMap`)
fits them: :func:`causalab.fit_alignment` calls it on the training base hidden states
before the first step. Statistics are
fitted once (a warm-started map keeps its own); pass ``refit=True`` to replace them.
"""

from __future__ import annotations

from abc import abstractmethod

import torch

from causalab.errors import AlignmentError
from causalab.maps.alignment import AlignmentMap

# A coordinate whose spread is below this fraction of the largest spread (float32 noise) is treated as
# constant: it is centred but not scaled, so dividing by ~0 never amplifies noise.
_CONSTANT_FRACTION = 1e-7


class Standardization(AlignmentMap):
    """``z = (h - mean) / std`` per coordinate. No trainable parameters; statistics are buffers."""

    tolerance = 1e-6

    def __init__(self, width: int) -> None:
        super().__init__(width)
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("std", torch.ones(width))
        self.register_buffer("fitted", torch.tensor(False))

    @torch.no_grad()
    def fit_statistics(self, h: torch.Tensor, refit: bool = False) -> None:
        """Set mean and std from hidden states ``h`` of shape ``(..., width)`` (once, unless ``refit``)."""
        self.check_width(h)
        if bool(self.fitted) and not refit:
            return
        flat = h.detach().reshape(-1, self.width).to(self.mean.dtype)
        if flat.shape[0] < 2:
            raise AlignmentError(f"standardisation needs at least 2 hidden states to fit statistics, got {flat.shape[0]}")
        if not torch.isfinite(flat).all():
            raise AlignmentError("standardisation: the hidden states to fit statistics on contain NaN or inf")
        mean = flat.mean(0)
        std = flat.std(0)
        floor = _CONSTANT_FRACTION * float(std.max())
        std = torch.where(std > floor, std, torch.ones_like(std)) if floor > 0 else torch.ones_like(std)
        self.mean.copy_(mean)
        self.std.copy_(std)
        self.fitted.fill_(True)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        self.check_width(h)
        return (h - self.mean.to(h.dtype)) / self.std.to(h.dtype)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        self.check_width(z)
        return z * self.std.to(z.dtype) + self.mean.to(z.dtype)


class Standardized(AlignmentMap):
    """Any alignment map behind a fitted standardisation: ``phi(h) = inner((h - mean) / std)``."""

    def __init__(self, inner: AlignmentMap) -> None:
        if not isinstance(inner, AlignmentMap):
            raise AlignmentError(f"Standardized wraps an AlignmentMap, got {type(inner).__name__}")
        super().__init__(inner.width)
        self.standardization = Standardization(inner.width)
        self.inner = inner
        self.tolerance = max(inner.tolerance, Standardization.tolerance)

    @property
    def swappable(self) -> int:
        return self.inner.swappable

    def fit_statistics(self, h: torch.Tensor, refit: bool = False) -> None:
        self.standardization.fit_statistics(h, refit=refit)
        self.inner.fit_statistics(self.standardization(h), refit=refit)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.inner(self.standardization(h))

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return self.standardization.inverse(self.inner.inverse(z))

    def describe(self) -> str:
        return f"Standardized({self.inner.describe()})"


class StandardizableMap(AlignmentMap):
    """Base of the non-linear families: the ``standardize`` knob and ``(..., width)`` batching.

    Subclasses implement ``_forward`` and ``_inverse`` on ``(n, width)`` tensors.
    """

    def __init__(self, width: int, standardize: bool = False) -> None:
        super().__init__(width)
        if not isinstance(standardize, bool):
            raise AlignmentError(f"{type(self).__name__}: standardize must be true or false, got {standardize!r}")
        self.standardization = Standardization(width) if standardize else None

    def fit_statistics(self, h: torch.Tensor, refit: bool = False) -> None:
        """Fit the standardisation on hidden states ``h`` (a no-op without ``standardize=True``)."""
        if self.standardization is not None:
            self.standardization.fit_statistics(h, refit=refit)

    @abstractmethod
    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """``phi`` on ``(n, width)``, after the standardisation."""

    @abstractmethod
    def _inverse(self, z: torch.Tensor) -> torch.Tensor:
        """``phi^-1`` on ``(n, width)``, before the standardisation's inverse."""

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        self.check_width(h)
        if self.standardization is not None:
            h = self.standardization(h)
        return self._forward(h.reshape(-1, self.width)).reshape(h.shape)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        self.check_width(z)
        h = self._inverse(z.reshape(-1, self.width)).reshape(z.shape)
        if self.standardization is not None:
            h = self.standardization.inverse(h)
        return h
