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
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from causalab.causal.task import Task
from causalab.errors import ConfigFieldError
from causalab.neural.mlp import random_mlp, train_mlp, trained_mlp
from causalab.neural.target import Target

TARGET_KINDS = ("trained", "random", "oracle", "pretrained")
_SKIP = ("task", "kind", "seed", "dtype", "dry")


def build_target(task: Task, kind: str, seed: int, *, dtype: torch.dtype = torch.float32, dry: bool = False,
                 **options: Any) -> Target:
    """The network of ``kind`` for ``task``; ``options`` go to its builder.

    Parameters
    ----------
    task : Task
        The task whose network is built (its family decides the architecture).
    kind : {"trained", "random", "oracle", "pretrained"}
        ``trained``: the task family's MLP trained here (cached) or the family's own trained
        model; ``random``: the same architecture at its own random initialisation from ``seed``;
        ``oracle``: a hand-built network computing the algorithm in known neurons;
        ``pretrained``: a saved or hub model (language-model families).
    seed : int
        The network's seed (initialisation, and training data for ``trained``).
    dtype : torch.dtype
        The network's dtype.
    dry : bool
        A network of the same architecture, never trained: what validation reads sites from.
    **options
        The builder's own options (``hidden``, ``depth``, ... for MLPs; ``size``, ``arch``,
        ``init`` for language models), each checked by name and value before anything is built.

    Returns
    -------
    Target
        The network, frozen, with its sites (``target.sites()``) and widths.

    Raises
    ------
    ConfigFieldError
        An unknown kind (field ``target``) or option (``target_options.NAME``), naming the valid ones.

    Examples
    --------
    >>> import causalab as cl
    >>> task = cl.make_task("both_equality_relations")
    >>> net = cl.build_target(task, "random", 0, hidden=32)
    >>> net.width(cl.Site(1)), len(net.sites())
    (32, 3)
    >>> cl.build_target(task, "random", 0, hiden=32)
    Traceback (most recent call last):
    ...
    causalab.errors.ConfigFieldError: config field 'target_options.hiden': ... takes no option(s) ['hiden']; it takes: hidden, depth
    """
    if kind not in TARGET_KINDS:
        raise ConfigFieldError("target", f"unknown target kind {kind!r}; valid: {', '.join(TARGET_KINDS)}")
    if task.build_target is not None:
        _bind_options(task, kind, seed, dtype, dry, options)
        return task.build_target(kind, seed, dtype=dtype, dry=dry, **options)
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


def _bind_options(task: Task, kind: str, seed: int, dtype: torch.dtype, dry: bool, options: dict[str, Any]) -> None:
    """Check ``options`` against the signature of the task's own target builder, before calling it.

    A ``TypeError`` raised *inside* the builder is a defect of the builder and propagates as one;
    only options its signature does not take are reported as bad ``target_options``.
    """
    try:
        signature = inspect.signature(task.build_target)
    except (TypeError, ValueError):  # a builtin or C callable: nothing to read
        return
    try:
        signature.bind(kind, seed, dtype=dtype, dry=dry, **options)
    except TypeError as exc:
        taken = [p.name for p in signature.parameters.values()
                 if p.kind is p.KEYWORD_ONLY and p.name not in _SKIP]
        raise ConfigFieldError("target_options", f"target {kind!r} of {task.name!r}: {exc}; "
                               f"options it takes: {', '.join(taken) or 'none'}") from None


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


def check_options(task: Task, kind: str, options: dict[str, Any]) -> None:
    """Names and values of an MLP-family target's options, against its builder's signature."""
    if kind == "pretrained":
        raise ConfigFieldError("target", f"task {task.name!r} builds no pretrained targets (only families with their "
                                         "own builder, such as IOI's language models, do)")
    extra = {"cache": _folder, "checkpoint": lambda name, v: _check_number(name, v, int, minimum=0)} if kind == "trained" else {}
    check_target_options(options, option_builder(task, kind), target=f"target {kind!r} of {task.name!r}", extra=extra)


def check_target_options(
    options: dict[str, Any],
    builder: Callable[..., Any] | None,
    *,
    target: str,
    skip: Sequence[str] = (),
    extra: Mapping[str, Callable[[str, Any], None] | None] | None = None,
    choices: Mapping[str, tuple[str, Sequence[Any]]] | None = None,
) -> None:
    """Check ``target_options`` by name and value against the keyword parameters of ``builder``.

    The options a target takes are its builder's keyword parameters (less ``task``, ``kind``,
    ``seed``, ``dtype``, ``dry`` and ``skip``; a ``**kwargs`` catch-all accepts no option), plus
    ``extra``: names the family handles itself, each with a checker ``(name, value)`` or None.
    ``choices`` maps a name to ``(what it is, valid values)``. Other values are checked from the
    parameter's annotation and default: integers positive, floats positive and finite, ``Sequence[int]``
    lists of non-negative integers. Families with their own builder (IOI's language models) call
    this too, so a misspelt option never reaches a builder that would ignore it.

    Raises
    ------
    ConfigFieldError
        naming ``target_options.NAME`` and the options ``target`` takes, or the valid values.

    Example
    -------
    >>> def builder(seed, *, hidden: int = 16, depth: int = 3): ...
    >>> check_target_options({"hiden": 8}, builder, target="my net")
    Traceback (most recent call last):
    causalab.errors.ConfigFieldError: config field 'target_options.hiden': my net takes no option(s) ['hiden']; it takes: hidden, depth
    """
    extra = dict(extra or {})
    choices = dict(choices or {})
    params = {p.name: p for p in (_parameters(builder) if builder is not None else []) if p.name not in skip}
    accepted = list(params) + [name for name in extra if name not in params]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigFieldError(f"target_options.{unknown[0]}", f"{target} takes no option(s) {unknown}; "
                                                               f"it takes: {', '.join(accepted) or '(none)'}")
    for name, value in options.items():
        if name in choices:
            what, valid = choices[name]
            if value not in valid:
                raise ConfigFieldError(f"target_options.{name}", f"unknown {what} {value!r}; valid: "
                                                                 f"{', '.join(map(str, valid))}")
        elif name in extra:
            if extra[name] is not None:
                extra[name](name, value)
        else:
            _check_value(name, value, params[name])


def _folder(name: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise ConfigFieldError(f"target_options.{name}", f"must be a folder path, got {value!r}")


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

