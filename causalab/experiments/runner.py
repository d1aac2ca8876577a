"""Run one experiment: build the pieces ``config.build`` names (:mod:`~causalab.experiments.build`), then
measure them with ``config.measure`` (:func:`causalab.fit.measure.measure_run`): sample, prepare, fit, score."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from causalab.experiments.build import build_run
from causalab.experiments.config import ExperimentConfig
from causalab.fit.measure import Measurement, measure_run
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
    """Fit and score one config, building its pieces once.

    Building is checking: a bad field fails with a :class:`~causalab.errors.ConfigFieldError`
    as the pieces are built. Only a ``trained`` target, whose building may train a network, is
    first built dry, so that a bad field fails before the training (``validated=True`` skips
    that: sweeps validate every config first).

    Parameters
    ----------
    config : ExperimentConfig
        What to build (algorithm, target, site, alignment spec, partition), how to fit and
        how to measure; ``causalab list`` and ``ExperimentConfig``'s fields name the choices.
    progress : callable, optional
        Called with a dict after each fitting epoch or check (step, losses, IIA).
    validated : bool
        The config was validated already (:func:`causalab.experiments.validate`).
    save_map : str or os.PathLike, optional
        A folder: the fitted map is saved there as ``<config hash>.safetensors``
        (:func:`causalab.save_alignment`, with its partition and the config hash); the
        result's ``map_file`` and the record's ``"map_file"`` name the file.
    runtime : RuntimeSettings, optional
        Threads, the LM cache's budget and dtype, compilation (default: read from the
        environment once); recorded beside the results, never hashed.

    Returns
    -------
    Measurement
        Train, validation and test IIA with intervals and per intervention set, the chance
        level, the network's own accuracy, the fitted map, its history and
        ``to_record()`` for a results file.

    Raises
    ------
    ConfigFieldError
        A field that cannot be built, naming it (``layer``, ``alignment``,
        ``target_options.size``, ...) and what is valid.

    Examples
    --------
    >>> import causalab as cl
    >>> config = cl.ExperimentConfig(algorithm="left_equality_relation", target="oracle", alignment="identity",
    ...                              partition={"V1": list(range(8))}, n_train=500, n_val=100, n_test=500)
    >>> result = cl.run_experiment(config)
    >>> result.test.iia, result.chance   # chance: always answering the most frequent counterfactual label
    (1.0, 0.506)
    >>> cl.run_experiment(cl.ExperimentConfig(layer=9, target="oracle"))
    Traceback (most recent call last):
    ...
    causalab.errors.SiteFieldError: config field 'layer': MLP has hidden layers 1..3; layer 9 does not exist
    """
    start = time.perf_counter()
    if not validated and config.build.target == "trained":
        build_run(config, dry=True)
    folder = map_folder(save_map) if save_map is not None else None
    result = measure_run(build_run(config), config.measure, progress=progress, runtime=runtime)
    if folder is not None:
        key = config.hash()
        result.map_file = str(save_alignment(result.phi, folder / f"{key}.safetensors", partition=result.partition,
                                             config_hash=key))
    result.seconds = time.perf_counter() - start
    return result
