"""Sweep files: a ``[base]`` config, a ``[grid]`` of lists over any config fields, named profiles.

.. code-block:: toml

    name = "dilemma-small"              # optional
    results = "results/small.jsonl"     # optional default results file (relative to this file)
    save_maps = "results/small-maps"    # optional: save each run's fitted map in this folder

    [base]                              # fields shared by every run
    algorithm = "both_equality_relations"
    n_train = 2000

    [grid]                              # the product of these lists, in file order
    alignment = ["identity", "rotation"]
    target = ["trained", "random"]
    layer = [1, 2, 3]
    target_options.hidden = [16, 32]    # a nested option (dotted key)
    "seed,target_seed" = [[0, 0], [1, 1]]   # linked fields move together

    [profiles.quick]                    # --profile quick: overrides base, replaces grid axes
    base = { n_train = 256, epochs = 1 }
    grid = { layer = [1] }

Identical configs produced by the grid are run once (they share a hash).
"""

from __future__ import annotations

import copy
import itertools
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from causalab.errors import ConfigError
from causalab.experiments.config import ConfigFieldError, ExperimentConfig, read_toml

TOP_LEVEL = ("name", "results", "save_maps", "base", "grid", "profiles")
NESTED = ("target_options", "task_options", "partition")  # dict-valued fields whose entries a dotted key may set


@dataclass
class SweepSpec:
    """A parsed sweep: base fields, grid axes (dotted field path or linked paths -> values)."""

    base: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    name: str | None = None
    results: Path | None = None
    profile: str | None = None
    save_maps: Path | None = None  # folder for the fitted maps (the file's 'save_maps' key), if any

    def configs(self) -> list[ExperimentConfig]:
        return expand_grid(self.base, self.grid)


def _field_names() -> set[str]:
    return set(ExperimentConfig.field_names())


def _check_path(path: str, where: str) -> None:
    head, _, rest = path.partition(".")
    if head not in _field_names():
        raise ConfigFieldError(
            path, f"unknown config field {head!r} in {where}; valid fields: {', '.join(sorted(_field_names()))}"
        )
    if rest and head not in NESTED:
        raise ConfigFieldError(path, f"{head!r} is not a table; dotted keys are allowed under {', '.join(NESTED)}")


def _flatten_grid(grid: Mapping[str, Any], prefix: str = "") -> dict[str, list[Any]]:
    """TOML nests ``a.b = [..]`` as ``{a: {b: [..]}}``; turn that back into dotted axis names."""
    out: dict[str, list[Any]] = {}
    for key, value in grid.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten_grid(value, path + "."))
        elif isinstance(value, list):
            if not value:
                raise ConfigFieldError(path, "a grid axis needs at least one value, got an empty list")
            out[path] = value
        else:
            raise ConfigFieldError(path, f"a grid axis must be a list of values, got {value!r}; put single values in [base]")
    return out


def _axis_paths(axis: str) -> list[str]:
    return [p.strip() for p in axis.split(",")]


def _set_path(data: dict[str, Any], path: str, value: Any) -> None:
    head, _, rest = path.partition(".")
    if not rest:
        data[head] = copy.deepcopy(value)
        return
    inner = data.get(head)
    inner = {} if inner is None else dict(inner)
    inner[rest] = copy.deepcopy(value)
    data[head] = inner


def expand_grid(base: Mapping[str, Any], grid: Mapping[str, Iterable[Any]] | None = None) -> list[ExperimentConfig]:
    """The product of the grid's axes applied over ``base``, in axis order, without duplicate configs.

    An axis name is a config field, a dotted path into ``target_options`` / ``partition``,
    or several comma-separated paths whose values are lists moved together.
    """
    grid = _flatten_grid(dict(grid or {}))
    base = dict(base)
    for key in base:
        _check_path(key, "[base]")
    for axis, values in grid.items():
        paths = _axis_paths(axis)
        for path in paths:
            _check_path(path, "[grid]")
        if len(paths) > 1:
            for v in values:
                if not isinstance(v, list) or len(v) != len(paths):
                    raise ConfigFieldError(axis, f"each value of a linked axis must list {len(paths)} values, got {v!r}")
    configs, seen = [], set()
    for combo in itertools.product(*grid.values()):
        data = copy.deepcopy(base)
        for axis, value in zip(grid, combo):
            paths = _axis_paths(axis)
            for path, v in zip(paths, value if len(paths) > 1 else [value]):
                _set_path(data, path, v)
        config = ExperimentConfig.from_dict(data)
        h = config.hash()
        if h not in seen:
            seen.add(h)
            configs.append(config)
    return configs


def parse_sweep(data: Mapping[str, Any], *, profile: str | None = None, origin: str | os.PathLike | None = None) -> SweepSpec:
    """A :class:`SweepSpec` from the parsed TOML of a sweep file (see the module docstring)."""
    where = str(origin) if origin is not None else "sweep"
    unknown = [k for k in data if k not in TOP_LEVEL]
    if unknown:
        raise ConfigFieldError(unknown[0], f"{where}: unknown top-level key(s) {unknown}; valid: {', '.join(TOP_LEVEL)} "
                               "(config fields go under [base])")
    base = dict(data.get("base", {}))
    grid = _flatten_grid(data.get("grid", {}))
    profiles = data.get("profiles", {})
    if profile is not None:
        if profile not in profiles:
            raise ConfigError(f"{where}: no profile {profile!r}; profiles: {', '.join(profiles) or '(none)'}")
        prof = profiles[profile]
        bad = [k for k in prof if k not in ("base", "grid")]
        if bad:
            raise ConfigFieldError(f"profiles.{profile}.{bad[0]}", "a profile holds only 'base' and 'grid' tables")
        base.update(prof.get("base", {}))
        grid.update(_flatten_grid(prof.get("grid", {})))
    results, save_maps = (_beside(data.get(key), origin, key) for key in ("results", "save_maps"))
    return SweepSpec(base=base, grid=grid, name=data.get("name"), results=results, profile=profile, save_maps=save_maps)


def _beside(value: Any, origin: str | os.PathLike | None, key: str) -> Path | None:
    """A path named in a sweep file, relative to the file."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigFieldError(key, f"must be a path (a string), got {value!r}")
    path = Path(value)
    if origin is not None and not path.is_absolute():
        path = Path(origin).parent / path
    return path


def load_sweep(path: str | os.PathLike, profile: str | None = None) -> SweepSpec:
    """Read a sweep file. A file with only top-level config fields is a sweep of one run."""
    data = read_toml(path)
    if not any(k in data for k in ("base", "grid", "profiles")):
        if profile is not None:
            raise ConfigError(f"{path}: a single-run file has no profiles (asked for {profile!r})")
        ExperimentConfig.from_dict(data)  # a single-run file: check its fields now
        return SweepSpec(base=data, name=Path(path).stem)
    spec = parse_sweep(data, profile=profile, origin=path)
    spec.name = spec.name or Path(path).stem
    return spec


def load_configs(path: str | os.PathLike, profile: str | None = None) -> list[ExperimentConfig]:
    """Every config of a run or sweep file (grid expanded, duplicates removed)."""
    return load_sweep(path, profile).configs()
