"""Out-of-distribution IIA: fit the map on one part of the input space, score it on a disjoint part.

An abstraction the network really implements should transfer: the map that aligns
the variable on some inputs should align it on inputs it never saw. A map that
memorised its fitting region (possible for any expressive map, even on a random
network) loses IIA on the other region.

The split is a function with the convention ``split(sizes, generator) -> [train, val, test]``
(three :class:`CounterfactualDataset`\\ s; train and validation from the fitting region,
test from the held-out region). :func:`ood_iia` finds it, in order:

1. the ``split`` argument;
2. ``task.ood_split``;
3. ``task.counterfactual_splits`` (IOI's disjoint-names tasks provide this);
4. for tasks whose inputs are real vectors, :func:`sign_split` on coordinate 0.

A task plugs in by setting ``ood_split``, e.g. to ``region_split(fit_task, test_task)``
for two restricted copies of itself (:func:`restrict_inputs`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from causalab.causal.algorithm import Algorithm, Values
from causalab.causal.counterfactual import CounterfactualDataset
from causalab.causal.task import Task
from causalab.errors import ScoreError
from causalab.fit.measure import Measurement, MeasureSettings, measure
from causalab.fit.metrics import IIAResult
from causalab.maps.alignment import AlignmentMap
from causalab.maps.spec import AlignmentSpec
from causalab.neural.target import Site, Target
from causalab.scores.difference import Difference

SplitFn = Callable[[Sequence[int], torch.Generator], list[CounterfactualDataset]]
InputTransform = Callable[[Values], Values]


def restrict_inputs(task: Task, transform: InputTransform, name: str) -> Task:
    """The task with every input draw, bases and sources alike, passed through ``transform``.

    ``transform`` maps a batch of algorithm inputs to a batch of inputs in the region;
    labels are recomputed by the algorithm on the transformed inputs, so they stay exact.
    """
    algorithm = task.algorithm

    def sample(n: int, g: torch.Generator) -> Values:
        return transform(algorithm.sample_inputs(n, g))

    restricted = Algorithm(
        algorithm.graph.copy(), name=f"{algorithm.name}[{name}]", outputs=list(algorithm.outputs), input_sampler=sample
    )
    pair_sampler = None
    if task.pair_sampler is not None:
        inner = task.pair_sampler

        def pair_sampler(base: Values, variable: str, g: torch.Generator) -> Values:
            return transform(inner(base, variable, g))

    return dataclasses.replace(
        task, name=f"{task.name}[{name}]", algorithm=restricted, pair_sampler=pair_sampler,
        counterfactual_splits=None, ood_split=None,
    )


def vector_inputs(task: Task, n: int = 4) -> list[str]:
    """The inputs whose values are real vectors (floating point, one or more coordinates per row)."""
    drawn = task.algorithm.sample_inputs(n, torch.Generator().manual_seed(0))
    return [k for k, v in drawn.items() if v.is_floating_point() and v.dim() >= 2]


def fold_sign(inputs: Sequence[str], coordinate: int, sign: float) -> InputTransform:
    """Reflect each named vector so that its ``coordinate`` has the given sign (``|x_c|`` or ``-|x_c|``).

    A reflection keeps equal vectors equal and unequal vectors unequal (except on a
    null set), so the algorithm's equality structure, and its label balance, survive.
    """

    def transform(values: Values) -> Values:
        out = dict(values)
        for k in inputs:
            v = values[k].clone()
            v[..., coordinate] = sign * v[..., coordinate].abs()
            out[k] = v
        return out

    return transform


def sign_split(task: Task, coordinate: int = 0) -> tuple[Task, Task]:
    """Two restricted copies of ``task``: every input vector with ``x[coordinate] >= 0``, and with ``<= 0``."""
    names = vector_inputs(task)
    if not names:
        raise ScoreError(
            f"sign_split: task {task.name!r} has no real-vector inputs to split (inputs: {task.algorithm.inputs}); "
            "give ood_iia a split function or set task.ood_split"
        )
    width = task.algorithm.sample_inputs(1, torch.Generator().manual_seed(0))[names[0]].shape[-1]
    if not -width <= coordinate < width:
        raise ScoreError(f"sign_split: coordinate {coordinate} is outside the input vectors' {width} coordinates")
    positive = restrict_inputs(task, fold_sign(names, coordinate, 1.0), f"x{coordinate}>=0")
    negative = restrict_inputs(task, fold_sign(names, coordinate, -1.0), f"x{coordinate}<=0")
    return positive, negative


def region_split(fit_task: Task, test_task: Task) -> SplitFn:
    """A split function: train and validation pairs from ``fit_task``, test pairs from ``test_task``."""

    def split(sizes: Sequence[int], generator: torch.Generator) -> list[CounterfactualDataset]:
        n_train, n_val, n_test = sizes
        fit = fit_task.counterfactuals(n_train + n_val, generator)
        return [*fit.split([n_train, n_val]), test_task.counterfactuals(n_test, generator)]

    return split


def resolve_split(task: Task, split: SplitFn | None = None) -> SplitFn:
    """The split to use for ``task``: see the module docstring for the order."""
    if split is not None:
        return split
    for own in (task.ood_split, task.counterfactual_splits):
        if callable(own):
            return own
    if vector_inputs(task):
        return region_split(*sign_split(task))
    raise ScoreError(
        f"task {task.name!r} has no out-of-distribution split: pass split=..., or set "
        "task.ood_split to a function (sizes, generator) -> [train, val, test]"
    )


@dataclass
class OODResult:
    """A map fitted on one region, scored on held-out pairs of that region and of the other."""

    measurement: Measurement
    in_distribution: IIAResult
    out_of_distribution: IIAResult
    constructed: bool = False  # a constructed map: in_distribution is on pairs it was built on

    @property
    def gap(self) -> Difference:
        """In-distribution minus out-of-distribution IIA (near 0: the alignment transfers)."""
        return Difference(self.in_distribution.overall, self.out_of_distribution.overall)

    def to_dict(self) -> dict:
        return {
            "spec": self.measurement.spec,
            "num_parameters": self.measurement.num_parameters,
            "train_iia": self.measurement.train_iia,
            "in_distribution": self.in_distribution.to_dict(),
            "out_of_distribution": self.out_of_distribution.to_dict(),
            "gap": self.gap.to_dict(),
            **({"constructed": True} if self.constructed else {}),
        }


def ood_iia(
    target: Target,
    site: Site,
    task: Task,
    spec: str | AlignmentMap,
    settings: MeasureSettings | None = None,
    *,
    split: SplitFn | None = None,
) -> OODResult:
    """Fit on the split's fitting region; score on held-out pairs of both regions (``n_test`` each).

    A constructed map (``"constructed"``, the paper's Theorem 1) is built on every pair it is
    scored on, so it is built on the fitting region's train, validation and held-in test pairs
    (the construction set, all in distribution: ``in_distribution`` is its IIA there, 1.0 by
    construction) and scored on the held-out region's pairs, which it never saw
    (``out_of_distribution``: its fixed map's IIA, about chance). Building it on the
    out-of-distribution pairs would score it 1.0 there and say nothing.
    """
    settings = settings or MeasureSettings()
    split = resolve_split(task, split)
    gen = torch.Generator().manual_seed(settings.seed)
    parts = split([settings.n_train, settings.n_val + settings.n_test, settings.n_test], gen)
    if len(parts) != 3:
        raise ScoreError(f"the split function for {task.name!r} returned {len(parts)} datasets; expected [train, val, test]")
    train, held_in, test_out = parts
    if len(held_in) < settings.n_val + settings.n_test:
        raise ScoreError(
            f"the split function for {task.name!r} returned {len(held_in)} validation pairs; "
            f"asked for {settings.n_val + settings.n_test}"
        )
    val, test_in = held_in.split([settings.n_val, settings.n_test])
    if _constructed(spec):  # built on every pair it is scored on: those must all be in distribution
        m = measure(target, site, task, spec, settings, pairs=(train, val, test_in), outside=test_out)
        return OODResult(measurement=m, in_distribution=m.test, out_of_distribution=m.outside, constructed=True)
    m = measure(target, site, task, spec, settings, pairs=(train, val, test_out))
    return OODResult(measurement=m, in_distribution=m.score(target, site, task, test_in), out_of_distribution=m.test)


def _constructed(spec: str | AlignmentMap) -> bool:
    """Whether ``spec`` names a map that is constructed from its pairs rather than fitted (Theorem 1's)."""
    if isinstance(spec, AlignmentMap):
        return spec.constructed
    return AlignmentSpec.parse(spec).family_class().constructed
