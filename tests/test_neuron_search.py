"""The greedy identity map (``identity:search=greedy``): it finds planted neurons, ignores a distractor, is deterministic."""

import pytest
import torch

import causalab as cl
from algorithms.hierarchical_equality import oracle_mlp
from alignments.identity import IdentityMap
from causalab.errors import AlignmentError, PartitionError, RegistryError
from causalab.fit.neuron_search import candidate_count, greedy_neuron_blocks
from causalab.testing import check_alignment_map


def pairs(task, target, site, sizes, seed=0):
    data = task.counterfactuals(sum(sizes), torch.Generator().manual_seed(seed))
    return [cl.prepare(target, site, task, d) for d in data.split(sizes)]


def greedy_fit(task, target, site, size, seed=0, monitor="loss"):
    """Fit identity:search=greedy on fresh pairs; return the map, its partition, the fit and test IIA."""
    train, val, test = pairs(task, target, site, [64, 600, 1000], seed)
    phi = cl.make_alignment("identity:search=greedy", target.width(site))
    partition = cl.Partition.contiguous(task.variables, size, target.width(site))
    fit = cl.fit_alignment(target, site, phi, partition, task, train, val, cl.FitConfig(monitor=monitor))
    return phi, partition, fit, cl.evaluate(target, site, phi, partition, task, test).iia


def shuffled_oracle(perm):
    """The oracle MLP with its layer-1 neurons reordered: neuron ``k`` of the new net is ``perm[k]`` of the old."""
    model = oracle_mlp()
    l1, l2 = model.net[0], model.net[2]
    with torch.no_grad():
        l1.weight.copy_(l1.weight[perm]), l1.bias.copy_(l1.bias[perm])
        l2.weight.copy_(l2.weight[:, perm])
    return model


def test_candidate_count_is_what_the_search_scores():
    assert candidate_count(16, {"V1": 8, "V2": 8}) == 744
    assert candidate_count(16, {"V1": 8}) == 100
    assert candidate_count(24, {"V1": 12, "V2": 12}) == 2444
    calls = []
    greedy_neuron_blocks(7, {"a": 3, "b": 1}, lambda b: (calls.append(b) or 0, {}))
    assert len(calls) == candidate_count(7, {"a": 3, "b": 1}) == 7 * 6 + 5 + 4


def test_search_maximises_the_score_step_by_step():
    # the score rewards high neurons for "hi" and low ones for "lo"; ties go to the first candidate
    blocks, history = greedy_neuron_blocks(6, {"hi": 2, "lo": 2}, lambda b: (sum(b["hi"]) - sum(b["lo"]), {}))
    assert blocks == {"hi": [5, 4], "lo": [0, 1]}
    assert [h["step"] for h in history] == [1, 2] and history[0]["blocks"] == {"hi": [5], "lo": [0]}
    with pytest.raises(PartitionError, match="need 7 distinct neurons"):
        greedy_neuron_blocks(6, {"a": 4, "b": 3}, lambda b: (0, {}))


def test_greedy_finds_the_planted_neurons_of_a_shuffled_oracle():
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(3))
    target, site = shuffled_oracle(perm), cl.Site(1)
    task = cl.make_task("both_equality_relations")
    phi, partition, fit, test_iia = greedy_fit(task, target, site, 8)
    planted = {"V1": {k for k in range(16) if perm[k] < 8}, "V2": {k for k in range(16) if perm[k] >= 8}}
    assert {v: set(n) for v, n in phi.neurons(partition).items()} == planted
    assert test_iia == 1.0 and fit.best_val_iia == 1.0
    assert fit.steps == 744 and [h["step"] for h in fit.history] == list(range(1, 9))
    # and the fixed identity on the first 8 / last 8 neurons does not score 1.0 on this network
    fixed = cl.make_alignment("identity", 16)
    _, _, test = pairs(task, target, site, [64, 600, 1000])
    assert cl.evaluate(target, site, fixed, partition, task, test).iia < 0.9


