"""Weak errors named at their root: the field, and what would be valid."""

from __future__ import annotations

import dataclasses

import networkx as nx
import pytest
import torch

import causalab as cl
from algorithms import hierarchical_equality as he
from causalab.errors import ConfigFieldError, PartitionError, SiteError, UnknownNodeError
from causalab.experiments.config import ExperimentConfig
from causalab.experiments.validate import validate
from causalab.fit.measure import MeasureSettings, measure

TINY = {"target": "oracle", "n_train": 64, "n_val": 32, "n_test": 64, "epochs": 1, "batch_size": 32}


def test_intervention_size_zero_is_refused_naming_the_valid_sizes():
    with pytest.raises(ConfigFieldError) as info:
        validate(ExperimentConfig(intervention_size=0, **TINY))
    assert info.value.field == "intervention_size" and isinstance(info.value, PartitionError)
    assert "valid: 1..8 (2 variable(s) at hidden width 16), or an explicit partition" in str(info.value)
    with pytest.raises(ConfigFieldError, match="'intervention_size'.*valid: 1..8"):  # too large says the same
        validate(ExperimentConfig(intervention_size=9, **TINY))


def test_intervention_size_zero_is_fine_with_an_explicit_partition_and_empty_blocks_everywhere_are_not():
    blocks = {"V1": list(range(8)), "V2": list(range(8, 16))}
    validate(ExperimentConfig(intervention_size=0, partition=blocks, **TINY))
    with pytest.raises(ConfigFieldError, match="'partition': every block is empty") as info:
        validate(ExperimentConfig(partition={"V1": [], "V2": []}, **TINY))
    assert info.value.field == "partition"


def test_measure_refuses_intervention_size_zero_before_fitting_but_takes_a_partition():
    task = cl.make_task("both_equality_relations")
    target, site = he.oracle_mlp(), cl.Site(1)
    settings = MeasureSettings(intervention_size=0, n_train=64, n_val=32, n_test=64, epochs=1, batch_size=32)
    with pytest.raises(ConfigFieldError, match="'intervention_size': 0 gives every variable") as info:
        measure(target, site, task, "rotation", settings)  # was: torch's "element 0 of tensors does not require grad"
    assert info.value.field == "intervention_size"
    partition = cl.Partition({"V1": range(8), "V2": range(8, 16)}, 16)
    assert measure(target, site, task, "identity", settings, partition=partition).test.iia > 0.9
    with pytest.raises(ConfigFieldError, match="'partition': every block is empty"):
        measure(target, site, task, "rotation", settings, partition=cl.Partition({"V1": [], "V2": []}, 16))
    with pytest.raises(ConfigFieldError, match="0 only where an explicit partition"):
        MeasureSettings(intervention_size=-1)


def test_a_layer_out_of_range_names_the_targets_layers(capsys):
    for layer in (0, -1, 4):
        with pytest.raises(ConfigFieldError, match=f"MLP has hidden layers 1..3; layer {layer} does not exist") as info:
            validate(ExperimentConfig(layer=layer, **TINY))
        assert info.value.field == "layer" and isinstance(info.value, SiteError)
    with pytest.raises(ConfigFieldError, match="'layer': must be an integer layer number"):
        ExperimentConfig(layer="first")
    from causalab.cli.main import main

    assert main(["run", "--layer", "0", "--target", "oracle", "--alignment", "identity"]) == 2
    assert "config field 'layer': MLP has hidden layers 1..3; layer 0 does not exist" in capsys.readouterr().err


def test_an_unknown_keyword_names_the_valid_fields():
    for cls in (ExperimentConfig, MeasureSettings):
        with pytest.raises(ConfigFieldError) as info:
            cls(epoch=3)
        assert info.value.field == "epoch"
        assert "did you mean 'epochs'?" in str(info.value) and "valid fields: " in str(info.value)
        assert "n_train" in str(info.value).split("valid fields: ")[1]
    with pytest.raises(ConfigFieldError, match="'colour'.*valid fields: algorithm, alignment"):
        ExperimentConfig.from_dict({"colour": "blue"})
    # otherwise still a dataclass
    cfg = ExperimentConfig(epochs=2, **{k: v for k, v in TINY.items() if k != "epochs"})
    assert dataclasses.replace(cfg, seed=3).seed == 3 and dataclasses.is_dataclass(cfg)
    assert ExperimentConfig().hash() == "f94f5b71532225d9" and ExperimentConfig(layer=2) == ExperimentConfig(layer=2)
    with pytest.raises(TypeError):  # positional mistakes keep Python's own error
        MeasureSettings(*range(30))


def test_a_task_intervening_on_a_variable_the_graph_lacks_is_refused_at_construction():
    g = nx.DiGraph()
    g.add_nodes_from(["x1", "x2", "x3", "x4"])
    g.add_node("V2", mechanism=lambda x3, x4: he.equal(x3, x4), domain=(False, True))
    g.add_node("O", mechanism=lambda x1, x2, V2: he.equal(x1, x2) == V2, domain=(False, True))
    g.add_edges_from([("x3", "V2"), ("x4", "V2"), ("x1", "O"), ("x2", "O"), ("V2", "O")])
    right = cl.Algorithm(g, name="right_equality", input_sampler=he.sample_inputs)
    kw = dict(name="right", algorithm=right, encode=he.encode, label=he.label, family=he.FAMILY, n_classes=2)
    with pytest.raises(UnknownNodeError) as info:
        cl.Task(intervention_sets=[("V2",), ("V1", "V2")], **kw)
    text = str(info.value)
    assert "names 'V1'" in text and "its variables: V2, O" in text and "inputs: x1, x2, x3, x4" in text
    assert cl.Task(intervention_sets=[("V2",)], **kw).variables == ["V2"]
    assert len(cl.Task(intervention_sets=["V2"], **kw).counterfactuals(4, torch.Generator())) == 4
