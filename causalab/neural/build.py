"""The networks a config names: one builder for every target kind, for real or dry.

``build_target(task, kind, seed, dtype=..., dry=False, **options)``:

- ``trained``: the task family's MLP trained here (cached), or the family's own trained model;
- ``random``: the same architecture at its own random initialisation from ``seed``;
- ``oracle``: a hand-built network computing the algorithm in known neurons, where the family has one;
- ``pretrained``: a saved or hub model, for families that build their own targets (language models).

``dry=True`` gives a network of the same architecture without training it (for ``trained``, the
random initialisation of the same options): what validation reads sites and widths from.
Options are checked against what the builder takes, by name and value, before anything is
built; a bad one raises :class:`~causalab.errors.ConfigFieldError` naming ``target_options.NAME``.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable

import torch

from causalab.causal.task import Task
from causalab.errors import ConfigFieldError
from causalab.neural.mlp import random_mlp, train_mlp, trained_mlp
from causalab.neural.target import Target

TARGET_KINDS = ("trained", "random", "oracle", "pretrained")
_SKIP = ("task", "kind", "seed", "dtype", "dry")


def build_target(task: Task, kind: str, seed: int, *, dtype: torch.dtype = torch.float32, dry: bool = False,
                 **options: Any) -> Target:
    """The network of ``kind`` for ``task`` (see the module docstring); ``options`` go to its builder."""
    if kind not in TARGET_KINDS:
        raise ConfigFieldError("target", f"unknown target kind {kind!r}; valid: {', '.join(TARGET_KINDS)}")
    if task.build_target is not None:
        try:
            return task.build_target(kind, seed, dtype=dtype, dry=dry, **options)
        except TypeError as exc:  # a builder that rejected an option by its signature
            raise ConfigFieldError("target_options", f"target {kind!r} of {task.name!r}: {exc}") from None
    check_options(task, kind, options)
    if kind == "trained":
        if dry:
            return random_mlp(task, seed, dtype=dtype, **{k: v for k, v in options.items() if k in ("hidden", "depth")})
        return trained_mlp(task, seed, **options).to(dtype)
    if kind == "random":
        return random_mlp(task, seed, dtype=dtype, **options)
    if kind == "oracle":
        return task.oracle(**options).to(dtype)
    raise ConfigFieldError("target", f"task {task.name!r} has no {kind!r} targets; use 'trained', 'random' or 'oracle'")


def option_builder(task: Task, kind: str) -> Callable[..., Any] | None:
    """The function whose keyword parameters are the options of ``kind`` for ``task``'s MLP family."""
    if kind == "trained":
        return train_mlp
    if kind == "random":
        return random_mlp
    if kind == "oracle":
        if task.oracle is None:
            raise ConfigFieldError("target", f"task {task.name!r} has no oracle network; use target 'trained' or 'random'")
        return task.oracle
    return None


def option_names(task: Task, kind: str) -> list[str]:
    """The ``target_options`` a target kind takes for this (MLP-family) task."""
    builder = option_builder(task, kind)
    if builder is None:
        return []
    names = [p.name for p in _parameters(builder)]
    return names + (["cache", "checkpoint"] if kind == "trained" else [])


def check_options(task: Task, kind: str, options: dict[str, Any]) -> None:
    """Names and values of an MLP-family target's options, against its builder's signature."""
    if kind == "pretrained":
        raise ConfigFieldError("target", f"task {task.name!r} builds no pretrained targets (only families with their "
                                         "own builder, such as IOI's language models, do)")
    accepted = option_names(task, kind)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigFieldError(f"target_options.{unknown[0]}", f"target {kind!r} of {task.name!r} takes no option(s) "
                                                               f"{unknown}; it takes: {', '.join(accepted) or '(none)'}")
    params = {p.name: p for p in _parameters(option_builder(task, kind))}
    for name, value in options.items():
        if name == "cache":
            if not isinstance(value, str) or not value:
                raise ConfigFieldError("target_options.cache", f"must be a folder path, got {value!r}")
        elif name == "checkpoint":
            _check_number(name, value, int, minimum=0)
        else:
            _check_value(name, value, params[name])


def _parameters(fn: Callable[..., Any]) -> list[inspect.Parameter]:
    return [p for p in inspect.signature(fn).parameters.values()
            if p.name not in _SKIP and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _check_value(name: str, value: Any, param: inspect.Parameter) -> None:
    """Sizes, counts and rates are positive numbers; schedules are lists of non-negative counts."""
    annotation = str(param.annotation)
    default = param.default
    if value is None and "None" in annotation:
        return
    if "Sequence[int]" in annotation:
        if not isinstance(value, (list, tuple)) or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in value):
            raise ConfigFieldError(f"target_options.{name}", f"must be a list of non-negative integers, got {value!r}")
        return
    if annotation.startswith("int") or (isinstance(default, int) and not isinstance(default, bool)):
        _check_number(name, value, int, minimum=1)
    elif annotation.startswith("float") or isinstance(default, float):
        _check_number(name, value, float, minimum=None)


def _check_number(name: str, value: Any, kind: type, minimum: int | None) -> None:
    field = f"target_options.{name}"
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            raise ConfigFieldError(field, f"must be {what}, got {value!r}")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < math.inf):
        raise ConfigFieldError(field, f"must be a positive finite number, got {value!r}")

