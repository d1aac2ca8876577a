"""Check configs before any work starts: build the pieces each names, dry (never train).

A valid config builds (:func:`~causalab.experiments.build.build_run` with ``dry=True``);
an invalid one fails with a :class:`~causalab.errors.ConfigFieldError` naming the field.
"""

from __future__ import annotations

from typing import Any

from causalab.errors import ConfigFieldError
from causalab.experiments.build import build_run
from causalab.experiments.config import ExperimentConfig
from causalab.neural.target import Target


def validate(config: ExperimentConfig | dict[str, Any], _targets: dict[str, Target] | None = None) -> ExperimentConfig:
    """Raise :class:`ConfigFieldError` naming the first invalid field; return the config if it is valid.

    Cheap: no data is sampled and nothing is trained (a ``pretrained`` target is loaded).
    """
    if not isinstance(config, ExperimentConfig):
        config = ExperimentConfig.from_dict(config)
    build_run(config, dry=True, targets=_targets)
    return config


def validate_all(configs: list[ExperimentConfig]) -> None:
    """Validate every config; the error says which run (index and hash) and which field."""
    targets: dict[str, Target] = {}
    for i, config in enumerate(configs):
        try:
            validate(config, targets)
        except ConfigFieldError as exc:
            exc.detail = f"{exc.detail} (run {i + 1} of {len(configs)}, hash {config.hash()})"
            exc.args = (f"config field {exc.field!r}: {exc.detail}",)
            raise
