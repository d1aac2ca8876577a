"""Declarative experiments: configs (also from TOML), validation, the runner, sweeps, the results store, reports."""

from causalab.errors import ConfigFieldError, StoreError, SweepError
from causalab.experiments.build import build_run
from causalab.experiments.config import BuildSettings, ExperimentConfig
from causalab.experiments.grid import SweepSpec, expand_grid, load_configs, load_sweep
from causalab.experiments.report import layer_table, summarize, summary_table, write_report
from causalab.experiments.runner import ExperimentResult, run_experiment
from causalab.experiments.store import ResultStore, load_records
from causalab.experiments.sweep import SweepEvent, SweepSummary, execute, run_sweep
from causalab.experiments.validate import validate, validate_all
from causalab.fit.measure import Run

__all__ = [
    "BuildSettings",
    "ConfigFieldError",
    "ExperimentConfig",
    "ExperimentResult",
    "ResultStore",
    "Run",
    "StoreError",
    "SweepError",
    "SweepEvent",
    "SweepSpec",
    "SweepSummary",
    "build_run",
    "execute",
    "expand_grid",
    "layer_table",
    "load_configs",
    "load_records",
    "load_sweep",
    "run_experiment",
    "run_sweep",
    "summarize",
    "summary_table",
    "validate",
    "validate_all",
    "write_report",
]
