"""Run one experiment: build the pieces a config names, fit the map, score IIA on held-out pairs."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

import torch

from causalab.alignment import AlignmentMap
from causalab.causal.task import Task
from causalab.errors import ConfigError, PartitionError
from causalab.experiments.config import ExperimentConfig
from causalab.intervene import Partition
from causalab.metrics import IIAResult
from causalab.neural.mlp import random_mlp, trained_mlp
from causalab.neural.target import Site, Target
from causalab.registry import make_alignment, make_task
from causalab.train import FitConfig, FitResult, evaluate, fit_alignment, prepare

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def build_target(task: Task, kind: str, seed: int, *, dtype: torch.dtype = torch.float32, **options: Any) -> Target:
    """The network a config names. A task may supply its own builder in ``task.extras["build_target"]``."""
    builder: Callable[..., Target] | None = task.extras.get("build_target")
    if builder is not None:
        return builder(kind, seed, dtype=dtype, **options)
    if kind == "trained":
        return trained_mlp(task, seed, **options).to(dtype)
    if kind == "random":
        return random_mlp(task, seed, **options).to(dtype)
    if kind == "oracle":
        oracle = task.extras.get("oracle")
        if oracle is None:
            raise ConfigError(f"task {task.name!r} has no oracle network; use target 'trained' or 'random'")
        return oracle().to(dtype)
    raise ConfigError(f"unknown target kind {kind!r}")


def build_partition(config: ExperimentConfig, task: Task, width: int) -> Partition:
    try:
        if config.partition is not None:
            missing = [v for v in task.variables if v not in config.partition]
            if missing:
                raise PartitionError(f"partition gives no block for variable(s) {missing} of {task.name!r}")
            return Partition(config.partition, width)
        return Partition.contiguous(task.variables, config.intervention_size, width)
    except PartitionError as exc:
        raise ConfigError(f"partition: {exc}") from None


@dataclass
class ExperimentResult:
    config: ExperimentConfig
    test: IIAResult
    train_iia: float
    fit: FitResult
    num_parameters: int
    seconds: float
    width: int | None = None

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready record: config, hash, IIA (overall and per variable set, with 95% intervals), sizes, timing."""
        return {
            "config": self.config.to_dict(),
            "hash": self.config.hash(),
            "iia": self.test.iia,
            "test": self.test.to_dict(),
            "train_iia": self.train_iia,
            "best_val_iia": self.fit.best_val_iia,
            "epochs_run": self.fit.epochs_run,
            "steps": self.fit.steps,
            "num_parameters": self.num_parameters,
            "width": self.width,
            "n_train": self.config.n_train,
            "n_val": self.config.n_val,
            "n_test": self.config.n_test,
            "seconds": self.seconds,
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": versions(),
        }


def versions() -> dict[str, str]:
    """Versions that can change a result: the record keeps them beside the numbers."""
    from causalab import __version__

    return {"causalab": __version__, "torch": torch.__version__, "python": platform.python_version()}


def setup(config: ExperimentConfig):
    """Build task, target, site, alignment map and partition, validating all before any work."""
    task = make_task(config.algorithm)
    dtype = DTYPES[config.dtype]
    target = build_target(task, config.target, config.target_seed, dtype=dtype, **config.target_options)
    target = target.to(config.device)
    site = target.check_site(Site(config.layer, config.position))
    width = target.width(site)
    torch.manual_seed(config.seed)
    phi: AlignmentMap = make_alignment(config.alignment, width).to(device=config.device, dtype=dtype)
    partition = build_partition(config, task, width)
    try:
        partition.check_fits(phi)
    except PartitionError as exc:
        raise ConfigError(f"partition: {exc}") from None
    return task, target, site, phi, partition


def run_experiment(
    config: ExperimentConfig, progress: Callable[[dict], None] | None = None, *, validated: bool = False
) -> ExperimentResult:
    """Fit and score one config. ``validated=True`` skips the up-front check (sweeps validate every config first)."""
    from causalab.experiments.validate import validate

    start = time.perf_counter()
    if not validated:
        validate(config)  # fails naming the field before a trained target is trained
    task, target, site, phi, partition = setup(config)
    gen = torch.Generator().manual_seed(config.seed)
    sizes = [config.n_train, config.n_val, config.n_test]
    splitter = task.extras.get("counterfactual_splits")  # a task with its own split control (e.g. disjoint names)
    if splitter is not None:
        train_d, val_d, test_d = splitter(sizes, gen)
    else:
        train_d, val_d, test_d = task.counterfactuals(sum(sizes), gen).split(sizes)
    kw = {"device": config.device, "dtype": DTYPES[config.dtype]}
    train, val, test = (prepare(target, site, task, d, **kw) for d in (train_d, val_d, test_d))
    fit_cfg = FitConfig(
        epochs=config.epochs, batch_size=config.batch_size, lr=config.lr, patience=config.patience, seed=config.seed,
        monitor=config.monitor,
    )
    fit = fit_alignment(target, site, phi, partition, task, train, val, fit_cfg, progress=progress)
    test_iia = evaluate(target, site, phi, partition, task, test)
    train_iia = evaluate(target, site, phi, partition, task, train).iia
    return ExperimentResult(
        config, test_iia, train_iia, fit, phi.num_parameters, time.perf_counter() - start, width=partition.width
    )
