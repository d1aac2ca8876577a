"""Learning-rate schedules of a fit that react to the fit itself.

:class:`ReduceOnPlateau` is PyTorch's ``torch.optim.lr_scheduler.ReduceLROnPlateau``
(mode ``min``, relative threshold, no cooldown, no floor) as a scale on the base rate,
so it composes with a linear warmup: the fit multiplies the warmup's rate by
:attr:`ReduceOnPlateau.scale`. It is stepped once per epoch on the mean training loss,
as the non-linear representation dilemma's code does (or on the validation loss).
"""

from __future__ import annotations

import math


class ReduceOnPlateau:
    """Multiply the rate by ``factor`` once a watched loss has not improved for more than ``patience`` steps.

    A value improves when it is below ``best * (1 - threshold)`` (PyTorch's ``rel`` mode);
    after a reduction the count of bad steps restarts. ``scale`` is the product of the
    reductions so far (1.0 before the first).

    Example
    -------
    >>> s = ReduceOnPlateau(factor=0.5, patience=1)
    >>> [s.step(v) for v in (1.0, 1.0, 1.0, 0.5, 0.5, 0.5)]
    [1.0, 1.0, 0.5, 0.5, 0.5, 0.25]
    """

    def __init__(self, factor: float = 0.5, patience: int = 10, threshold: float = 1e-4) -> None:
        if not 0.0 < factor < 1.0:
            raise ValueError(f"factor must lie strictly between 0 and 1, got {factor!r}")
        self.factor, self.patience, self.threshold = factor, patience, threshold
        self.best = math.inf
        self.bad = 0
        self.scale = 1.0
        self.reductions = 0

    def step(self, value: float) -> float:
        """Record one value of the watched loss; return the scale for what follows."""
        if value < self.best * (1.0 - self.threshold):
            self.best, self.bad = value, 0
        else:
            self.bad += 1
        if self.bad > self.patience:
            self.scale *= self.factor
            self.reductions += 1
            self.bad = 0
        return self.scale
