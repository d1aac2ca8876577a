"""Run one experiment: build the pieces a config names (:mod:`~causalab.experiments.build`), then
measure (:func:`causalab.fit.measure.measure`): sample, prepare, fit, score."""

from __future__ import annotations

import os
import time
from typing import Callable

from causalab.experiments.build import build_run
from causalab.experiments.config import ExperimentConfig
from causalab.fit.measure import Measurement, measure
from causalab.maps.saved import map_folder, save_alignment

# What a run returns: the one result type of every measurement, with its config attached.
ExperimentResult = Measurement


def run_experiment(
    config: ExperimentConfig,
    progress: Callable[[dict], None] | None = None,
    *,
    validated: bool = False,
    save_map: str | os.PathLike | None = None,
) -> Measurement:
    """Fit and score one config, building its pieces once.

    Building is checking: a bad field fails with a :class:`~causalab.errors.ConfigFieldError`
    as the pieces are built. Only a ``trained`` target, whose building may train a network, is
    first built dry, so that a bad field fails before the training (``validated=True`` skips
    that: sweeps validate every config first).
    ``save_map`` (a folder) saves the fitted map there as ``<config hash>.safetensors``
    (:func:`causalab.save_alignment`, with its partition and the config hash); the
    result's ``map_file`` and the record's ``"map_file"`` name the file.
    """
    start = time.perf_counter()
    if not validated and config.target == "trained":
        build_run(config, dry=True)
    folder = map_folder(save_map) if save_map is not None else None
    run = build_run(config)
    result = measure(run.target, run.site, run.task, run.phi, config.settings(), partition=run.partition,
                     progress=progress)
    result.spec = config.alignment
    result.config = config
    if folder is not None:
        path = folder / f"{config.hash()}.safetensors"
        result.map_file = str(save_alignment(result.phi, path, partition=result.partition, config_hash=config.hash()))
    result.seconds = time.perf_counter() - start
    return result
