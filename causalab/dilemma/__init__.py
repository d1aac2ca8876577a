"""The non-linear representation dilemma (Sutter et al. 2025) as an application of causalab.

Its experiments are sweep files installed with this package (``causalab/dilemma/sweeps``);
:func:`run_dilemma` runs a profile of them, resumably, and writes tables, figures and the
generalisation-aware scores. ``causalab dilemma`` is the command line over it.
"""

from causalab.dilemma.run import EXPERIMENTS, PROFILES, DilemmaSummary, Experiment, configs_dir, load_profile, run_dilemma

__all__ = ["EXPERIMENTS", "PROFILES", "DilemmaSummary", "Experiment", "configs_dir", "load_profile", "run_dilemma"]
