"""Symbolic algorithm specs, one file per task family. Each registers its tasks by name."""

from algorithms import hierarchical_equality

__all__ = ["hierarchical_equality"]
