"""Complexity frontier: IIA against the alignment map's parameter count.

The non-linear representation dilemma says that a complex enough map reaches high
IIA anywhere. The informative number is therefore not "the IIA" but *how simple a
map suffices*: on a network that implements the algorithm a small map (identity,
a rotation) reaches the threshold; on its random-init controls only a much larger
one does, or none does. :func:`frontier_gap` reports both smallest complexities and
the gap between them.

Complexity is the map's trainable parameter count (``AlignmentMap.num_parameters``);
families and knobs are given as spec strings (``"identity"``, ``"rotation:rank=4"``,
``"revnet:blocks=2,hidden=8"``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from causalab.causal.task import Task
from causalab.errors import ScoreError
from causalab.fit.measure import Measurement, MeasureSettings, Pairs, draw_pairs, measure
from causalab.neural.target import Site, Target
from causalab.scores.selectivity import build_network, random_controls

CRITERIA = ("iia", "ci_low")


@dataclass
class Frontier:
    """Measurements of several map families and knobs on one (network, algorithm, site)."""

    label: str
    points: list[Measurement]

    def value(self, m: Measurement, criterion: str = "iia") -> float:
        """Test IIA, or the lower end of its 95% interval (a stricter test of reaching a threshold)."""
        if criterion not in CRITERIA:
            raise ScoreError(f"frontier criterion must be one of {CRITERIA}, got {criterion!r}")
        return m.test.overall.accuracy if criterion == "iia" else m.test.overall.interval[0]

    def pareto(self, criterion: str = "iia") -> list[Measurement]:
        """The points no simpler map beats: sorted by parameter count, each raising the best IIA so far."""
        best, out = -math.inf, []
        for m in sorted(self.points, key=lambda m: (m.num_parameters, -self.value(m, criterion))):
            if self.value(m, criterion) > best:
                best = self.value(m, criterion)
                out.append(m)
        return out

    def smallest_reaching(self, threshold: float, criterion: str = "iia") -> int | None:
        """The smallest parameter count whose test IIA reaches ``threshold``; None if no map tried does."""
        hits = [m.num_parameters for m in self.points if self.value(m, criterion) >= threshold]
        return min(hits) if hits else None

    def to_dict(self) -> dict:
        return {"label": self.label, "points": [m.to_dict() for m in self.points]}


def complexity_frontier(
    target: Target,
    site: Site,
    task: Task,
    specs: Sequence[str],
    settings: MeasureSettings | None = None,
    *,
    pairs: Pairs | None = None,
    label: str = "",
) -> Frontier:
    """Fit every map in ``specs`` on the same pairs and collect (complexity, IIA)."""
    if not specs:
        raise ScoreError("complexity_frontier: no alignment specs; give e.g. ['identity', 'rotation', 'revnet:blocks=2']")
    settings = settings or MeasureSettings()
    pairs = pairs if pairs is not None else draw_pairs(task, settings)
    return Frontier(label, [measure(target, site, task, spec, settings, pairs=pairs) for spec in specs])


@dataclass
class FrontierComparison:
    """The frontier on the real network against frontiers on random-init controls."""

    real: Frontier
    controls: list[Frontier]
    threshold: float
    criterion: str = "iia"

    @property
    def real_complexity(self) -> int | None:
        return self.real.smallest_reaching(self.threshold, self.criterion)

    @property
    def control_complexity(self) -> int | None:
        """The smallest complexity at which *any* control reaches the threshold (the control's best case)."""
        hits = [c.smallest_reaching(self.threshold, self.criterion) for c in self.controls]
        hits = [h for h in hits if h is not None]
        return min(hits) if hits else None

    @property
    def gap(self) -> float:
        """Control minus real complexity, in parameters.

        ``inf`` when no control reaches the threshold with any map tried (a lower bound
        would be the largest map tried); ``nan`` when the real network does not either.
        """
        real, control = self.real_complexity, self.control_complexity
        if real is None:
            return math.nan
        if control is None:
            return math.inf
        return float(control - real)

    def to_dict(self) -> dict:
        gap = self.gap
        return {
            "threshold": self.threshold,
            "criterion": self.criterion,
            "real_complexity": self.real_complexity,
            "control_complexity": self.control_complexity,
            "gap": None if math.isnan(gap) else ("inf" if math.isinf(gap) else gap),
            "real": self.real.to_dict(),
            "controls": [c.to_dict() for c in self.controls],
        }


def frontier_gap(
    task: Task,
    specs: Sequence[str],
    site: Site,
    *,
    target: str | Target = "trained",
    target_seed: int = 0,
    control_seeds: Sequence[int] = (0, 1, 2),
    threshold: float = 0.9,
    criterion: str = "iia",
    settings: MeasureSettings | None = None,
    target_options: Mapping[str, Any] | None = None,
) -> FrontierComparison:
    """Frontiers on ``target`` and on random-init networks (one per control seed), on the same pairs.

    ``target_options`` build the target, if it is named, and the controls alike, in the settings'
    dtype and device (:func:`causalab.scores.selectivity.random_controls`)."""
    if not 0.0 <= threshold <= 1.0:
        raise ScoreError(f"frontier_gap: threshold is an IIA in [0, 1], got {threshold!r}")
    if criterion not in CRITERIA:
        raise ScoreError(f"frontier_gap: criterion must be one of {CRITERIA}, got {criterion!r}")
    settings = settings or MeasureSettings()
    pairs = draw_pairs(task, settings)
    network = build_network(task, target, target_seed, settings, target_options)
    label = target if isinstance(target, str) else type(target).__name__
    real = complexity_frontier(network, site, task, specs, settings, pairs=pairs, label=label)
    controls = [
        complexity_frontier(c, site, task, specs, settings, pairs=pairs, label=f"random{s}")
        for s, c in zip(control_seeds, random_controls(task, network, site, control_seeds, settings, target_options))
    ]
    return FrontierComparison(real, controls, threshold, criterion)
