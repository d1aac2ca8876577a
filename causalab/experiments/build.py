"""The one builder of a run's pieces: task, target, site, alignment map and partition, from a config.

:func:`build_run` is used both to run a config and to validate one (``dry=True``: the
target is a network of the same architecture, never trained), so validation is "build,
and name the field that failed", not a second copy of the building. Every failure is a
:class:`~causalab.errors.ConfigFieldError` naming the field (and, where a piece failed,
also of that piece's error class: a bad layer is a :class:`~causalab.errors.SiteError`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch

from causalab.causal.task import Task
from causalab.errors import CausalabError, ConfigFieldError, PartitionError, SiteError, field_error
from causalab.experiments.config import ExperimentConfig
from causalab.maps.alignment import AlignmentMap
from causalab.maps.intervene import Partition, check_not_empty, default_partition
from causalab.maps.spec import AlignmentSpec, build_map
from causalab.neural.build import build_target
from causalab.neural.target import Site, Target
from causalab.registry import make_task


@dataclass
class Run:
    """The built pieces of one config."""

    config: ExperimentConfig
    task: Task
    target: Target
    site: Site
    phi: AlignmentMap
    partition: Partition


def build_run(config: ExperimentConfig, *, dry: bool = False, targets: dict[str, Target] | None = None) -> Run:
    """Build every piece ``config`` names; raise :class:`ConfigFieldError` naming the first bad field.

    With ``dry`` nothing is trained (a ``pretrained`` target is loaded); ``targets`` caches
    dry networks across the configs of a sweep (the architecture does not depend on the seed).
    """
    try:
        task = make_task(config.algorithm, **config.task_options)
    except CausalabError as exc:
        raise field_error("task_options" if config.task_options else "algorithm", exc) from None
    try:
        spec = AlignmentSpec.parse(config.alignment)
        spec.family_class()
    except CausalabError as exc:
        raise field_error("alignment", exc) from None
    if config.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigFieldError("device", f"{config.device!r} was asked for, but torch sees no CUDA device")

    target = _target(config, task, dry, targets).to(config.device)
    task = task.for_target(target)
    try:
        site = target.check_site(Site(config.layer, config.position, config.component))
    except SiteError as exc:
        raise field_error(exc.part or "layer", exc) from None
    width = target.width(site)
    try:
        phi = build_map(spec.text, width, config.seed, config.torch_dtype, config.device)
    except CausalabError as exc:
        raise field_error("alignment", exc, f"{config.alignment!r} at hidden width {width}: {exc}") from None
    field = "partition" if config.partition is not None else "intervention_size"
    try:
        partition = _partition(config, task, width)
        partition.check_fits(phi)
    except PartitionError as exc:
        raise field_error(field, exc) from None
    return Run(config, task, target, site, phi, partition)


def _target(config: ExperimentConfig, task: Task, dry: bool, targets: dict[str, Target] | None) -> Target:
    key = json.dumps([config.algorithm, config.task_options, config.target, config.target_seed if not dry else None, config.target_options,
                      config.dtype], sort_keys=True, default=str)
    if targets is not None and key in targets:
        return targets[key]
    try:
        target = build_target(task, config.target, config.target_seed, dtype=config.torch_dtype, dry=dry,
                              **config.target_options)
    except CausalabError as exc:
        raise field_error("target_options" if config.target_options else "target", exc) from None
    if targets is not None:
        targets[key] = target
    return target


def _partition(config: ExperimentConfig, task: Task, width: int) -> Partition:
    if config.partition is None:
        return default_partition(task, width, config.intervention_size)
    missing = [v for v in task.variables if v not in config.partition]
    if missing:
        raise PartitionError(f"no block for variable(s) {missing} of {task.name!r} (variables: {task.variables})")
    extra = [v for v in config.partition if v not in task.variables]
    if extra:
        raise PartitionError(f"{task.name!r} has no variable(s) {extra} (variables: {task.variables})")
    return check_not_empty(Partition(config.partition, width))

