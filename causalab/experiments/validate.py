"""Check a config before any work starts: build the cheap pieces it names, never train.

:func:`validate` builds the task, an untrained network of the target's architecture
(for ``trained`` targets: the random initialisation of the same kind and options,
so the hidden widths and sites are the real ones), the site, the alignment map and
the partition. Every failure is a :class:`ConfigFieldError` naming the field.
"""

from __future__ import annotations

import inspect
import json
from typing import Any, Callable

import torch

from causalab.causal.task import Task
from causalab.errors import CausalabError, PartitionError
from causalab.experiments.config import ConfigFieldError, ExperimentConfig
from causalab.intervene import Partition
from causalab.neural.mlp import random_mlp, train_mlp
from causalab.neural.target import Site, Target
from causalab.registry import ALIGNMENTS, knobs_of, make_alignment, make_task, parse_spec

DTYPES = {"float32": torch.float32, "float64": torch.float64}
_COMBINED: dict[type, type] = {}


def field_error(field: str, exc: Exception, message: str | None = None) -> ConfigFieldError:
    """A :class:`ConfigFieldError` for ``field`` that is also an instance of ``exc``'s class.

    So ``except SiteError`` (or ``RegistryError``, ``PartitionError``) still catches a bad
    layer found by validation, and ``except ConfigError`` catches every bad field.
    """
    base = type(exc)
    if not issubclass(base, CausalabError) or issubclass(base, ConfigFieldError):
        return ConfigFieldError(field, message or str(exc))
    if base not in _COMBINED:
        _COMBINED[base] = type(f"{base.__name__}InConfig", (ConfigFieldError, base), {
            "__module__": __name__,
            "__reduce__": lambda self: (_rebuild, (base, self.field, self.detail)),  # picklable across processes
        })
    return _COMBINED[base](field, message or str(exc))


def _rebuild(base: type, field: str, detail: str) -> ConfigFieldError:
    return field_error(field, base(detail), detail)


def _parameters(fn: Callable, skip: tuple[str, ...]) -> list[str] | None:
    """Keyword options ``fn`` accepts, or None when it takes ``**kwargs`` (anything goes)."""
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.name not in skip and p.kind is not p.VAR_POSITIONAL]


def target_option_names(task: Task, kind: str) -> list[str] | None:
    """The ``target_options`` a target kind accepts for this task (None: not checkable)."""
    if task.extras.get("build_target") is not None:
        return _parameters(task.extras["build_target"], ("kind", "seed", "dtype"))
    if kind == "trained":
        return (_parameters(train_mlp, ("task", "seed")) or []) + ["cache", "checkpoint"]
    if kind == "random":
        return _parameters(random_mlp, ("task", "seed", "dtype"))
    if kind == "oracle" and task.extras.get("oracle") is not None:
        return _parameters(task.extras["oracle"], ())
    return []


def architecture_options(task: Task, options: dict[str, Any]) -> dict[str, Any]:
    """The subset of a trained target's options that its random initialisation also takes."""
    builder = task.extras.get("build_target") or random_mlp
    accepted = _parameters(builder, ("task", "kind", "seed", "dtype"))
    return dict(options) if accepted is None else {k: v for k, v in options.items() if k in accepted}


def untrained_target(config: ExperimentConfig, task: Task) -> Target | None:
    """A network with the architecture (sites, widths) ``config`` names, without training it.

    For ``trained`` targets: the random initialisation of the same kind and options. A
    task's own builder that rejects the training options for ``random`` gets none; if
    that fails too, None (the architecture cannot be known without training).
    """
    from causalab.experiments.runner import build_target

    dtype = DTYPES[config.dtype]
    if config.target != "trained":
        return build_target(task, config.target, config.target_seed, dtype=dtype, **config.target_options)
    options = architecture_options(task, config.target_options)
    try:
        return build_target(task, "random", config.target_seed, dtype=dtype, **options)
    except (TypeError, CausalabError):
        if not options or task.extras.get("build_target") is None:
            raise
    try:
        return build_target(task, "random", config.target_seed, dtype=dtype)
    except (TypeError, CausalabError):
        return None


