"""Run one experiment: build the pieces a config names (:mod:`~causalab.experiments.build`), then
measure (:func:`causalab.measure.measure`): sample, prepare, fit, score."""

from __future__ import annotations

import time
from typing import Callable

from causalab.experiments.build import build_run
from causalab.experiments.config import ExperimentConfig
from causalab.measure import Measurement, measure

# What a run returns: the one result type of every measurement, with its config attached.
ExperimentResult = Measurement


def run_experiment(
    config: ExperimentConfig, progress: Callable[[dict], None] | None = None, *, validated: bool = False
) -> Measurement:
    """Fit and score one config. ``validated=True`` skips the up-front check (sweeps validate every config first).

    The check builds the pieces dry, so a bad field fails before a trained target is trained.
    """
    start = time.perf_counter()
    if not validated:
        build_run(config, dry=True)
    run = build_run(config)
    result = measure(run.target, run.site, run.task, run.phi, config.settings(), partition=run.partition,
                     progress=progress)
    result.spec = config.alignment
    result.config = config
    result.seconds = time.perf_counter() - start
    return result
