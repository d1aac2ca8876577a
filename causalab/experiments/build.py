"""The one builder of a run's pieces: task, target, site, alignment map and partition, from a config.

:func:`build_run` is used both to run a config and to validate one (``dry=True``: the
target is a network of the same architecture, never trained), so validation is "build,
and name the field that failed", not a second copy of the building. Every failure is a
:class:`~causalab.errors.ConfigFieldError` naming the field (and, where a piece failed,
also of that piece's error class: a bad layer is a :class:`~causalab.errors.SiteError`).
"""

from __future__ import annotations

import json

import torch

from causalab.causal.task import Task
from causalab.errors import CausalabError, ConfigFieldError, PartitionError, SiteError, field_error
from causalab.experiments.config import BuildSettings, ExperimentConfig
from causalab.fit.measure import MeasureSettings, Run
from causalab.maps.intervene import task_partition
from causalab.maps.spec import AlignmentSpec, build_map
from causalab.neural.build import build_target
from causalab.neural.target import Site, Target
from causalab.registry import make_task


def build_run(config: ExperimentConfig, *, dry: bool = False, targets: dict[str, Target] | None = None) -> Run:
    """Build every piece ``config.build`` names; raise :class:`ConfigFieldError` naming the first bad field.

    The network is built in ``config.measure``'s dtype on its device, and the map from its seed.
    With ``dry`` nothing is trained (a ``pretrained`` target is loaded); ``targets`` caches
    dry networks across the configs of a sweep (the architecture does not depend on the seed).
    """
    what, how = config.build, config.measure
    try:
        task = make_task(what.algorithm, **what.task_options)
    except CausalabError as exc:
        raise field_error("task_options" if what.task_options else "algorithm", exc) from None
    try:
        spec = AlignmentSpec.parse(what.alignment)
        spec.family_class()
    except CausalabError as exc:
        raise field_error("alignment", exc) from None
    if how.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigFieldError("device", f"{how.device!r} was asked for, but torch sees no CUDA device")

    target = _target(what, how, task, dry, targets).to(how.device)
    task = task.for_target(target)
    try:
        site = target.check_site(Site(what.layer, what.position, what.component))
        task.check_position(site.position, target.positions)
    except SiteError as exc:
        raise field_error(exc.part or "layer", exc) from None
    width = target.width(site)
    try:
        phi = build_map(spec.text, width, how.seed, how.torch_dtype, how.device)
    except CausalabError as exc:
        raise field_error("alignment", exc, f"{what.alignment!r} at hidden width {width}: {exc}") from None
    field = "partition" if what.partition is not None else "intervention_size"
    try:
        partition = task_partition(task, width, how.intervention_size, what.partition)
        partition.check_fits(phi)
    except PartitionError as exc:
        raise field_error(field, exc) from None
    return Run(task, target, site, phi, partition, config)


def _target(what: BuildSettings, how: MeasureSettings, task: Task, dry: bool, targets: dict[str, Target] | None) -> Target:
    key = json.dumps([what.algorithm, what.task_options, what.target, what.target_seed if not dry else None,
                      what.target_options, how.dtype], sort_keys=True, default=str)
    if targets is not None and key in targets:
        return targets[key]
    try:
        target = build_target(task, what.target, what.target_seed, dtype=how.torch_dtype, dry=dry, **what.target_options)
    except CausalabError as exc:
        raise field_error("target_options" if what.target_options else "target", exc) from None
    if targets is not None:
        targets[key] = target
    return target