def test_greedy_through_the_runner_on_the_oracle_target():
    res = cl.run_experiment(cl.ExperimentConfig(alignment="identity:search=greedy", target="oracle",
                                                n_train=64, n_val=500, n_test=1000))
    assert res.test.iia == 1.0 and res.num_parameters == 0


def distractor_oracle():
    """The oracle MLP with, at layer 2, an exact copy of V1's neuron that nothing above reads.

    Layer 2 of the oracle holds V1 = (x1 == x2) in neuron 0 and V2 in neuron 1. The copy
    goes to neuron 0 (the first candidate, so a tie would pick it) and V1 moves to neuron 2.
    """
    model = oracle_mlp()
    l2, l3 = model.net[2], model.net[4]
    with torch.no_grad():
        l2.weight[2], l2.bias[2] = l2.weight[0].clone(), l2.bias[0].clone()
        l3.weight[:, 2] = l3.weight[:, 0]
        l3.weight[:, 0] = 0.0
    return model


def test_greedy_picks_the_informative_neuron_before_a_correlated_distractor():
    target, site = distractor_oracle(), cl.Site(2)
    task = cl.make_task("left_equality_relation")
    x, _ = task.factual(2000, torch.Generator().manual_seed(0))
    h = target.hidden(x, site)
    assert torch.equal(h[:, 0], h[:, 2]) and h[:, 0].std() > 0  # the distractor is the variable's exact copy
    for monitor in ("loss", "iia"):
        phi, partition, fit, test_iia = greedy_fit(task, target, site, 2, monitor=monitor)
        assert fit.history[0]["blocks"] == {"V1": [2]}, monitor
        assert fit.history[0]["val_iia"] == 1.0 and test_iia == 1.0


def test_greedy_is_deterministic_for_a_seed_and_depends_on_the_data():
    target, site = cl.random_mlp(cl.make_task("both_equality_relations"), seed=1), cl.Site(1)
    task = cl.make_task("both_equality_relations")
    runs = [greedy_fit(task, target, site, 2, seed=s) for s in (5, 5)]
    (a, pa, fa, ia), (b, pb, fb, ib) = runs
    assert a.neurons(pa) == b.neurons(pb) and ia == ib and fa.history == fb.history


def test_assigned_permutation_keeps_every_interchange_invariant():
    def factory(width):
        phi = IdentityMap(width, search="greedy")
        partition = cl.Partition({"a": range(width // 2)}, width)
        chosen = torch.randperm(width, generator=torch.Generator().manual_seed(width))[: width // 2]
        phi.assign(partition, {"a": chosen.tolist()})
        return phi

    check_alignment_map(factory, max_examples=10)
    phi = factory(6)
    h = torch.randn(4, 6)
    assert not torch.equal(phi(h), h) and torch.equal(phi.inverse(phi(h)), h)


def test_a_fitted_greedy_map_saves_and_loads_with_its_neurons(tmp_path):
    target, site = shuffled_oracle(torch.randperm(16, generator=torch.Generator().manual_seed(4))), cl.Site(1)
    task = cl.make_task("left_equality_relation")
    phi, partition, _, test_iia = greedy_fit(task, target, site, 8)
    loaded = cl.load_alignment(cl.save_alignment(phi, tmp_path / "greedy.safetensors", partition=partition), width=16)
    assert loaded.map.neurons(loaded.partition) == phi.neurons(partition)
    h = torch.randn(5, 16)
    assert torch.equal(loaded.map(h), phi(h)) and torch.equal(h @ phi.matrix(), phi(h))


def test_bad_search_knob_and_bad_assignment_are_named():
    with pytest.raises((AlignmentError, RegistryError), match="fixed.*greedy"):
        cl.make_alignment("identity:search=random", 8)
    phi = IdentityMap(4, search="greedy")
    partition = cl.Partition({"a": [0, 1]}, 4)
    with pytest.raises(AlignmentError, match="1 neuron"):
        phi.assign(partition, {"a": [3]})
    with pytest.raises(AlignmentError, match="distinct"):
        phi.assign(partition, {"a": [3, 3]})


def test_module_example_runs():
    import doctest

    import causalab.fit.neuron_search

    assert doctest.testmod(causalab.fit.neuron_search).failed == 0
