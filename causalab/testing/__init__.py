"""A property-testing kit for causal algorithms, alignment maps and interchanges.

Run it on your own objects from any test::

    from causalab.testing import check_algorithm, check_alignment_map

    def test_my_algorithm():
        check_algorithm(my_algorithm())

Failures raise :class:`InvariantViolation` (an ``AssertionError``) naming the
invariant and the shrunk counterexample. The hypothesis strategies behind the
checks live in :mod:`causalab.testing.strategies`, the invariants as plain
functions in :mod:`causalab.testing.invariants`, pytest fixtures in
:mod:`causalab.testing.plugin`.
"""

from causalab.testing.checks import (
    ALGORITHM_INVARIANTS,
    INTERCHANGE_INVARIANTS,
    MAP_INVARIANTS,
    check_algorithm,
    check_alignment_map,
    check_interchange,
    kit_settings,
)
from causalab.testing.oracle import OracleTarget, oracle_iia, oracle_task
from causalab.testing.strategies import (
    HiddenRecipe,
    MapRecipe,
    algorithms,
    alignment_maps,
    hidden_recipes,
    hidden_states,
    inputs_of,
    knob_choices,
    map_recipes,
    partitions,
)
from causalab.testing.table_algorithm import NodeSpec, TableAlgorithm, random_algorithm
from causalab.testing.violations import InvariantViolation, KitError

__all__ = [
    "ALGORITHM_INVARIANTS",
    "HiddenRecipe",
    "INTERCHANGE_INVARIANTS",
    "InvariantViolation",
    "KitError",
    "MAP_INVARIANTS",
    "MapRecipe",
    "NodeSpec",
    "OracleTarget",
    "TableAlgorithm",
    "algorithms",
    "alignment_maps",
    "check_algorithm",
    "check_alignment_map",
    "check_interchange",
    "hidden_recipes",
    "hidden_states",
    "inputs_of",
    "kit_settings",
    "knob_choices",
    "map_recipes",
    "oracle_iia",
    "oracle_task",
    "partitions",
    "random_algorithm",
]
