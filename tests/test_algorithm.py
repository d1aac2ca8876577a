"""Algorithm construction, validation errors, running, interventions and interchange."""

import networkx as nx
import pytest
import torch

from causalab import Algorithm
from causalab.errors import (
    CycleError,
    DomainError,
    DuplicateNodeError,
    MechanismError,
    MissingInputError,
    NoOutputError,
    UnknownNodeError,
)


def bits(n, g):
    return torch.randint(0, 2, (n,), generator=g)


def and_or():
    return Algorithm.from_functions(
        {"a": (0, 1), "b": (0, 1), "c": (0, 1)},
        {"h": lambda a, b: a & b, "y": lambda h, c: h | c},
        domains={"h": (0, 1), "y": (0, 1)},
        name="and_or",
    )


def test_from_functions_infers_parents_and_outputs():
    alg = and_or()
    assert alg.inputs == ["a", "b", "c"] or set(alg.inputs) == {"a", "b", "c"}
    assert alg.parents("h") == ["a", "b"]
    assert alg.outputs == ["y"]
    assert isinstance(alg.graph, nx.DiGraph)


def test_run_and_hard_intervention():
    alg = and_or()
    inp = {"a": torch.tensor([1, 1, 0]), "b": torch.tensor([1, 0, 0]), "c": torch.tensor([0, 0, 0])}
    assert alg.run(inp)["y"].tolist() == [1, 0, 0]
    assert alg.run(inp, {"h": 1})["y"].tolist() == [1, 1, 1]
    assert alg.run(inp, {"h": torch.tensor([0, 1, 0])})["y"].tolist() == [0, 1, 0]


def test_no_intervention_equals_plain_run():
    alg = and_or()
    inp = alg.sample_inputs(64, torch.Generator().manual_seed(1))
    plain, empty = alg.run(inp), alg.run(inp, {})
    assert all(torch.equal(plain[k], empty[k]) for k in plain)


def test_interchange_uses_one_source_per_variable():
    alg = Algorithm.from_functions(
        {"a": (0, 1), "b": (0, 1)},
        {"u": lambda a: a, "v": lambda b: b, "y": lambda u, v: u * 2 + v},
        name="two",
    )
    base = {"a": torch.tensor([0]), "b": torch.tensor([0])}
    src_u = {"a": torch.tensor([1]), "b": torch.tensor([0])}
    src_v = {"a": torch.tensor([0]), "b": torch.tensor([1])}
    assert alg.interchange(base, {"u": src_u})["y"].item() == 2
    assert alg.interchange(base, {"v": src_v})["y"].item() == 1
    assert alg.interchange(base, {"u": src_u, "v": src_v})["y"].item() == 3


def test_raw_graph_construction():
    g = nx.DiGraph()
    g.add_node("x", domain=(0, 1, 2))
    g.add_node("y", mechanism=lambda x: x + 1)
    g.add_edge("x", "y")
    alg = Algorithm(g, name="raw")
    assert alg.run({"x": torch.tensor([2])})["y"].item() == 3


# --- validation: each error names the offending node --------------------------------
def test_cycle_is_rejected_naming_the_cycle():
    g = nx.DiGraph()
    g.add_node("x", domain=(0, 1))
    g.add_node("a", mechanism=lambda x, b: x)
    g.add_node("b", mechanism=lambda a: a)
    g.add_edges_from([("x", "a"), ("b", "a"), ("a", "b")])
    with pytest.raises(CycleError, match="a -> b|b -> a"):
        Algorithm(g)


def test_mechanism_arguments_must_be_parents():
    g = nx.DiGraph()
    g.add_node("x", domain=(0, 1))
    g.add_node("z", domain=(0, 1))
    g.add_node("y", mechanism=lambda x: x)
    g.add_edges_from([("x", "y"), ("z", "y")])
    with pytest.raises(MechanismError, match="'y'"):
        Algorithm(g)


def test_missing_mechanism_is_named():
    g = nx.DiGraph()
    g.add_node("x", domain=(0, 1))
    g.add_node("y")
    g.add_edge("x", "y")
    with pytest.raises(MechanismError, match="'y'.*no mechanism"):
        Algorithm(g)


def test_mechanism_argument_naming_unknown_node():
    with pytest.raises(UnknownNodeError, match="'w'"):
        Algorithm.from_functions({"x": (0, 1)}, {"y": lambda x, w: x})


def test_no_output():
    g = nx.DiGraph()
    g.add_node("x", domain=(0, 1))
    with pytest.raises(NoOutputError):
        Algorithm(g)


def test_unknown_output_name():
    with pytest.raises(UnknownNodeError, match="'out'"):
        Algorithm.from_functions({"x": (0, 1)}, {"y": lambda x: x}, outputs=["out"])


def test_duplicate_names():
    with pytest.raises(DuplicateNodeError, match="'x'"):
        Algorithm.from_functions({"x": (0, 1)}, {"x": lambda x: x})


def test_intervention_on_unknown_variable():
    with pytest.raises(UnknownNodeError, match="'nope'"):
        and_or().run({"a": torch.tensor([1]), "b": torch.tensor([1]), "c": torch.tensor([1])}, {"nope": 1})


def test_intervention_value_outside_finite_domain():
    with pytest.raises(DomainError, match="'h'.*\\(0, 1\\)"):
        and_or().run({"a": torch.tensor([1]), "b": torch.tensor([1]), "c": torch.tensor([1])}, {"h": 5})


def test_missing_and_unknown_inputs():
    alg = and_or()
    with pytest.raises(MissingInputError, match="'c'"):
        alg.run({"a": torch.tensor([1]), "b": torch.tensor([1])})
    with pytest.raises(UnknownNodeError, match="'d'"):
        alg.run({"a": torch.tensor([1]), "b": torch.tensor([1]), "c": torch.tensor([1]), "d": torch.tensor([1])})


def test_mechanism_must_keep_the_batch():
    alg = Algorithm.from_functions({"x": (0, 1)}, {"y": lambda x: x.sum()})
    with pytest.raises(MechanismError, match="'y'.*batch"):
        alg.run({"x": torch.tensor([1, 0])})


def test_input_without_any_way_to_sample():
    with pytest.raises(Exception, match="'x'"):
        Algorithm.from_functions({"x": None}, {"y": lambda x: x})
