"""Generalisation-aware abstraction scores: controls, out-of-distribution IIA, complexity, sample efficiency.

IIA alone cannot tell a network that implements an algorithm from an alignment map
expressive enough to impose it (the non-linear representation dilemma). Each score
here compares IIA against something that should *not* score well:

- :mod:`~causalab.scores.selectivity`: random-init networks and control algorithms;
- :mod:`~causalab.scores.out_of_distribution`: inputs from a part of the space the map never saw;
- :mod:`~causalab.scores.frontier`: simpler maps (how small a map suffices);
- :mod:`~causalab.scores.sample_efficiency`: fewer fitting pairs (memorisation).

See ``docs/scores.md`` for how to read them.
"""

from causalab.scores.control_algorithm import RandomPartitionMechanism, control_algorithm
from causalab.scores.difference import Difference, newcombe_interval, pooled
from causalab.scores.frontier import Frontier, FrontierComparison, complexity_frontier, frontier_gap
from causalab.scores.out_of_distribution import (
    OODResult,
    ood_iia,
    region_split,
    resolve_split,
    restrict_inputs,
    sign_split,
)
from causalab.scores.sample_efficiency import EfficiencyPoint, sample_efficiency
from causalab.scores.selectivity import (
    Selectivity,
    control_algorithm_selectivity,
    random_network_selectivity,
    selectivity,
)

__all__ = [
    "Difference",
    "EfficiencyPoint",
    "Frontier",
    "FrontierComparison",
    "OODResult",
    "RandomPartitionMechanism",
    "Selectivity",
    "complexity_frontier",
    "control_algorithm",
    "control_algorithm_selectivity",
    "frontier_gap",
    "newcombe_interval",
    "ood_iia",
    "pooled",
    "random_network_selectivity",
    "region_split",
    "resolve_split",
    "restrict_inputs",
    "sample_efficiency",
    "selectivity",
    "sign_split",
]
