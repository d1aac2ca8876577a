"""Theorem 1's constructed map: IIA 1.0 on its pairs (random MLP, tiny random LM), a bijection on every
point it moves, its fixed map everywhere else, a non-injective site refused by name."""

import doctest
import json
import re

import pytest
import torch

import causalab as cl
import causalab.fit.construct
from causalab.errors import AlignmentError, DataError, FitError, NotInjectiveError
from causalab.experiments.store import load_records
from causalab.scores import control_algorithm_selectivity, ood_iia, random_network_selectivity

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
    record = result.to_record()
    assert record["history"][0]["construction"]["ceiling"] == 1.0
    # off the construction set the map is a fixed rotation: the network by itself, about chance
    task = cl.make_task("both_equality_relations")
    fresh = task.counterfactuals(400, torch.Generator().manual_seed(123))
    run = cl.experiments.build.build_run(config)
    outside = result.score(run.target, run.site, run.task, fresh).iia
    assert outside < 0.7
    # the run records the same: its IIA on a draw of its own outside the construction set, and its size
    assert record["outside_iia"] == result.outside.iia < 0.7 and record["outside"]["overall"]["n"] == 300
    assert record["outside"]["dropped"] == 0 and record["history"][0]["construction"]["outside_iia"] == record["outside_iia"]
    assert record["construction"] == {**record["construction"], "points": 2 * built["codes"], "pairs": 700,
                                      "stored_values": result.num_parameters, "base_equals_source": 0}
    assert record["construction"]["nbytes"] == 4 * result.num_parameters


def test_a_fitted_map_records_no_outside_iia_or_construction():
    config = cl.ExperimentConfig(algorithm="both_equality_relations", target="random", alignment="rotation",
                                 intervention_size=4, epochs=1, **SMALL)
    record = cl.run_experiment(config).to_record()
    assert not {"outside_iia", "outside", "construction"} & set(record)


def test_outside_pairs_leave_out_the_pairs_it_was_built_on():
    task, target, site, data, partition = mlp_setup(200)
    kept, dropped = cl.fit.construct.outside_pairs(task, data, [data.subset(slice(150, 200)), data.subset(slice(0, 20))])
    assert (len(kept), dropped) == (130, 70)
    assert torch.equal(kept.base["x1"], data.base["x1"][20:150])
    # the same inputs under another intervention set are another pair
    other = data.subset(slice(0, 20))
    other.set_index = (other.set_index + 1) % len(other.intervention_sets)
    assert cl.fit.construct.outside_pairs(task, data.subset(slice(0, 20)), [other])[1] < 20
    train, val, test = data.split([100, 50, 50])
    settings = cl.MeasureSettings(n_train=100, n_val=50, n_test=50, intervention_size=4)
    with pytest.raises(DataError, match="every outside pair.*in the construction set"):
        cl.measure(target, site, task, "constructed", settings, pairs=(train, val, test), partition=partition,
                   outside=val)


def test_ood_builds_on_the_fitting_region_and_scores_the_held_out_one():
    task, target, site, _, _ = mlp_setup()
    settings = cl.MeasureSettings(n_train=150, n_val=50, n_test=150, intervention_size=4)
    result = ood_iia(target, site, task, "constructed", settings)
    assert result.constructed and result.to_dict()["constructed"]
    assert result.measurement.phi.construction.pairs == 350  # train, validation and in-distribution test pairs
    assert result.in_distribution.iia == 1.0 and result.out_of_distribution.overall.n == 150
    assert result.out_of_distribution.iia < 0.7 and result.gap.estimate > 0.3


def test_selectivity_is_zero_against_random_networks_and_control_algorithms():
    task, target, site, _, _ = mlp_setup()
    settings = cl.MeasureSettings(n_train=100, n_val=50, n_test=100, intervention_size=4)
    networks = random_network_selectivity(task, "constructed", site, target=target, control_seeds=(1,),
                                                    settings=settings)
    algorithms = control_algorithm_selectivity(task, "constructed", site, target=target, control_seeds=(0,),
                                                         settings=settings)
    for score in (networks, algorithms):
        assert score.real.test_iia == 1.0 and all(c.test_iia == 1.0 for c in score.controls)
        assert score.estimate == 0.0 and score.interval[0] < 0 < score.interval[1]
        assert score.real.outside.iia < 0.75


