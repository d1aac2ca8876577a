"""Interchange-intervention accuracy (IIA) with Wilson 95% intervals, overall and per variable set."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch


def wilson_interval(correct: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (well-behaved at 0 and 1).

    Parameters
    ----------
    correct : int
        Successes (pairs whose intervened output matched the algorithm's).
    n : int
        Trials (pairs scored).
    z : float
        The normal quantile; the default gives a 95% interval.

    Returns
    -------
    (float, float)
        The interval's lower and upper ends, within [0, 1]; ``(0.0, 1.0)`` when ``n`` is 0.

    Examples
    --------
    >>> from causalab import wilson_interval
    >>> tuple(round(x, 3) for x in wilson_interval(950, 1000))
    (0.935, 0.962)
    >>> wilson_interval(0, 0)
    (0.0, 1.0)
    """
    if n == 0:
        return (0.0, 1.0)
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass
class Score:
    correct: int
    n: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.correct, self.n)

    def to_dict(self) -> dict:
        lo, hi = self.interval
        return {"iia": self.accuracy, "n": self.n, "ci_low": lo, "ci_high": hi}


@dataclass
class IIAResult:
    """IIA overall and per intervention set (keyed ``"V1"``, ``"V1+V2"``, ...)."""

    overall: Score
    per_set: dict[str, Score] = field(default_factory=dict)
    loss: float | None = None  # mean counterfactual loss, when the evaluation computed it

    @property
    def iia(self) -> float:
        return self.overall.accuracy

    def to_dict(self) -> dict:
        return {"overall": self.overall.to_dict(), "per_set": {k: s.to_dict() for k, s in self.per_set.items()}}


def set_name(variables: tuple[str, ...]) -> str:
    return "+".join(variables)


def iia_from_correct(correct: torch.Tensor, set_index: torch.Tensor, sets: list[tuple[str, ...]]) -> IIAResult:
    correct = correct.bool().cpu()
    set_index = set_index.cpu()
    per = {}
    for k, s in enumerate(sets):
        rows = set_index == k
        per[set_name(s)] = Score(int(correct[rows].sum()), int(rows.sum()))
    return IIAResult(Score(int(correct.sum()), int(correct.numel())), per)
