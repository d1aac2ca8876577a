"""Name -> plug-in registries for algorithms (task factories) and alignment-map families.

The registry imports no plug-in by a name of its own: the built-ins (the installed packages
``algorithms`` and ``alignments``) register themselves when the top of the package,
``causalab/__init__.py``, imports them, so no module here imports a module that imports it.
Third-party packages register through the entry-point groups ``causalab.algorithms`` /
``causalab.alignments`` (a module, loaded on first lookup), or a user's own module calls
:func:`register_algorithm` / :func:`register_alignment` and is imported before use
(``causalab run --plugin mymodule``).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, TypeVar

from causalab.errors import RegistryError

T = TypeVar("T")


class Registry:
    def __init__(self, kind: str, entry_point_group: str) -> None:
        self.kind = kind
        self._group = entry_point_group
        self._items: dict[str, Any] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            existing = self._items.get(name)
            if existing is not None and existing is not obj and _qualname(existing) != _qualname(obj):
                raise RegistryError(f"{self.kind} {name!r} is already registered by {_qualname(existing)}")
            self._items[name] = obj
            return obj

        return deco

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for ep in entry_points(group=self._group):
            ep.load()

    def get(self, name: str) -> Any:
        self._load()
        if name not in self._items:
            raise RegistryError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")
        return self._items[name]

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._items


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


ALGORITHMS = Registry("algorithm", "causalab.algorithms")
ALIGNMENTS = Registry("alignment", "causalab.alignments")


def register_algorithm(name: str) -> Callable[[T], T]:
    """Register a factory returning a :class:`causalab.Task` under ``name`` (a decorator).

    Parameters
    ----------
    name : str
        The name :func:`make_task`, configs (``algorithm = "name"``) and ``causalab list
        algorithms`` use. Registering a name twice is a :class:`RegistryError`.

    Returns
    -------
    decorator
        It registers the factory and returns it unchanged. The factory's keyword parameters
        are the task's options (``make_task(name, **options)``).

    Examples
    --------
    >>> import causalab as cl
    >>> @cl.register_algorithm("docs_left_equality")
    ... def left_equality():
    ...     return cl.make_task("left_equality_relation")
    >>> cl.make_task("docs_left_equality").variables
    ['V1']
    """
    return ALGORITHMS.register(name)


def register_alignment(name: str) -> Callable[[T], T]:
    """Register an alignment-map class under ``name`` (a decorator).

    Parameters
    ----------
    name : str
        The family's name in spec strings (``"name:knob=value"``). The class subclasses
        :class:`causalab.AlignmentMap`; its constructor is ``cls(width, **knobs)`` and its
        keyword parameters are the knobs a spec may set.

    Returns
    -------
    decorator
        It registers the class and returns it unchanged.

    Examples
    --------
    >>> import torch, causalab as cl
    >>> @cl.register_alignment("docs_scale")
    ... class Scale(cl.AlignmentMap):
    ...     def __init__(self, width, factor: float = 2.0):
    ...         super().__init__(width)
    ...         self.factor = factor
    ...     def forward(self, h):
    ...         return h * self.factor
    ...     def inverse(self, z):
    ...         return z / self.factor
    >>> cl.make_alignment("docs_scale:factor=4", 3)(torch.ones(1, 3))
    tensor([[4., 4., 4.]])
    """
    return ALIGNMENTS.register(name)


def import_plugin(module: str) -> None:
    """Import a user's module so that its registrations take effect.

    Parameters
    ----------
    module : str
        A module name as ``import`` takes it (``"mypackage.tasks"``); the command line's
        ``--plugin`` calls this. Modules in the working folder are found too.

    Raises
    ------
    RegistryError
        The module cannot be imported (the message carries Python's reason).

    Examples
    --------
    >>> import causalab as cl
    >>> cl.import_plugin("algorithms.hierarchical_equality")   # already imported: nothing happens
    >>> cl.import_plugin("no_such_module_here")
    Traceback (most recent call last):
    ...
    causalab.errors.RegistryError: cannot import plug-in module 'no_such_module_here': No module named 'no_such_module_here'
    """
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise RegistryError(f"cannot import plug-in module {module!r}: {exc}") from exc


def task_options_of(name: str) -> dict[str, inspect.Parameter]:
    """The options a registered task factory takes (its keyword parameters), by name."""
    params = inspect.signature(ALGORITHMS.get(name)).parameters
    return {k: p for k, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def make_task(name: str, **options: Any):
    """Build the registered task (algorithm bound to its encoding) called ``name``.

    Parameters
    ----------
    name : str
        A registered task: ``causalab list algorithms`` prints them with their options.
    **options
        Options of the task's factory (IOI's data regime: ``roles="fixed"``, ``names=21``, ...).

    Returns
    -------
    Task
        The algorithm, its encoding into network inputs, labels and intervention sets.

    Raises
    ------
    RegistryError
        An unknown name, or an option the factory does not take, naming the valid ones.

    Examples
    --------
    >>> import causalab as cl
    >>> task = cl.make_task("both_equality_relations")
    >>> task.variables, task.intervention_sets
    (['V1', 'V2'], [('V1',), ('V2',), ('V1', 'V2')])
    >>> cl.make_task("ioi_pattern", roles="fixed", names=21).regime.roles
    'fixed'
    """
    factory = ALGORITHMS.get(name)
    valid = task_options_of(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise RegistryError(f"task {name!r} takes no option(s) {unknown}; its options are: "
                            f"{', '.join(valid) or '(none)'}")
    return factory(**options)
