"""Sample efficiency: IIA on the fitting pairs and on held-out pairs, against the number of fitting pairs.

A map that has found a variable the network computes generalises from few pairs:
its test IIA rises with its train IIA. A map that memorises reaches train IIA near 1
on few pairs while its test IIA stays at chance; the train-test gap closes only as
the pairs outnumber what the map can memorise. The curve separates the two.

Train sets are nested (the first ``n`` of one draw) and every size is scored on the
same test pairs, so differences between sizes come from the fitting data alone. Use
``MeasureSettings(validate_on="train")`` to keep held-out pairs out of the fit entirely
(early stopping then watches the training pairs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from causalab.causal.task import Task
from causalab.errors import ScoreError
from causalab.fit.measure import Measurement, MeasureSettings, measure
from causalab.maps.alignment import AlignmentMap
from causalab.neural.target import Site, Target
from causalab.scores.difference import Difference


@dataclass
class EfficiencyPoint:
    """One fitting-set size and the map fitted on it."""

    n_pairs: int
    measurement: Measurement

    @property
    def memorisation_gap(self) -> Difference:
        """Train minus test IIA: near 0 when the map generalises, large when it memorises."""
        return Difference(self.measurement.train.overall, self.measurement.test.overall)

    def to_dict(self) -> dict:
        return {"n_pairs": self.n_pairs, **self.measurement.to_dict(), "gap": self.memorisation_gap.to_dict()}


def sample_efficiency(
    target: Target,
    site: Site,
    task: Task,
    spec: str | AlignmentMap,
    sizes: Sequence[int],
    settings: MeasureSettings | None = None,
) -> list[EfficiencyPoint]:
    """Fit a fresh map of family ``spec`` on the first ``n`` pairs, for each ``n`` in ``sizes``.

    ``settings.n_val`` and ``settings.n_test`` set the validation and test pairs, shared by all sizes;
    ``settings.n_train`` is ignored.
    """
    if isinstance(spec, AlignmentMap):
        raise ScoreError("sample_efficiency needs a spec string: each size gets a fresh map")
    if not sizes or any(not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in sizes):
        raise ScoreError(f"sample_efficiency: sizes must be positive integers, got {list(sizes)!r}")
    settings = settings or MeasureSettings()
    gen = torch.Generator().manual_seed(settings.seed)
    biggest = max(sizes)
    data = task.counterfactuals(biggest + settings.n_val + settings.n_test, gen)
    train_all, val, test = data.split([biggest, settings.n_val, settings.n_test])
    points = []
    for n in sorted(sizes):
        m = measure(target, site, task, spec, settings, pairs=(train_all.subset(slice(0, n)), val, test))
        points.append(EfficiencyPoint(n, m))
    return points