def test_the_dilemma_report_shows_the_constructed_map_beside_the_learnt_ones(tmp_path):
    from causalab.dilemma import load_profile, run_dilemma

    quick, _ = load_profile("quick", experiments=["mlp_maps"])
    constructed = [c for c in quick["mlp_maps"] if c.alignment == "constructed"]
    assert {c.target for c in constructed} == {"trained", "random"} and {c.n_train for c in constructed} == {20_000}
    summary = run_dilemma("smoke", tmp_path, workers=1, experiments=["mlp_maps"])
    assert not summary.failed
    rows = [line for line in summary.table.splitlines() if line.startswith("| ") and "constructed" in line]
    assert len(rows) >= 3  # the IIA table (trained and random MLP) and the scores table
    scores = json.loads((tmp_path / "scores" / "scores.json").read_text())["rows"]
    row = next(r for r in scores if r["map"] == "constructed")
    assert row["iia_real"] == row["iia_control"] == 1.0 and row["selectivity_network"] == 0.0
    records = load_records(summary.results["mlp_maps"])
    assert all(("outside_iia" in r) == (r["config"]["alignment"] == "constructed") for r in records)


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


def test_the_command_line_prints_its_iia_outside_the_construction_set(capsys):
    from causalab.cli.main import main

    assert main(["run", "--algorithm", "both_equality_relations", "--target", "random", "--alignment", "constructed",
                 "--intervention-size", "4", "--n-train", "100", "--n-val", "50", "--n-test", "100"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if "outside its construction set" in x)
    assert re.search(r"constructed on random L1 s0: IIA 0\.[0-7]\d* on 100 pairs", line)


def test_the_benchmark_scores_every_map_on_the_same_outside_pairs():
    import argparse

    from conftest import load_benchmark

    bench = load_benchmark("constructed")
    args = argparse.Namespace(size=None, n_train=100, n_val=50, n_test=100, epochs=1, fixed="rotation",
                              maps="constructed,rotation,revnet", scores=False)
    rows = bench.run_case("mlp_random", args)
    assert [r["map"] for r in rows] == ["constructed:fixed=rotation", "rotation", "revnet:blocks=10,hidden=16"]
    assert rows[0]["test_iia"] == 1.0 and rows[0]["outside_iia"] < 0.75 and rows[0]["base_equals_source"] == 0
    assert {r["outside_pairs"] for r in rows} == {100}
    assert set(bench.CASES) >= {"lm70m_random", "ioi_trained"}
    assert bench.CASES["lm70m_random"]["target_options"]["size"] == "70m"
    with pytest.raises(SystemExit, match="unknown case 'mlp'; valid: mlp_random"):
        bench.run_case("mlp", args)


@pytest.mark.parametrize("width", [2, 16, 128])
def test_the_closest_pair_sweep_agrees_with_comparing_every_pair(width):
    from causalab.maps.nearest import _closest_pair_dense, closest_pair

    gen = torch.Generator().manual_seed(width)
    for n, spread in ((2, 1.0), (300, 1.0), (2000, 0.01), (500, 100.0)):
        x = spread * torch.randn(n, width, generator=gen, dtype=torch.float64)
        i, j, d = closest_pair(x)
        di, dj, dd = _closest_pair_dense(x, None)
        assert abs(d - dd) <= 1e-9 * max(dd, 1e-12) and d == float(torch.linalg.vector_norm(x[i] - x[j]))
        assert {i, j} == {di, dj}
        group = torch.arange(n) // 2  # rows 2k and 2k+1 are not compared
        x[1::2] = x[0::2] + 1e-9 if n % 2 == 0 else x[1::2]
        i, j, d = closest_pair(x, group)
        if n == 2:  # one group: nothing may be compared
            assert (i, j, d) == (-1, -1, float("inf")) == _closest_pair_dense(x, group)
            continue
        assert group[i] != group[j] and abs(d - _closest_pair_dense(x, group)[2]) <= 1e-9
    x = torch.randn(50, width, generator=gen, dtype=torch.float64)
    x[37] = x[5]
    assert closest_pair(x) == (5, 37, 0.0)
    assert closest_pair(x[:1]) == (-1, -1, float("inf"))


def test_stored_points_within_twice_the_tolerance_are_refused_by_name():
    phi = cl.make_alignment("constructed", 4)
    codes = torch.tensor([[0.0, 0, 0, 0], [1.0, 0, 0, 0]])
    targets = torch.tensor([[0.0, 1, 0, 0], [1.0, 0, 0, 1.5e-3]])
    with pytest.raises(AlignmentError, match=r"stored points 1 and 3 are 0.0015 apart, within 2 x atol = 0.002"):
        phi.set_points(codes, targets, 1e-3)
    phi.set_points(codes, targets, 5e-4)  # 0.0015 > 2 x 0.0005: a bijection
    assert phi.points == 4
