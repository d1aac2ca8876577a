"""The declarative description of one alignment experiment."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import tomllib

from causalab.errors import ConfigError, ConfigFieldError
from causalab.fit.measure import MeasureSettings, known_fields_only
from causalab.neural.build import TARGET_KINDS

# Fields added after results were first recorded, with their defaults: the hash leaves a field
# out while it is at this default, so adding a field never orphans a results file.
HASHED_WHEN_SET: dict[str, Any] = {"monitor": "iia", "validate_on": "val", "component": "block_output",
                                   "warmup_steps": 0, "lr_schedule": "constant", "loss": "task",
                                   "task_options": {}, "min_delta": 1e-4, "val_every": 0, "plateau_factor": 0.5,
                                   "plateau_patience": 10, "plateau_on": "train_loss"}


@known_fields_only
@dataclass
class ExperimentConfig(MeasureSettings):
    """One run: which algorithm, network, site and alignment map, measured with the
    :class:`~causalab.fit.measure.MeasureSettings` it inherits (pair counts, fitting, seed, dtype, device).

    ``target`` is ``trained`` (trained here, cached), ``random`` (random init from
    ``target_seed``) or ``oracle`` (a hand-built network computing the algorithm,
    where the task family has one), or ``pretrained`` (a saved or hub model named in
    ``target_options``, for tasks that build their own targets). ``component`` is what is read and
    patched at the layer: ``block_output`` (the default), or on language models
    ``attention_output``, ``mlp_output`` or ``heads:3`` / ``heads:0,5``. ``partition`` optionally gives explicit
    coordinate blocks per variable; otherwise each variable gets
    ``intervention_size`` consecutive coordinates. ``task_options`` go to the task's factory
    (IOI's data regime, see :func:`algorithms.ioi.ioi_pattern_task`); they enter the hash only when set.
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
    # an experiment's defaults differ from a score's measurement
    n_train: int = 20_000
    n_val: int = 2_000
    n_test: int = 5_000
    epochs: int = 20

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
        super().__post_init__()
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
            self.partition = {k: list(v) for k, v in self.partition.items()}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def settings(self) -> MeasureSettings:
        """The measurement settings alone (what :func:`causalab.fit.measure.measure` reads)."""
        return MeasureSettings(**{f.name: getattr(self, f.name) for f in fields(MeasureSettings)})

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
        text = json.dumps(data, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_toml(path: str | os.PathLike) -> dict[str, Any]:
    """Parse a TOML file, turning a missing file or a syntax error into a :class:`ConfigError`."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
