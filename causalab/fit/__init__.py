"""Fitting and measuring a map with the network frozen: the layer above ``maps/``, below the experiments.

- ``fitting.py``: prepare pairs, :func:`fit_alignment`, :func:`evaluate` (``causalab.fit.train`` is the same module, for old imports);
- ``measure.py``: one measurement (sample, prepare, fit, score) and its record;
- ``metrics.py``: IIA with its interval, beside chance and the network's accuracy;
- ``construct.py``: the constructed map (the paper's Theorem 1), built instead of fitted;
- ``neuron_search.py``, ``schedule.py``: the neuron search and the learning-rate schedule a fit uses.
"""
