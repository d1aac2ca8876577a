"""Generalisation-aware scores, each on a case with a known answer.

- the oracle network computes both equality relations in known neurons: the identity
  map (0 parameters) scores 1.0, far above every control;
- a random-init network computes nothing: its IIA is the control's, selectivity ~0;
- an over-parameterised invertible map fitted on ~50 pairs of a random network
  memorises them: train IIA near 1, test IIA at chance.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

import causalab as cl
import causalab.scores as sc
from causalab.errors import ConfigFieldError, ScoreError
from causalab.fit.metrics import Score

SITE = cl.Site(1)
SMALL = cl.MeasureSettings(n_train=300, n_val=100, n_test=800, epochs=2)


@pytest.fixture(scope="module")
def task():
    return cl.make_task("both_equality_relations")


@pytest.fixture(scope="module")
def oracle(task):
    return cl.build_target(task, "oracle", 0)


@pytest.fixture(scope="module")
def random_net(task):
    return cl.build_target(task, "random", 0)


# --- an over-parameterised invertible map, used when the RevNet family is not registered ----------
MEMORISING_SPEC = "revnet:blocks=4,hidden=32,standardize=true"


# --- the difference of two proportions --------------------------------------------------------------
def test_newcombe_interval_matches_the_published_example():
    # Newcombe (1998), method 10: 56/70 - 48/80 = 0.200, 95% CI [0.0524, 0.3339]
    lo, hi = sc.newcombe_interval(Score(56, 70), Score(48, 80))
    assert lo == pytest.approx(0.0524, abs=5e-4) and hi == pytest.approx(0.3339, abs=5e-4)
    d = sc.Difference(Score(100, 100), Score(0, 100))
    assert d.estimate == 1.0 and d.interval[1] == 1.0 and d.interval[0] > 0.9 and d.significant
    assert sc.pooled([Score(3, 10), Score(5, 10)]) == Score(8, 20)
    with pytest.raises(ScoreError, match="no scores"):
        sc.pooled([])


# --- control algorithms -----------------------------------------------------------------------------
def test_control_algorithm_keeps_parents_and_marginal_but_not_the_function(task):
    control = sc.control_algorithm(task, "V1", seed=0)
    assert control.algorithm.parents("V1") == task.algorithm.parents("V1")
    assert control.variables == task.variables and control.name == "both_equality_relations~control(V1)"
    inputs = task.algorithm.sample_inputs(20_000, torch.Generator().manual_seed(7))
    fake, real = control.algorithm.run(inputs)["V1"], task.algorithm.run(inputs)["V1"]
    assert fake.dtype == torch.bool
    assert abs(fake.float().mean() - real.float().mean()) < 0.02  # same marginal, so the same entropy
    assert abs((fake == real).float().mean() - 0.5) < 0.03  # unrelated to the real equality relation
    assert torch.equal(fake, control.algorithm.run(inputs)["V1"])  # a deterministic function of the inputs
    other = sc.control_algorithm(task, "V1", seed=1).algorithm.run(inputs)["V1"]
    assert not torch.equal(fake, other)


def test_control_algorithm_on_integer_inputs_uses_a_hash_with_the_same_marginal():
    alg = cl.Algorithm.from_functions(
        {"a": list(range(20)), "b": list(range(20))},
        {"V": lambda a, b: (a + b) % 10 < 3, "O": lambda V, a: V ^ (a > 9)},
        domains={"V": (False, True), "O": (False, True)},
    )
    task = cl.Task("ints", alg, encode=lambda v: v["a"], label=lambda o: o["O"].long(), intervention_sets=[("V",)],
                   family="ints", n_classes=2)
    control = sc.control_algorithm(task, "V", seed=3)
    inputs = alg.sample_inputs(20_000, torch.Generator().manual_seed(1))
    fake = control.algorithm.run(inputs)["V"]
    assert abs(fake.float().mean() - 0.3) < 0.03
    assert control.algorithm.graph.nodes["V"]["mechanism"].hashed


def test_control_algorithm_names_what_cannot_be_replaced(task):
    with pytest.raises(ScoreError, match="no variable 'V9'"):
        sc.control_algorithm(task, "V9")
    with pytest.raises(ScoreError, match="'x1' is an input"):
        sc.control_algorithm(task, "x1")
    with pytest.raises(ScoreError, match="'O' is an output"):
        sc.control_algorithm(task, "O")


# --- selectivity ------------------------------------------------------------------------------------
def test_oracle_is_selective_against_both_controls(task, oracle):
    net = sc.random_network_selectivity(task, "identity", SITE, target=oracle, control_seeds=(0, 1), settings=SMALL)
    assert net.real_score.accuracy == 1.0
    assert net.interval[0] > 0.35
    alg = sc.control_algorithm_selectivity(task, "identity", SITE, target=oracle, control_seeds=(0,), settings=SMALL)
    assert alg.variable == "V1" and alg.real_score.accuracy == 1.0
    assert alg.real_score.n < SMALL.n_test  # only the sets that intervene on V1 are scored
    assert alg.interval[0] > 0.35
    assert alg.to_dict()["selectivity"]["estimate"] == pytest.approx(alg.estimate)


def test_random_network_is_not_selective(task, random_net):
    net = sc.random_network_selectivity(task, "identity", SITE, target=random_net, control_seeds=(1, 2), settings=SMALL)
    assert abs(net.estimate) < 0.1
    alg = sc.control_algorithm_selectivity(task, "identity", SITE, target=random_net, control_seeds=(0,), settings=SMALL)
    lo, hi = alg.interval
    assert abs(alg.estimate) < 0.1 and lo < 0 < hi


# --- out-of-distribution IIA ------------------------------------------------------------------------
def test_sign_split_gives_disjoint_regions_with_exact_labels(task):
    pos, neg = sc.sign_split(task, coordinate=0)
    a = pos.counterfactuals(500, torch.Generator().manual_seed(0))
    b = neg.counterfactuals(500, torch.Generator().manual_seed(0))
    for d, sign in ((a, 1), (b, -1)):
        for values in (d.base, *d.sources.values()):
            assert all(bool((sign * v[:, 0] >= 0).all()) for v in values.values())
        again = task.algorithm.run(d.base)["O"]
        assert torch.equal(again, d.base_outputs["O"])  # labels are the real algorithm's
        assert 0.4 < d.base_outputs["O"].float().mean() < 0.6  # equality structure survives the fold


def test_ood_iia_on_the_oracle_transfers(task, oracle):
    r = sc.ood_iia(oracle, SITE, task, "identity", SMALL)
    assert r.in_distribution.iia == 1.0 and r.out_of_distribution.iia == 1.0
    assert r.gap.interval[0] <= 0 <= r.gap.interval[1]


def test_ood_split_is_taken_from_the_task_or_the_argument(task, oracle):
    calls = []
    pos, neg = sc.sign_split(task, coordinate=2)
    inner = sc.region_split(pos, neg)

    def split(sizes, gen):
        calls.append(list(sizes))
        return inner(sizes, gen)

    custom = dataclasses.replace(task, ood_split=split)
    sc.ood_iia(oracle, SITE, custom, "identity", SMALL)
    assert calls == [[SMALL.n_train, SMALL.n_val + SMALL.n_test, SMALL.n_test]]
    assert sc.resolve_split(task, split) is split
    alg = cl.Algorithm.from_functions({"a": [0, 1]}, {"O": lambda a: a == 1}, domains={"O": (False, True)})
    ints = cl.Task("ints", alg, encode=lambda v: v["a"], label=lambda o: o["O"].long(), intervention_sets=[("a",)],
                   family="ints", n_classes=2)
    with pytest.raises(ScoreError, match="no out-of-distribution split"):
        sc.resolve_split(ints)


# --- complexity frontier ----------------------------------------------------------------------------
def test_frontier_on_the_oracle_starts_at_zero_parameters(task, oracle):
    cfg = cl.MeasureSettings(n_train=200, n_val=100, n_test=500, epochs=1)
    comp = sc.frontier_gap(task, ["identity", "rotation"], SITE, target=oracle, control_seeds=(0,),
                           threshold=0.9, settings=cfg)
    assert comp.real_complexity == 0
    assert comp.real.pareto()[0].spec == "identity" and comp.real.pareto()[0].test_iia == 1.0
    assert comp.control_complexity is None and math.isinf(comp.gap)
    assert comp.to_dict()["gap"] == "inf"
    with pytest.raises(ScoreError, match="threshold"):
        sc.frontier_gap(task, ["identity"], SITE, target=oracle, threshold=1.5)


# --- sample efficiency ------------------------------------------------------------------------------
def test_memorising_map_on_few_pairs_of_a_random_network(task, random_net):
    cfg = cl.MeasureSettings(n_val=10, n_test=1000, epochs=200, batch_size=64, lr=2e-2, patience=20,
                         validate_on="train")
    (point,) = sc.sample_efficiency(random_net, SITE, task, MEMORISING_SPEC, [48], cfg)
    m = point.measurement
    assert m.num_parameters > 1000 and point.n_pairs == 48
    assert m.train_iia >= 0.9
    assert abs(m.test_iia - 0.5) < 0.07 and m.test_iia <= m.chance + 0.03
    assert point.memorisation_gap.interval[0] > 0.25


def test_measure_settings_and_measurement_errors(task, oracle):
    with pytest.raises(ConfigFieldError, match="n_train") as info:
        cl.MeasureSettings(n_train=0)
    assert info.value.field == "n_train"
    with pytest.raises(ConfigFieldError, match="validate_on"):
        cl.MeasureSettings(validate_on="test")
    with pytest.raises(ConfigFieldError, match="intervention_size") as info:
        cl.measure(oracle, SITE, task, "identity", cl.MeasureSettings(intervention_size=9))
    assert info.value.field == "intervention_size"
    with pytest.raises(ScoreError, match="sizes"):
        sc.sample_efficiency(oracle, SITE, task, "identity", [0])


def test_the_scores_doc_example_runs_as_written(capsys):
    import re
    from pathlib import Path

    doc = Path(__file__).resolve().parents[1] / "docs" / "scores.md"
    (block,) = re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S)
    exec(compile(block, str(doc), "exec"), {})
    out = capsys.readouterr().out
    assert "oracle 0 params, random None" in out and "train 1.000" in out


def test_random_controls_share_the_targets_options_and_a_mismatch_is_named():
    from causalab.errors import ScoreError
    from causalab.scores import random_network_selectivity

    task = cl.make_task("ioi_pattern")
    site = cl.Site(1, "last")
    settings = cl.MeasureSettings(n_train=32, n_val=16, n_test=32, epochs=1, batch_size=16, intervention_size=4)
    result = random_network_selectivity(task, "rotation", site, target="random", target_seed=5, control_seeds=(1,),
                                        settings=settings, target_options={"size": "tiny"})
    assert result.real.width == result.controls[0].width == 32  # the tiny shape, not the default size
    built = cl.build_target(task, "random", 5, size="tiny")
    with pytest.raises(ScoreError, match="give the target's target_options"):
        random_network_selectivity(task, "rotation", site, target=built, control_seeds=(1,), settings=settings)
