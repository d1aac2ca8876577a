"""The kit's own strategies and conventions: random algorithms pass, knobs are drawn, families are found."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from causalab import AlignmentMap
from causalab.errors import AlignmentError
from causalab.registry import ALIGNMENTS, register_alignment
from causalab.testing import (
    HiddenRecipe,
    KitError,
    algorithms,
    check_alignment_map,
    inputs_of,
    kit_settings,
    knob_choices,
    map_recipes,
    oracle_iia,
    partitions,
    random_algorithm,
)
from causalab.testing import invariants as inv
from causalab.testing.plugin import *  # noqa: F401,F403 - the fixtures, as a user would import them

torch.set_num_threads(1)

FAST = settings(max_examples=15, deadline=None, derandomize=True, database=None)


@FAST
@given(st.data())
def test_random_algorithms_satisfy_the_algorithm_invariants(data) -> None:
    alg = data.draw(algorithms(), label="algorithm")
    base = data.draw(inputs_of(alg), label="base")
    n = next(iter(base.values())).shape[0]
    source = data.draw(inputs_of(alg, min_batch=n, max_batch=n), label="source")
    variable = data.draw(st.sampled_from(alg.nodes), label="variable")
    inv.no_intervention(alg, base)
    inv.batch_rows_independent(alg, base)
    inv.same_value_interchange(alg, base, source, variable)
    inv.parents_from_source(alg, base, source)
    inv.non_ancestor_interchange(alg, base, source, variable)


def test_random_algorithms_score_one_on_their_oracle() -> None:
    for seed in range(6):
        assert oracle_iia(random_algorithm(seed), n=48, seed=seed).iia == 1.0


def test_table_algorithm_repr_shows_the_tables() -> None:
    text = repr(random_algorithm(0))
    assert "(input)" in text and "->" in text


@FAST
@given(st.data())
def test_partitions_fit_the_swappable_coordinates(data) -> None:
    width = data.draw(st.integers(1, 12))
    swappable = data.draw(st.integers(1, width))
    part = data.draw(partitions(width, ("A", "B", "C"), swappable=swappable))
    used = [i for b in part.blocks.values() for i in b]
    assert len(used) == len(set(used)) and all(0 <= i < swappable for i in used)


def test_hidden_recipes_rebuild_exactly() -> None:
    r = HiddenRecipe((4, 3, 8), scale=10.0, kind="outliers", seed=7)
    assert torch.equal(r.build(), r.build()) and r.build().shape == (4, 3, 8)


class Constrained(AlignmentMap):
    """A toy family whose knob needs constraints: ``k`` must divide the width."""

    tolerance = 0.0

    def __init__(self, width: int, k: int = 1, flip: bool = False) -> None:
        super().__init__(width)
        if width % k:
            raise AlignmentError(f"k={k} must divide width {width}")
        self.k, self.flip = k, flip

    @classmethod
    def example_knobs(cls, width: int) -> dict:
        return {"k": [d for d in range(1, width + 1) if width % d == 0]}

    def forward(self, h):
        return h.flip(-1) if self.flip else h

    def inverse(self, z):
        return z.flip(-1) if self.flip else z


def test_example_knobs_constrain_and_defaults_fill_the_rest() -> None:
    choices = knob_choices(Constrained, 6)
    assert choices["k"] == [1, 2, 3, 6] and choices["flip"] == [False, True]
    check_alignment_map(Constrained, settings=kit_settings(8))


def test_a_family_registered_later_is_drawn() -> None:
    name = "kit_test_constrained"
    register_alignment(name)(Constrained)
    try:
        assert name in ALIGNMENTS.names()
        seen = set()

        @settings(FAST, max_examples=60)
        @given(map_recipes())
        def draw(recipe) -> None:
            seen.add(recipe.family)

        draw()
        check_alignment_map(name, invariants=["round_trip"], settings=kit_settings(5))
    finally:
        ALIGNMENTS._items.pop(name, None)
    assert name in seen


def test_a_knob_without_default_or_type_is_a_kit_error() -> None:
    class Opaque(AlignmentMap):
        def __init__(self, width, mystery):
            super().__init__(width)

    with pytest.raises(KitError, match="example_knobs"):
        knob_choices(Opaque, 4)


def test_unknown_invariant_is_a_kit_error() -> None:
    with pytest.raises(KitError, match="round_trip"):
        check_alignment_map("identity", invariants=["roundtrip"])


def test_fixtures_from_the_plugin(kit, alignment_family) -> None:
    assert alignment_family in ALIGNMENTS.names()
    kit.check_alignment_map(alignment_family, invariants=["empty_block"])
