"""The declarative description of one alignment experiment."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import tomllib
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

from causalab.errors import ConfigError, ConfigFieldError
from causalab.fit.fitting import FitConfig
from causalab.fit.measure import FLAT_ORDER, MeasureSettings, unknown_field
from causalab.neural.build import TARGET_KINDS

# Fields added after results were first recorded, with their defaults: the hash leaves a field
# out while it is at this default, so adding a field never orphans a results file.
HASHED_WHEN_SET: dict[str, Any] = {"monitor": "iia", "validate_on": "val", "component": "block_output",
                                   "warmup_steps": 0, "lr_schedule": "constant", "loss": "task",
                                   "task_options": {}, "min_delta": 1e-4, "val_every": 0, "plateau_factor": 0.5,
                                   "plateau_patience": 10, "plateau_on": "train_loss", "max_steps": None}


@dataclass(frozen=True)
class BuildSettings:
    """What to build for one run: the algorithm (and its task options), the network, the site and the alignment map.

    ``target`` is ``trained`` (trained here, cached), ``random`` (random init from
    ``target_seed``) or ``oracle`` (a hand-built network computing the algorithm,
    where the task family has one), or ``pretrained`` (a saved or hub model named in
    ``target_options``, for tasks that build their own targets). ``component`` is what is read and
    patched at the layer: ``block_output`` (the default), or on language models
    ``attention_output``, ``mlp_output`` or ``heads:3`` / ``heads:0,5``. ``partition`` optionally gives explicit
    coordinate blocks per variable; otherwise each variable gets the measurement's
    ``intervention_size`` consecutive coordinates. ``task_options`` go to the task's factory
    (IOI's data regime, see :func:`algorithms.ioi.ioi_pattern_task`). Each field is checked here,
    once, for its type; whether the network has the layer, or the registry the map family, is
    checked when the run is built (:func:`~causalab.experiments.build.build_run`). A bad field raises
    :class:`~causalab.errors.ConfigFieldError` naming it.

    >>> BuildSettings(algorithm="left_equality_relation", layer=2).layer
    2
    """

    algorithm: str = "both_equality_relations"
    alignment: str = "rotation"
    target: str = "trained"
    target_seed: int = 0
    layer: int = 1
    position: str | int | None = None
    component: str = "block_output"
    partition: dict[str, list[int]] | None = None
    target_options: dict[str, Any] = field(default_factory=dict)
    task_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("algorithm", "alignment", "component"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise ConfigFieldError(name, f"must be a non-empty string, got {getattr(self, name)!r}")
        if self.target not in TARGET_KINDS:
            raise ConfigFieldError("target", f"must be one of {TARGET_KINDS}, got {self.target!r}")
        if not isinstance(self.layer, int) or isinstance(self.layer, bool):  # its range is the target's: checked at build
            raise ConfigFieldError("layer", f"must be an integer layer number (1 is the first hidden layer or block), "
                                            f"got {self.layer!r}")
        v = self.target_seed
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ConfigFieldError("target_seed", f"must be a non-negative integer, got {v!r}")
        if self.position is not None and (isinstance(self.position, bool) or not isinstance(self.position, (str, int))):
            raise ConfigFieldError("position", f"must be a token position (string or integer) or absent, got {self.position!r}")
        for name in ("target_options", "task_options"):
            if not isinstance(getattr(self, name), dict):
                raise ConfigFieldError(name, f"must be a table of options, got {getattr(self, name)!r}")
        if self.partition is not None:
            if not isinstance(self.partition, dict):
                raise ConfigFieldError("partition", f"must map each variable to a list of coordinates, got {self.partition!r}")
            for var, block in self.partition.items():
                if not isinstance(block, (list, tuple)) or not all(isinstance(i, int) and not isinstance(i, bool) for i in block):
                    raise ConfigFieldError(f"partition.{var}", f"must be a list of integer coordinates, got {block!r}")
            object.__setattr__(self, "partition", {k: list(v) for k, v in self.partition.items()})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


BUILD_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(BuildSettings))


@dataclass(frozen=True, init=False)
class ExperimentConfig:
    """One run: what to build (``build``, a :class:`BuildSettings`) and how to measure it (``measure``, a
    :class:`~causalab.fit.measure.MeasureSettings`, whose ``fit`` is how to fit the map).

    It is made from flat fields, as a config file or the command line gives them
    (``ExperimentConfig(algorithm="ioi_pattern", layer=2, epochs=5)``: each goes to the part
    that defines it, and that part checks it), or from the parts
    (``ExperimentConfig(build=BuildSettings(...), measure=MeasureSettings(...))``); flat fields given
    beside a part change it (``ExperimentConfig(measure=settings, seed=1)``). The parts are
    handed on whole: :func:`~causalab.experiments.build.build_run` builds ``build``,
    :func:`~causalab.fit.measure.measure_run` reads ``measure``, :func:`~causalab.fit.fitting.fit_alignment`
    ``measure.fit``. A field reads flat too (``config.layer``, ``config.epochs``). An experiment's
    measurement defaults to more pairs and epochs than a score's (``EXPERIMENT_DEFAULTS``).
    ``to_dict()`` is flat and is what a results record keeps and :meth:`hash` identifies.

    >>> config = ExperimentConfig(algorithm="left_equality_relation", layer=2, epochs=5)
    >>> config.build.layer, config.measure.fit.epochs, config.n_train
    (2, 5, 20000)
    >>> config.replace(seed=1).fit.seed
    1
    >>> config
    ExperimentConfig(epochs=5, algorithm='left_equality_relation', layer=2)
    """

    build: BuildSettings = field(default_factory=BuildSettings)
    measure: MeasureSettings = field(default_factory=MeasureSettings)

    # an experiment's measurement defaults differ from a score's
    EXPERIMENT_DEFAULTS: ClassVar[dict[str, Any]] = {"n_train": 20_000, "n_val": 2_000, "n_test": 5_000, "epochs": 20}

    def __init__(self, build: BuildSettings | None = None, measure: MeasureSettings | None = None, **values: Any) -> None:
        names = self.field_names()
        for name in values:
            if name not in names:
                raise unknown_field(type(self).__name__, name, [*names, "build", "measure"])
        built = {k: v for k, v in values.items() if k in BUILD_FIELDS}
        measured = {k: v for k, v in values.items() if k not in BUILD_FIELDS}
        for part, given, cls in (("build", build, BuildSettings), ("measure", measure, MeasureSettings)):
            if given is not None and not isinstance(given, cls):
                raise ConfigFieldError(part, f"must be a {cls.__name__}, got {type(given).__name__}")
        # flat fields beside a given part change that part (what dataclasses.replace(config, seed=1) does)
        object.__setattr__(self, "build", BuildSettings(**built) if build is None else
                           dataclasses.replace(build, **built) if built else build)
        object.__setattr__(self, "measure", MeasureSettings(**{**self.EXPERIMENT_DEFAULTS, **measured}) if measure is None
                           else measure.replace(**measured) if measured else measure)

    @classmethod
    def field_names(cls) -> list[str]:
        """Every flat field: what a config file, a command-line option and a grid may name."""
        return [*FLAT_ORDER, *BUILD_FIELDS]

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Every flat field with its default (a fresh copy)."""
        return cls().to_dict()

    @property
    def fit(self) -> FitConfig:
        """How to fit the map (``measure.fit``)."""
        return self.measure.fit

    def __getattr__(self, name: str) -> Any:
        """A field read flat: ``config.layer`` is ``config.build.layer``, ``config.epochs`` ``config.measure.fit.epochs``."""
        if name in BUILD_FIELDS:
            return getattr(self.build, name)
        if name in MEASURE_NAMES:
            return getattr(self.measure, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __dir__(self) -> list[str]:  # the flat fields too, for completion
        return sorted({*super().__dir__(), *BUILD_FIELDS, *MEASURE_NAMES})

    def __repr__(self) -> str:
        """The flat fields set away from their defaults, as the call that makes the config again."""
        defaults = _default_fields()
        changed = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if v != defaults[k])
        return f"{type(self).__name__}({changed})"

    def to_dict(self) -> dict[str, Any]:
        """Every field flat: what a config file holds and a results record keeps."""
        return {**self.measure.to_dict(), **self.build.to_dict()}

    def replace(self, **changes: Any) -> ExperimentConfig:
        """A copy with ``changes`` (flat fields) applied and checked."""
        return type(self)(**{**self.to_dict(), **changes})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentConfig:
        return cls(**data)  # an unknown field is a ConfigFieldError listing the valid ones

    @classmethod
    def from_toml(cls, path: str | os.PathLike) -> ExperimentConfig:
        """One run from a TOML file whose top-level keys are config fields (see :func:`read_toml`)."""
        data = read_toml(path)
        tables = [k for k in ("base", "grid", "profiles") if k in data]
        if tables:
            raise ConfigError(f"{path}: has [{tables[0]}], so it is a sweep file; load it with causalab.experiments.load_sweep")
        return cls.from_dict(data)

    def hash(self) -> str:
        """A stable identifier of the run: the same config gives the same hash."""
        data = self.to_dict()
        for name, default in HASHED_WHEN_SET.items():  # fields added later: old runs keep their hash
            if data[name] == default:
                del data[name]
        return stable_hash(data)


def stable_hash(data: dict[str, Any]) -> str:
    """The one hash of a record's key: 16 hex digits of the SHA-256 of its sorted JSON (what
    :meth:`ExperimentConfig.hash` returns for a config's flat fields, and the dilemma's extra fits for theirs).

    >>> stable_hash({"b": 1, "a": [2]}) == stable_hash({"a": [2], "b": 1})
    True
    """
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


@functools.cache
def _default_fields() -> dict[str, Any]:
    """Every flat field's default (read-only: shared by every repr)."""
    return ExperimentConfig().to_dict()


MEASURE_NAMES: frozenset[str] = frozenset(FLAT_ORDER) | {"torch_dtype"}


def read_toml(path: str | os.PathLike) -> dict[str, Any]:
    """Parse a TOML file, turning a missing file or a syntax error into a :class:`ConfigError`."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
