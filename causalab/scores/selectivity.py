"""Selectivity: IIA on the real (network, algorithm) pair minus IIA on a control.

Two controls, each asking whether the IIA needs the thing it claims to measure:

- :func:`random_network_selectivity`: the same architecture at random
  initialisation, over several seeds. A map that finds the algorithm in an untrained
  network finds it by its own expressiveness, not in the network.
- :func:`control_algorithm_selectivity`: the same network, but the algorithm's
  variable replaced by a random function of its parents with the same distribution
  (:func:`control_algorithm`). A map that "finds" a random function as well as the
  real variable has not shown that the network computes the real one.

High selectivity (interval well above 0) with a real IIA near 1 is the signature of
an abstraction found in the network; selectivity near 0 means the map, not the
network, carries the result. Controls over several seeds are pooled (counts summed)
for the interval, which treats real and control pairs as independent samples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from causalab.causal.task import Task
from causalab.errors import ScoreError
from causalab.fit.measure import Measurement, MeasureSettings, draw_pairs, measure
from causalab.fit.metrics import IIAResult, Score, set_name
from causalab.maps.alignment import AlignmentMap
from causalab.neural.build import build_target
from causalab.neural.target import Site, Target
from causalab.scores.control_algorithm import control_algorithm
from causalab.scores.difference import Difference, pooled


def restricted_score(result: IIAResult, task: Task, variable: str | None) -> Score:
    """The overall score, or the pooled score of the intervention sets that include ``variable``."""
    if variable is None:
        return result.overall
    names = [set_name(s) for s in task.intervention_sets if variable in s]
    if not names:
        raise ScoreError(f"task {task.name!r} never intervenes on {variable!r}; its sets are {task.intervention_sets}")
    return pooled([result.per_set[n] for n in names if n in result.per_set])


@dataclass
class Selectivity:
    """A real measurement against control measurements (one per control seed)."""

    kind: str
    real: Measurement
    controls: list[Measurement]
    real_score: Score
    control_scores: list[Score]
    variable: str | None = None
    details: dict = field(default_factory=dict)

    @property
    def difference(self) -> Difference:
        return Difference(self.real_score, pooled(self.control_scores))

    @property
    def estimate(self) -> float:
        return self.difference.estimate

    @property
    def interval(self) -> tuple[float, float]:
        return self.difference.interval

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "variable": self.variable,
            "selectivity": self.difference.to_dict(),
            "real": self.real.to_dict(),
            "controls": [c.to_dict() for c in self.controls],
            **self.details,
        }


def build_network(task: Task, target: str | Target, seed: int, settings: MeasureSettings,
                  options: Mapping[str, Any] | None = None) -> Target:
    """``target`` itself, or the network of that kind built as a run builds it: with its options, in the
    settings' dtype, on their device."""
    if not isinstance(target, str):
        return target
    return build_target(task, target, seed, dtype=settings.torch_dtype, **dict(options or {})).to(settings.device)


def random_controls(task: Task, real: Target, site: Site, seeds: Sequence[int], settings: MeasureSettings,
                    options: Mapping[str, Any] | None = None) -> list[Target]:
    """Random-init networks of ``real``'s architecture, one per seed; refused when their site is not as wide
    (a target built elsewhere whose ``target_options`` were not given)."""
    controls = [build_network(task, "random", s, settings, options) for s in seeds]
    want = real.width(site)
    for s, control in zip(seeds, controls):
        if control.width(site) != want:
            raise ScoreError(f"the random control (seed {s}) has width {control.width(site)} at {site}, the target "
                             f"{want}: give the target's target_options (e.g. its size) so the controls share its architecture")
    return controls


def selectivity(
    real: Measurement, controls: Sequence[Measurement], *, kind: str = "custom", task: Task | None = None,
    variable: str | None = None,
) -> Selectivity:
    """Selectivity from measurements made elsewhere; with ``variable``, only sets that intervene on it count."""
    if not controls:
        raise ScoreError("selectivity: no control measurements; give at least one")
    if variable is not None and task is None:
        raise ScoreError("selectivity: restricting to a variable needs the task (to read its intervention sets)")
    return Selectivity(
        kind=kind,
        real=real,
        controls=list(controls),
        real_score=restricted_score(real.test, task, variable) if task else real.test.overall,
        control_scores=[restricted_score(c.test, task, variable) if task else c.test.overall for c in controls],
        variable=variable,
    )


def random_network_selectivity(
    task: Task,
    spec: str | AlignmentMap,
    site: Site,
    *,
    target: str | Target = "trained",
    target_seed: int = 0,
    control_seeds: Sequence[int] = (0, 1, 2),
    settings: MeasureSettings | None = None,
    target_options: Mapping[str, Any] | None = None,
) -> Selectivity:
    """IIA on ``target`` minus IIA on random-init networks of the same architecture (one per seed).

    Every network sees the same counterfactual pairs; each gets a fresh map of family ``spec``.
    ``target_options`` (a language model's ``size``, ``arch``, ...) build the target, if it is
    named, and the controls alike, in the settings' dtype and device.
    """
    settings = settings or MeasureSettings()
    if isinstance(spec, AlignmentMap):
        raise ScoreError("random_network_selectivity needs a spec string: each network gets a fresh map")
    if not control_seeds:
        raise ScoreError("random_network_selectivity: control_seeds is empty; give at least one seed")
    pairs = draw_pairs(task, settings)
    network = build_network(task, target, target_seed, settings, target_options)
    real = measure(network, site, task, spec, settings, pairs=pairs)
    controls = [measure(c, site, task, spec, settings, pairs=pairs)
                for c in random_controls(task, network, site, control_seeds, settings, target_options)]
    result = selectivity(real, controls, kind="random_network")
    result.details = {"control_seeds": list(control_seeds)}
    return result


def control_algorithm_selectivity(
    task: Task,
    spec: str | AlignmentMap,
    site: Site,
    *,
    variable: str | None = None,
    target: str | Target = "trained",
    target_seed: int = 0,
    control_seeds: Sequence[int] = (0, 1, 2),
    settings: MeasureSettings | None = None,
    target_options: Mapping[str, Any] | None = None,
) -> Selectivity:
    """IIA for ``variable`` under the real algorithm minus under control algorithms (one per seed).

    Only intervention sets that include ``variable`` are scored on both sides. The
    default variable is the task's first intermediate (non-input, non-output) variable.
    Real and control pairs share their inputs (same seed); only the labels differ.
    """
    settings = settings or MeasureSettings()
    if isinstance(spec, AlignmentMap):
        raise ScoreError("control_algorithm_selectivity needs a spec string: each control gets a fresh map")
    if not control_seeds:
        raise ScoreError("control_algorithm_selectivity: control_seeds is empty; give at least one seed")
    if variable is None:
        candidates = [v for v in task.variables if v not in task.algorithm.inputs and v not in task.algorithm.outputs]
        if not candidates:
            raise ScoreError(
                f"task {task.name!r} intervenes on no intermediate variable ({task.variables}); "
                "a control algorithm replaces an intermediate variable's mechanism"
            )
        variable = candidates[0]
    network = build_network(task, target, target_seed, settings, target_options)
    real = measure(network, site, task, spec, settings)
    controls = []
    for s in control_seeds:
        control = control_algorithm(task, variable, s)
        controls.append(measure(network, site, control, spec, settings))
    result = selectivity(real, controls, kind="control_algorithm", task=task, variable=variable)
    result.details = {"control_seeds": list(control_seeds)}
    return result
