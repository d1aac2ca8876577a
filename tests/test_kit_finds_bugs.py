"""The kit catches planted bugs and reports a shrunk, readable counterexample."""

import pytest
import torch

from causalab import Algorithm, AlignmentMap
from causalab.maps.intervene import Partition
from causalab.testing import InvariantViolation, check_algorithm, check_alignment_map, check_interchange, kit_settings

torch.set_num_threads(1)

SETTINGS = kit_settings(max_examples=30)


class ClampedMap(AlignmentMap):
    """Not invertible: forward clamps the last coordinate at -1, inverse is the identity."""

    tolerance = 1e-5

    def __init__(self, width: int) -> None:
        super().__init__(width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.cat([h[..., :-1], h[..., -1:].clamp(min=-1.0)], dim=-1)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return z


def first_source_interchange(phi, h_base, h_sources, partition: Partition) -> torch.Tensor:
    """Wrong: every variable's block is taken from the first variable's source."""
    z = phi(h_base)
    first = phi(next(iter(h_sources.values())))
    for var in h_sources:
        z = torch.where(partition.mask(var), first, z)
    return phi.inverse(z)


def no_inverse_interchange(phi, h_base, h_sources, partition: Partition) -> torch.Tensor:
    """Wrong: forgets to map back with phi.inverse."""
    z = phi(h_base)
    for var, h_src in h_sources.items():
        z = torch.where(partition.mask(var), phi(h_src), z)
    return z


def test_non_invertible_map_is_caught_with_a_shrunk_counterexample() -> None:
    with pytest.raises(InvariantViolation) as info:
        check_alignment_map(ClampedMap, invariants=["round_trip"], settings=SETTINGS)
    exc = info.value
    text = str(exc)
    assert isinstance(exc, AssertionError) and exc.invariant == "round_trip"
    assert "inverse(forward(h)) != h" in text and "Counterexample (shrunk by hypothesis" in text
    # shrunk to one row and the plainest hidden state; the reported value is below the clamp
    assert "ClampedMap(width=" in text and "shape=(1, " in text and "kind='gaussian', seed=0" in text
    assert float(exc.details["expected[row]"][-1]) < -1.0


def test_non_invertible_instance_is_caught() -> None:
    with pytest.raises(InvariantViolation, match="round_trip"):
        check_alignment_map(ClampedMap(8), settings=SETTINGS)


def test_interchange_taking_one_source_for_all_blocks_is_caught() -> None:
    with pytest.raises(InvariantViolation) as info:
        check_interchange("identity", first_source_interchange, settings=SETTINGS)
    exc = info.value
    assert exc.invariant in ("disjoint_commute", "outside_blocks")
    text = str(exc)
    assert "Partition(width=" in text and "Draw" in text
    # shrunk to one coordinate, one row: A's block empty, B's block that coordinate
    assert exc.details["partition"].width == 1 and exc.details["h_base"].shape == (1, 1)
    assert sorted(len(b) for b in exc.details["partition"].blocks.values()) == [0, 1]


def test_interchange_without_inverse_is_caught_under_a_rotation() -> None:
    with pytest.raises(InvariantViolation) as info:
        check_interchange("rotation", no_inverse_interchange, settings=SETTINGS)
    assert info.value.invariant == "same_source"
    assert "rotation(width=" in str(info.value)


def test_correct_interchange_passes_the_same_checks() -> None:
    check_interchange("identity", settings=SETTINGS)


class SkippedSourceAlgorithm(Algorithm):
    """Wrong interchange on the algorithm side: input variables are taken from the base."""

    def interchange(self, base, sources):
        return super().interchange(base, {v: s for v, s in sources.items() if v not in self.inputs})


def xor_and(cls=Algorithm) -> Algorithm:
    return cls.from_functions(
        {"a": (0, 1), "b": (0, 1), "c": (0, 1)},
        {"x": lambda a, b: a ^ b, "out": lambda x, c: x & c},
        domains={"x": (0, 1), "out": (0, 1)},
        name="xor_and",
    )


def test_wrong_algorithm_interchange_is_caught() -> None:
    with pytest.raises(InvariantViolation) as info:
        check_algorithm(xor_and(SkippedSourceAlgorithm), invariants=["parents_from_source"], settings=SETTINGS)
    text = str(info.value)
    assert "setting parents ['c', 'x'] of 'out' from the source" in text
    assert "base c" in text and "source c" in text


def test_mechanism_mixing_rows_is_caught() -> None:
    alg = Algorithm.from_functions(
        {"a": (0, 1)},
        {"out": lambda a: (a.sum() > 0).long().expand(a.shape[0])},  # looks at the whole batch
        domains={"out": (0, 1)},
        name="batch_leak",
    )
    with pytest.raises(InvariantViolation) as info:
        check_algorithm(alg, invariants=["batch_rows_independent"], settings=SETTINGS)
    assert "row" in str(info.value) and info.value.invariant == "batch_rows_independent"


# --- a task's encoding and labels ----------------------------------------------------------
def xor_and_task(encode=None, label=None):
    from causalab import Task

    def full(v):
        return torch.stack([v["a"], v["b"], v["c"]], dim=-1).float()

    return Task(name="xor_and", algorithm=xor_and(), encode=encode or full, label=label or (lambda o: o["out"].long()),
                intervention_sets=[("x",)], family="xor_and", n_classes=2)


def test_an_encoding_that_zeroes_an_input_is_caught() -> None:
    def zeroes_c(v):  # the network never sees c, on which the output depends
        return torch.stack([v["a"], v["b"], torch.zeros_like(v["c"])], dim=-1).float()

    check_algorithm(xor_and_task(zeroes_c), invariants=["oracle_iia"], settings=SETTINGS)  # the oracle reads inputs, not encode
    with pytest.raises(InvariantViolation) as info:
        check_algorithm(xor_and_task(zeroes_c), settings=SETTINGS)
    exc = info.value
    assert exc.invariant == "encoding_determines_label" and exc.details["input"] == "c"
    assert "changing input 'c' leaves row" in str(exc) and "label before" in str(exc)
    assert int(exc.details["label before"]) != int(exc.details["label after"])
    check_algorithm(xor_and_task(), invariants=["encoding_determines_label"], settings=SETTINGS)  # the full encoding passes


def test_an_encoding_that_zeroes_a_continuous_input_of_a_builtin_task_is_caught() -> None:
    import dataclasses

    from algorithms import hierarchical_equality as he
    from causalab.registry import make_task

    task = make_task("both_equality_relations")
    zeroed = dataclasses.replace(task, encode=lambda v: he.encode({**v, "x4": torch.zeros_like(v["x4"])}))
    with pytest.raises(InvariantViolation) as info:
        check_algorithm(zeroed, invariants=["encoding_determines_label"], settings=SETTINGS)
    assert info.value.details["input"] == "x4"


def test_a_label_reading_a_node_that_is_not_an_output_is_named() -> None:
    from causalab.errors import UnknownNodeError

    task = xor_and_task(label=lambda o: o["x"].long())
    with pytest.raises(UnknownNodeError) as info:  # at once, not as a counterexample
        check_algorithm(task, settings=SETTINGS)
    text = str(info.value)
    assert "its label reads 'x'" in text and "output node(s) only (out)" in text and "not an output" in text
    with pytest.raises(UnknownNodeError, match="has no node 'O'"):  # the same wherever labels are computed
        xor_and_task(label=lambda o: o["O"].long()).labels(xor_and_task().counterfactuals(4, torch.Generator()))


def test_an_encoding_the_kit_cannot_compare_is_named() -> None:
    from causalab.testing import KitError

    with pytest.raises(KitError, match="not a tensor, a list with one entry per row or a mapping"):
        check_algorithm(xor_and_task(lambda v: object()), invariants=["encoding_determines_label"], settings=SETTINGS)
