"""The declarative description of one alignment experiment."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from causalab.errors import ConfigError

TARGET_KINDS = ("trained", "random", "oracle")
DTYPES = ("float32", "float64")


@dataclass
class ExperimentConfig:
    """One run: which algorithm, network, site and alignment map, with what data and fitting.

    ``target`` is ``trained`` (trained here, cached), ``random`` (random init from
    ``target_seed``) or ``oracle`` (a hand-built network computing the algorithm,
    where the task family has one). ``partition`` optionally gives explicit
    coordinate blocks per variable; otherwise each variable gets
    ``intervention_size`` consecutive coordinates.
    """

    algorithm: str = "both_equality_relations"
    alignment: str = "rotation"
    target: str = "trained"
    target_seed: int = 0
    layer: int = 1
    position: str | int | None = None
    intervention_size: int = 8
    partition: dict[str, list[int]] | None = None
    n_train: int = 20_000
    n_val: int = 2_000
    n_test: int = 5_000
    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-2
    patience: int = 3
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    target_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.target not in TARGET_KINDS:
            raise ConfigError(f"target must be one of {TARGET_KINDS}, got {self.target!r}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        for name in ("n_train", "n_val", "n_test", "epochs", "batch_size", "patience", "layer"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if not isinstance(self.intervention_size, int) or self.intervention_size < 0:
            raise ConfigError(f"intervention_size must be a non-negative integer, got {self.intervention_size!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ExperimentConfig":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown config field(s) {unknown}; valid fields: {', '.join(sorted(names))}")
        return cls(**data)

    def hash(self) -> str:
        """A stable identifier of the run: the same config gives the same hash."""
        text = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
