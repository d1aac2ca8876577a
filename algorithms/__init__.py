"""Symbolic algorithm specs, one file per task family. Each registers its tasks by name."""

from algorithms import distributive_law, hierarchical_equality, ioi

__all__ = ["distributive_law", "hierarchical_equality", "ioi"]
