"""The alignment-map contract: an abstract base class with declared capabilities, no duck-typing."""

import pytest
import torch

import causalab as cl
from algorithms.hierarchical_equality import oracle_mlp
from alignments.standardize import StandardizableMap, Standardized
from causalab.errors import AlignmentError, FitError
from causalab.maps.knobs import coupling_width, int_at_least, positive_float, positive_int


def oracle_pairs(n_train=200, n_val=100):
    task = cl.make_task("both_equality_relations")
    target, site = oracle_mlp(), cl.Site(1)
    tr, va = task.counterfactuals(n_train + n_val, torch.Generator().manual_seed(0)).split([n_train, n_val])
    return task, target, site, cl.prepare(target, site, task, tr), cl.prepare(target, site, task, va)


class Scale(cl.AlignmentMap):
    def __init__(self, width):
        super().__init__(width)
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, h):
        return h * self.w

    def inverse(self, z):
        return z / self.w


def test_a_map_without_a_required_method_fails_at_construction_naming_it():
    class NoInverse(cl.AlignmentMap):
        def forward(self, h):
            return h

    with pytest.raises(AlignmentError, match="NoInverse does not implement inverse"):
        NoInverse(4)

    class Nothing(cl.AlignmentMap):
        pass

    with pytest.raises(AlignmentError, match="forward, inverse"):
        Nothing(4)

    class HalfCoupling(StandardizableMap):
        def _forward(self, x):
            return x

    with pytest.raises(AlignmentError, match="_inverse"):
        HalfCoupling(4)


def test_capabilities_are_declared_with_defaults():
    phi = Scale(4)
    assert phi.fitting == "gradient" and not phi.constructed and Scale.example_knobs(4) == {}
    assert phi.fit_statistics(torch.randn(8, 4)) is None  # a no-op
    with pytest.raises(AlignmentError, match="not fitted by a neuron search"):
        phi.reset()
    with pytest.raises(AlignmentError, match="not fitted by a neuron search"):
        phi.assign(cl.Partition({"V1": [0]}, 4), {"V1": [1]})
    assert cl.make_alignment("identity", 4).fitting == "gradient"
    assert cl.make_alignment("identity:search=greedy", 4).fitting == "search"
    assert cl.make_alignment("constructed", 4).constructed


def test_fit_alignment_fits_statistics_through_the_contract():
    task, target, site, tr, va = oracle_pairs()
    seen = []

    class Counting(Scale):
        def fit_statistics(self, h, refit=False):
            seen.append(tuple(h.shape))

    cl.fit_alignment(target, site, Counting(16), cl.Partition({"V1": [0], "V2": [1]}, 16), task, tr, va,
                     cl.FitConfig(epochs=1))
    assert seen == [tuple(tr.h_base.shape)]
    # a wrapped map gets the standardised states through the same declared method
    seen.clear()
    Standardized(Counting(16)).fit_statistics(tr.h_base)
    assert seen == [tuple(tr.h_base.shape)]


def test_a_user_map_declaring_a_search_is_searched():
    task, target, site, tr, va = oracle_pairs()
    calls = []

    class Searched(cl.AlignmentMap):
        fitting = "search"

        def forward(self, h):
            return h

        def inverse(self, z):
            return z

        def reset(self):
            calls.append("reset")

        def assign(self, partition, neurons):
            calls.append(("assign", {v: list(n) for v, n in neurons.items()}))

    part = cl.Partition({"V1": [0], "V2": [1]}, 16)
    cl.fit_alignment(target, site, Searched(16), part, task, tr, va, cl.FitConfig(epochs=1))
    assert calls[0] == "reset" and calls[-1][0] == "assign" and set(calls[-1][1]) == {"V1", "V2"}


def test_an_unknown_fitting_is_a_fit_error():
    task, target, site, tr, va = oracle_pairs()
    phi = Scale(16)
    phi.fitting = "annealing"
    with pytest.raises(FitError, match="fitting='annealing'"):
        cl.fit_alignment(target, site, phi, cl.Partition({"V1": [0], "V2": [1]}, 16), task, tr, va, cl.FitConfig(epochs=1))


def test_shared_knob_checks_name_family_and_knob():
    assert positive_int("revnet", "blocks", 3) == 3 and positive_float("glow", "scale_bound", 2) == 2.0
    assert coupling_width("revnet", 2) == 2
    for bad in (0, -1, True, 1.5, "2"):
        with pytest.raises(AlignmentError, match="revnet: knob 'blocks' must be a positive integer"):
            positive_int("revnet", "blocks", bad)
    for bad in (0, float("inf"), float("nan"), False):
        with pytest.raises(AlignmentError, match="glow: knob 'scale_bound' must be a positive finite number"):
            positive_float("glow", "scale_bound", bad)
    with pytest.raises(AlignmentError, match="revnet: a coupling map needs"):
        coupling_width("revnet", 1)
    assert int_at_least("constructed", "margin_steps", 0, 0) == 0
    with pytest.raises(AlignmentError, match="constructed: knob 'margin_steps' must be an integer >= 0, got -1"):
        int_at_least("constructed", "margin_steps", -1, 0)
    with pytest.raises(AlignmentError, match="spline_flow: knob 'bins'"):
        cl.make_alignment("spline_flow:bins=0", 4)
    with pytest.raises(AlignmentError, match="constructed: knob 'lr' must be a positive finite number"):
        cl.make_alignment("constructed:lr=0", 4)
