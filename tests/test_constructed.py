"""Theorem 1's constructed map: IIA 1.0 on its pairs (random MLP, tiny random LM), a bijection on every
point it moves, its fixed map everywhere else, a non-injective site refused by name."""

import doctest

import pytest
import torch

import causalab as cl
import causalab.fit.construct
from causalab.errors import AlignmentError, FitError, NotInjectiveError

torch.set_num_threads(1)

SMALL = dict(n_train=300, n_val=100, n_test=300)


def mlp_setup(n: int = 200, seed: int = 0):
    task = cl.make_task("both_equality_relations")
    target = cl.random_mlp(task, seed=0)
    data = task.counterfactuals(n, torch.Generator().manual_seed(seed))
    return task, target, cl.Site(1), data, cl.Partition.contiguous(task.variables, 4, 16)


def test_random_mlp_scores_iia_one_on_its_pairs_and_chance_outside():
    config = cl.ExperimentConfig(algorithm="both_equality_relations", target="random", alignment="constructed",
                                 intervention_size=4, **SMALL)
    result = cl.run_experiment(config)
    assert result.train_iia == 1.0 and result.test_iia == 1.0 and result.fit.best_val_iia == 1.0
    built = result.fit.history[0]["construction"]
    assert built["pairs"] == 700 and built["iia"] == [1.0, 1.0, 1.0] and built["unreached"] == 0
    assert result.num_parameters == built["stored_values"] == 2 * built["codes"] * 16 + 16 * 16
    assert result.to_record()["history"][0]["construction"]["ceiling"] == 1.0
    # off the construction set the map is a fixed rotation: the network by itself, about chance
    task = cl.make_task("both_equality_relations")
    fresh = task.counterfactuals(400, torch.Generator().manual_seed(123))
    run = cl.experiments.build.build_run(config)
    outside = result.score(run.target, run.site, run.task, fresh).iia
    assert outside < 0.7


def test_validating_on_the_training_pairs_builds_on_train_and_test():
    task, target, site, data, partition = mlp_setup(300)
    train, val, test = data.split([100, 100, 100])
    settings = cl.MeasureSettings(n_train=100, n_val=100, n_test=100, intervention_size=4, validate_on="train")
    result = cl.measure(target, site, task, "constructed", settings, pairs=(train, val, test), partition=partition)
    built = result.fit.history[0]["construction"]
    assert built["pairs"] == 200 and result.test_iia == result.fit.best_val_iia == 1.0
    assert result.score(target, site, task, val).iia < 0.8  # the validation pairs were not built on


def test_tiny_random_lm_scores_iia_one():
    config = cl.ExperimentConfig(algorithm="ioi_pattern", target="random", target_options={"size": "tiny"},
                                 position="last", layer=1, alignment="constructed", **SMALL)
    result = cl.run_experiment(config)
    assert result.train_iia == 1.0 and result.test_iia == 1.0
    assert result.fit.history[0]["construction"]["min_distance"] > 0


@pytest.mark.parametrize("fixed", ["rotation", "identity"])
def test_a_bijection_on_every_point_it_moves_and_its_fixed_map_elsewhere(fixed):
    task, target, site, data, partition = mlp_setup()
    phi = cl.construct_alignment(target, site, task, partition, data, fixed=fixed)
    assert phi.construction.iia[0] >= phi.construction.ceiling and phi.points == 2 * len(phi.codes) > 0
    phi.check_bijective()
    with torch.no_grad():
        codes, targets = phi.codes, phi.targets
        assert torch.equal(phi.swap(codes), targets) and torch.equal(phi.swap(targets), codes)
        states = phi.inverse(codes)  # what the interchange hands the network for each code
        assert torch.equal(phi.forward(states), codes) and torch.equal(phi.inverse(phi.forward(states)), states)
        assert torch.equal(phi.forward(phi.inverse(targets)), targets)
        # reachable states (bases, sources) and states it was not built on: the fixed map, nothing else
        pairs = cl.prepare(target, site, task, data)
        fresh = cl.prepare(target, site, task, task.counterfactuals(100, torch.Generator().manual_seed(9)))
        for h in (pairs.h_base, pairs.h_sources["V1"], fresh.h_base):
            assert torch.equal(phi(h), phi.fixed_map(h))
            assert torch.allclose(phi.inverse(phi(h)), h, atol=1e-6)
        if fixed == "identity":
            assert torch.equal(phi(fresh.h_base), fresh.h_base) and torch.equal(phi.inverse(fresh.h_base), fresh.h_base)
        # the interchange of every pair lands on a target state that gives the counterfactual label
        assert cl.evaluate(target, site, phi, partition, task, pairs).iia == phi.construction.iia[0]


def test_a_non_injective_site_is_refused_naming_two_inputs():
    task, target, site, data, partition = mlp_setup(50)
    with torch.no_grad():
        target.net[0].weight[:, 12:] = 0  # the first layer ignores x4
    for name in ("x1", "x2", "x3"):
        data.base[name][1] = data.base[name][0]
    data.base["x4"][1] = data.base["x4"][0] + 0.25
    named = r"not injective.*base of pair 0 in dataset 0.*base of pair 1 in dataset 0"
    with pytest.raises(NotInjectiveError, match=named):
        cl.construct_alignment(target, site, task, partition, data)


def test_pairs_left_to_the_network_and_unreached_codes_are_counted():
    task, target, site, data, partition = mlp_setup(100)
    for var in data.sources:
        for name in data.base:
            data.sources[var][name][:10] = data.base[name][:10]
    phi = cl.construct_alignment(target, site, task, partition, data, steps=1, margin_steps=0)
    built = phi.construction
    assert built.base_equals_source == 10 and built.at_reachable >= 10
    assert built.unreached > 0 and built.unreached_pairs >= built.unreached
    assert built.codes == 100 - built.at_reachable and built.points == 2 * (built.codes - built.unreached)
    assert built.iia[0] >= built.ceiling and built.ceiling < 1


def test_only_construct_builds_it():
    task, target, site, data, partition = mlp_setup(50)
    pairs = cl.prepare(target, site, task, data)
    with pytest.raises(FitError, match="construct_alignment"):
        cl.fit_alignment(target, site, cl.make_alignment("constructed", 16), partition, task, pairs, pairs)
    with pytest.raises(AlignmentError, match="not a RotationMap"):
        cl.construct_alignment(target, site, task, partition, data, phi=cl.make_alignment("rotation", 16))


def test_a_saved_constructed_map_loads_with_its_points(tmp_path):
    task, target, site, data, partition = mlp_setup(100)
    phi = cl.construct_alignment(target, site, task, partition, data)
    loaded = cl.load_alignment(cl.save_alignment(phi, tmp_path / "phi.safetensors"), width=16).map
    assert loaded.points == phi.points > 0 and loaded.num_parameters == phi.num_parameters
    pairs = cl.prepare(target, site, task, data)
    assert cl.evaluate(target, site, loaded, partition, task, pairs).iia == 1.0


def test_the_docstring_example_runs():
    assert doctest.testmod(causalab.fit.construct, extraglobs={"torch": torch}).failed == 0
