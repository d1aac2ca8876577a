"""Counterfactual sampling: variable-set probabilities, balancing, custom samplers, speed."""

import time

import pytest
import torch

from causalab import Algorithm, make_task, sample_counterfactuals
from causalab.errors import SamplingError, UnknownNodeError


def chain():
    # y depends on v1 only through v2: intervening on v1 must not freeze v2
    return Algorithm.from_functions(
        {"a": (0, 1), "b": (0, 1)},
        {"v1": lambda a: a, "v2": lambda v1, b: v1 ^ b, "y": lambda v2: v2},
        name="chain",
    )


def test_counterfactual_labels_match_a_direct_interchange():
    alg = chain()
    ds = sample_counterfactuals(alg, 500, [("v1",), ("v2",), ("v1", "v2")], seed=3)
    for k, s in enumerate(ds.intervention_sets):
        rows = torch.nonzero(ds.set_index == k).flatten()
        base = {i: v[rows] for i, v in ds.base.items()}
        expect = alg.interchange(base, {v: {i: x[rows] for i, x in ds.sources[v].items()} for v in s})["y"]
        assert torch.equal(ds.counterfactual_outputs["y"][rows], expect)


def test_rows_not_intervening_on_a_variable_carry_the_base_as_source():
    ds = sample_counterfactuals(chain(), 300, [("v1",), ("v2",)], seed=0)
    for v in ("v1", "v2"):
        rows = ~ds.intervened(v)
        for name in ds.base:
            assert torch.equal(ds.sources[v][name][rows], ds.base[name][rows])


def test_set_probabilities_are_respected():
    ds = sample_counterfactuals(chain(), 30_000, [("v1",), ("v2",), ("v1", "v2")], probs=[0.6, 0.3, 0.1], seed=1)
    freq = torch.bincount(ds.set_index, minlength=3).float() / len(ds)
    assert torch.allclose(freq, torch.tensor([0.6, 0.3, 0.1]), atol=0.02)


@pytest.mark.parametrize("share", [0.0, 0.5, 0.8])
def test_balancing_reaches_the_requested_share(share):
    ds = sample_counterfactuals(chain(), 2_000, [("v1",)], change_share=share, seed=2)
    assert len(ds) == 2_000
    assert ds.label_changed("y").float().mean().item() == pytest.approx(share, abs=1e-3)


def test_impossible_balance_is_a_clear_error():
    const = Algorithm.from_functions({"a": (0, 1)}, {"v": lambda a: a, "y": lambda v: v * 0}, name="const")
    with pytest.raises(SamplingError, match="change_share"):
        sample_counterfactuals(const, 100, [("v",)], change_share=0.5, seed=0, max_rounds=3)


def test_custom_pair_sampler_is_used():
    def flip_a(base, variable, g):
        return {"a": 1 - base["a"], "b": base["b"]}

    ds = sample_counterfactuals(chain(), 200, [("v1",)], pair_sampler=flip_a, seed=0)
    assert torch.equal(ds.sources["v1"]["a"], 1 - ds.base["a"])
    assert ds.label_changed("y").all()


def test_unknown_intervened_variable():
    with pytest.raises(UnknownNodeError, match="'v9'"):
        sample_counterfactuals(chain(), 10, [("v9",)])


def test_same_seed_same_data():
    a = sample_counterfactuals(chain(), 100, [("v1",), ("v2",)], seed=7)
    b = sample_counterfactuals(chain(), 100, [("v1",), ("v2",)], seed=7)
    assert torch.equal(a.base["a"], b.base["a"]) and torch.equal(a.set_index, b.set_index)


def test_hierarchical_equality_pairs_are_right_and_fast():
    task = make_task("both_equality_relations")
    start = time.perf_counter()
    ds = task.counterfactuals(1_000_000, torch.Generator().manual_seed(0))
    elapsed = time.perf_counter() - start
    assert elapsed < 20, f"a million pairs took {elapsed:.1f}s"
    sub = ds.subset(slice(0, 2000))
    eq = lambda a, b: (a == b).all(-1)
    v1 = torch.where(sub.intervened("V1"), eq(sub.sources["V1"]["x1"], sub.sources["V1"]["x2"]), eq(sub.base["x1"], sub.base["x2"]))
    v2 = torch.where(sub.intervened("V2"), eq(sub.sources["V2"]["x3"], sub.sources["V2"]["x4"]), eq(sub.base["x3"], sub.base["x4"]))
    assert torch.equal(sub.counterfactual_outputs["O"], v1 == v2)
    # each pair equal with probability 1/2
    assert eq(ds.base["x1"], ds.base["x2"]).float().mean().item() == pytest.approx(0.5, abs=0.01)


def test_identity_of_first_argument_sources_reuse_base_x2_half_the_time():
    task = make_task("identity_of_first_argument")
    ds = task.counterfactuals(20_000, torch.Generator().manual_seed(0))
    reuse = (ds.sources["x1"]["x1"] == ds.base["x2"]).all(-1).float().mean().item()
    assert reuse == pytest.approx(0.5, abs=0.02)
