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
from causalab.runtime import RuntimeSettings

# What a run returns: the one result type of every measurement, with its config attached.
ExperimentResult = Measurement


def run_experiment(
    config: ExperimentConfig,
    progress: Callable[[dict], None] | None = None,
    *,
    validated: bool = False,
    save_map: str | os.PathLike | None = None,
    runtime: RuntimeSettings | None = None,
) -> Measurement:
    """Fit and score one config. ``validated=True`` skips the up-front check (sweeps validate every config first).

    The check builds the pieces dry, so a bad field fails before a trained target is trained.
    ``save_map`` (a folder) saves the fitted map there as ``<config hash>.safetensors``
    (:func:`causalab.save_alignment`, with its partition and the config hash); the
    result's ``map_file`` and the record's ``"map_file"`` name the file. ``runtime``
    (default: read from the environment once) is recorded beside the results, never hashed.
    """
    start = time.perf_counter()
    if not validated:
        build_run(config, dry=True)
    folder = map_folder(save_map) if save_map is not None else None
    run = build_run(config)
    result = measure(run.target, run.site, run.task, run.phi, config.settings(), partition=run.partition,
                     progress=progress, runtime=runtime)
    result.spec = config.alignment
    result.config = config
    if folder is not None:
        path = folder / f"{config.hash()}.safetensors"
        result.map_file = str(save_alignment(result.phi, path, partition=result.partition, config_hash=config.hash()))
    result.seconds = time.perf_counter() - start
    return result
