"""Symbolic causal models: algorithms, counterfactual data, tasks."""

from causalab.causal.algorithm import Algorithm
from causalab.causal.counterfactual import CounterfactualDataset, sample_counterfactuals
from causalab.causal.task import Task

__all__ = ["Algorithm", "CounterfactualDataset", "sample_counterfactuals", "Task"]
