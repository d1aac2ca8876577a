"""Every bad input comes back as a specific error naming what is wrong, before any work where it can."""

import dataclasses

import pytest
import torch

import causalab as cl
from algorithms import hierarchical_equality as he
from causalab.cli.main import main
from causalab.errors import ConfigFieldError, DataError, SamplingError, StoreError
from causalab.experiments import ResultStore, load_records, validate

TINY = dict(n_train=64, n_val=32, n_test=64, epochs=1, batch_size=32)


def field_of(**config):
    with pytest.raises(ConfigFieldError) as info:
        validate(cl.ExperimentConfig(**{**TINY, **config}))
    return info.value.field, str(info.value)


@pytest.mark.parametrize("options, field, says", [
    ({"hidden": "abc"}, "target_options.hidden", "positive integer"),
    ({"samples": 0}, "target_options.samples", "positive integer"),
    ({"lr": -1}, "target_options.lr", "positive finite number"),
    ({"lr": "fast"}, "target_options.lr", "positive finite number"),
    ({"depth": True}, "target_options.depth", "positive integer"),
    ({"checkpoints": [0, -5]}, "target_options.checkpoints", "non-negative integers"),
    ({"checkpoint": -1}, "target_options.checkpoint", "integer >= 0"),
    ({"cache": 3}, "target_options.cache", "folder path"),
])
def test_trained_target_options_are_checked_by_value_before_training(tmp_path, monkeypatch, options, field, says):
    monkeypatch.setenv("CAUSALAB_CACHE", str(tmp_path))
    got, message = field_of(target="trained", target_options=options)
    assert got == field and says in message
    assert not any(tmp_path.iterdir())  # nothing was trained


def test_random_and_oracle_targets_take_only_their_own_options():
    assert field_of(target="random", target_options={"samples": 10})[0] == "target_options.samples"
    field, message = field_of(target="oracle", target_options={"hidden": 8})
    assert field == "target_options.hidden" and "sharpness" in message
    assert field_of(target="oracle", target_options={"sharpness": 0})[0] == "target_options.sharpness"
    # an option the oracle takes is used, not ignored: a blunt oracle scores lower than a sharp one
    blunt = cl.build_target(cl.make_task("both_equality_relations"), "oracle", 0, sharpness=0.05)
    sharp = cl.build_target(cl.make_task("both_equality_relations"), "oracle", 0)
    x = torch.randn(8, 16)
    assert not torch.allclose(blunt.hidden(x, cl.Site(2)), sharp.hidden(x, cl.Site(2)))


def test_pretrained_on_an_mlp_task_is_named():
    field, message = field_of(target="pretrained")
    assert field == "target" and "pretrained" in message


def test_zero_pairs_are_refused_by_fit_and_evaluate():
    task = cl.make_task("both_equality_relations")
    target, site = he.oracle_mlp(), cl.Site(1)
    data = task.counterfactuals(40, torch.Generator().manual_seed(0))
    pairs = cl.prepare(target, site, task, data)
    empty = dataclasses.replace(data, base={k: v[:0] for k, v in data.base.items()},
                                sources={var: {k: v[:0] for k, v in src.items()} for var, src in data.sources.items()},
                                counterfactual_outputs={k: v[:0] for k, v in data.counterfactual_outputs.items()},
                                set_index=data.set_index[:0])
    with pytest.raises(DataError, match="dataset is empty"):
        cl.prepare(target, site, task, empty)
    phi, part = cl.make_alignment("rotation", 16), cl.Partition.contiguous(task.variables, 8, 16)
    no_rows = cl.train.PreparedPairs(pairs.base_inputs[:0], pairs.h_base[:0], {v: h[:0] for v, h in pairs.h_sources.items()},
                                     pairs.labels[:0], pairs.set_index[:0], pairs.intervention_sets)
    with pytest.raises(DataError, match="no training pairs"):
        cl.fit_alignment(target, site, phi, part, task, no_rows, pairs)
    with pytest.raises(DataError, match="zero pairs"):
        cl.evaluate(target, site, phi, part, task, no_rows)


def test_nan_from_an_input_sampler_names_the_input():
    task = cl.make_task("both_equality_relations")

    def leaky(n, g):
        values = he.sample_inputs(n, g)
        values["x3"][2, 0] = float("nan")
        return values

    algorithm = cl.Algorithm(task.algorithm.graph, name="leaky", input_sampler=leaky)
    with pytest.raises(SamplingError, match=r"input 'x3' .* not finite .* rows \[2\]"):
        algorithm.sample_inputs(8, torch.Generator().manual_seed(0))


def test_nan_network_inputs_are_named_before_the_map_sees_them():
    task = cl.make_task("both_equality_relations")
    bad_task = dataclasses.replace(task, encode=lambda values: torch.where(
        torch.arange(16) == 3, float("nan"), he.encode(values)))
    data = task.counterfactuals(20, torch.Generator().manual_seed(0))
    with pytest.raises(DataError, match="base inputs are not finite"):
        cl.prepare(he.oracle_mlp(), cl.Site(1), bad_task, data)


def test_results_path_that_is_a_directory(tmp_path, capsys):
    with pytest.raises(StoreError, match="is a directory"):
        ResultStore(tmp_path)
    sweep = tmp_path / "s.toml"
    sweep.write_text('[base]\nalgorithm = "both_equality_relations"\ntarget = "oracle"\n[grid]\nseed = [0]\n')
    assert main(["sweep", str(sweep), "--results", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_report_on_a_missing_file_names_the_path(tmp_path, capsys):
    with pytest.raises(StoreError, match="no results file at"):
        load_records(tmp_path / "nope.jsonl")
    assert main(["report", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "out")]) == 2
    assert "nope.jsonl" in capsys.readouterr().err


def test_a_record_cut_mid_line_is_reported_not_silently_repaired(tmp_path, capsys):
    path = tmp_path / "r.jsonl"
    res = cl.run_experiment(cl.ExperimentConfig(target="oracle", alignment="identity", **TINY))
    ResultStore(path).append(res.to_record())
    with path.open("ab") as f:
        f.write(b'{"hash": "abc", "iia"')  # a kill mid-write
    assert ResultStore(path).partial_line()
    assert main(["report", str(path), "--out", str(tmp_path / "out")]) == 0
    assert "cut short" in capsys.readouterr().err
    assert len(load_records(path)) == 1
