"""Declarative experiments: configs and the runner."""

from causalab.experiments.config import ExperimentConfig
from causalab.experiments.runner import ExperimentResult, build_target, run_experiment

__all__ = ["ExperimentConfig", "ExperimentResult", "build_target", "run_experiment"]
