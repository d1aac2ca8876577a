"""The difference of two IIA proportions with a confidence interval (Newcombe's hybrid score method).

Every score in this package that compares two IIAs (real minus control, in-distribution
minus out-of-distribution, train minus test) reports a :class:`Difference`: the point
estimate, both scores it came from, and a 95% interval. Newcombe's method combines the
two Wilson intervals, so it stays inside ``[-1, 1]`` and behaves at IIA 0 or 1, where
the normal approximation collapses to a zero-width interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from causalab.errors import ScoreError
from causalab.fit.metrics import Score, wilson_interval


def pooled(scores: list[Score] | tuple[Score, ...]) -> Score:
    """One score from several (e.g. random networks over seeds): counts are summed."""
    if not scores:
        raise ScoreError("pooled: no scores to pool; give at least one control")
    return Score(sum(s.correct for s in scores), sum(s.n for s in scores))


def newcombe_interval(a: Score, b: Score, z: float = 1.959964) -> tuple[float, float]:
    """Interval for ``p_a - p_b`` from the Wilson intervals of each (Newcombe 1998, method 10)."""
    if a.n == 0 or b.n == 0:
        raise ScoreError(f"newcombe_interval: both scores need pairs, got n={a.n} and n={b.n}")
    pa, pb = a.accuracy, b.accuracy
    la, ua = wilson_interval(a.correct, a.n, z)
    lb, ub = wilson_interval(b.correct, b.n, z)
    d = pa - pb
    low = d - math.sqrt((pa - la) ** 2 + (ub - pb) ** 2)
    high = d + math.sqrt((ua - pa) ** 2 + (pb - lb) ** 2)
    return (max(-1.0, low), min(1.0, high))


@dataclass
class Difference:
    """``a - b`` for two IIA scores, with a 95% interval. ``a`` is the real (or in-distribution) side."""

    a: Score
    b: Score

    @property
    def estimate(self) -> float:
        return self.a.accuracy - self.b.accuracy

    @property
    def interval(self) -> tuple[float, float]:
        return newcombe_interval(self.a, self.b)

    @property
    def significant(self) -> bool:
        """Whether the 95% interval excludes zero."""
        lo, hi = self.interval
        return lo > 0 or hi < 0

    def to_dict(self) -> dict:
        lo, hi = self.interval
        return {"estimate": self.estimate, "ci_low": lo, "ci_high": hi, "a": self.a.to_dict(), "b": self.b.to_dict()}

    def __str__(self) -> str:
        lo, hi = self.interval
        return f"{self.estimate:+.3f} [{lo:+.3f}, {hi:+.3f}]"