def validate(config: ExperimentConfig | dict[str, Any], _targets: dict[str, Any] | None = None) -> ExperimentConfig:
    """Raise :class:`ConfigFieldError` naming the first invalid field; return the config if it is valid.

    Cheap: no data is sampled and nothing is trained (a ``pretrained`` target is loaded).
    """
    if not isinstance(config, ExperimentConfig):
        config = ExperimentConfig.from_dict(config)
    try:
        task = make_task(config.algorithm)
    except CausalabError as exc:
        raise field_error("algorithm", exc) from None

    _check_alignment_spec(config.alignment)

    accepted = target_option_names(task, config.target)
    if accepted is not None:
        unknown = sorted(set(config.target_options) - set(accepted))
        if unknown:
            raise ConfigFieldError(
                f"target_options.{unknown[0]}",
                f"target {config.target!r} of {task.name!r} takes no option(s) {unknown}; "
                f"it takes: {', '.join(accepted) or '(none)'}",
            )
    if config.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigFieldError("device", f"{config.device!r} was asked for, but torch sees no CUDA device")
    # the architecture does not depend on the seed: one network per distinct target across a sweep
    key = json.dumps([config.algorithm, config.target, config.target_options, config.dtype], sort_keys=True, default=str)
    try:
        if _targets is not None and key in _targets:
            target = _targets[key]
        else:
            target = untrained_target(config, task)
            if _targets is not None:
                _targets[key] = target
    except CausalabError as exc:
        raise field_error("target_options" if config.target_options else "target", exc) from None
    except TypeError as exc:  # a builder that rejected an option
        raise ConfigFieldError("target_options", str(exc)) from None
    if target is None:
        return config

    try:
        site = target.check_site(Site(config.layer, config.position))
    except CausalabError as exc:
        raise field_error("position" if config.position is not None and "position" in str(exc) else "layer", exc) from None
    width = target.width(site)

    try:
        phi = make_alignment(config.alignment, width)
    except CausalabError as exc:
        raise field_error("alignment", exc, f"{config.alignment!r} at hidden width {width}: {exc}") from None

    field = "partition" if config.partition is not None else "intervention_size"
    try:
        if config.partition is not None:
            missing = [v for v in task.variables if v not in config.partition]
            if missing:
                raise PartitionError(f"no block for variable(s) {missing} of {task.name!r} (variables: {task.variables})")
            extra = [v for v in config.partition if v not in task.variables]
            if extra:
                raise PartitionError(f"{task.name!r} has no variable(s) {extra} (variables: {task.variables})")
            partition = Partition(config.partition, width)
        else:
            partition = Partition.contiguous(task.variables, config.intervention_size, width)
        partition.check_fits(phi)
    except PartitionError as exc:
        raise field_error(field, exc) from None
    return config


def _check_alignment_spec(spec: str) -> tuple[str, dict[str, str]]:
    """Family and knob names, checked before any width is known."""
    try:
        family, knobs = parse_spec(spec)
        cls = ALIGNMENTS.get(family)
    except CausalabError as exc:
        raise field_error("alignment", exc) from None
    valid = knobs_of(cls)
    unknown = [k for k in knobs if k not in valid]
    if unknown:
        raise ConfigFieldError(
            "alignment", f"family {family!r} has no knob(s) {unknown}; its knobs are: {', '.join(valid) or '(none)'}"
        )
    return family, knobs


def validate_all(configs: list[ExperimentConfig]) -> None:
    """Validate every config; the error says which run (index and hash) and which field."""
    targets: dict[str, Any] = {}
    for i, config in enumerate(configs):
        try:
            validate(config, targets)
        except ConfigFieldError as exc:
            exc.detail = f"{exc.detail} (run {i + 1} of {len(configs)}, hash {config.hash()})"
            exc.args = (f"config field {exc.field!r}: {exc.detail}",)
            raise
