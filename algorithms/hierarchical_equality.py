"""Hierarchical equality: y = (x1 == x2) == (x3 == x4), with x1..x4 in [-0.5, 0.5]^4.

Three algorithms over the same task (the network is the same for all three):
- both equality relations: V1 = (x1 == x2), V2 = (x3 == x4), O = (V1 == V2);
- left equality relation: only V1 is a variable, O = (V1 == (x3 == x4));
- identity of first argument: the variable is the input x1 itself.
"""

from __future__ import annotations

import torch

from causalab.causal.algorithm import Algorithm, Values
from causalab.causal.task import Task
from causalab.registry import register_algorithm

DIM = 4
FAMILY = "hierarchical_equality"


def _uniform(n: int, g: torch.Generator) -> torch.Tensor:
    return torch.rand(n, DIM, generator=g) - 0.5


def _pair(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Two vectors that are equal with probability 1/2."""
    a, b = _uniform(n, g), _uniform(n, g)
    same = torch.rand(n, generator=g) < 0.5
    return a, torch.where(same[:, None], a, b)


def sample_inputs(n: int, g: torch.Generator) -> Values:
    x1, x2 = _pair(n, g)
    x3, x4 = _pair(n, g)
    return {"x1": x1, "x2": x2, "x3": x3, "x4": x4}


def equal(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a == b).all(dim=-1)


INPUTS = {name: None for name in ("x1", "x2", "x3", "x4")}


def both_equality_relations() -> Algorithm:
    return Algorithm.from_functions(
        INPUTS,
        {"V1": lambda x1, x2: equal(x1, x2), "V2": lambda x3, x4: equal(x3, x4), "O": lambda V1, V2: V1 == V2},
        domains={"V1": (False, True), "V2": (False, True), "O": (False, True)},
        name="both_equality_relations",
        input_sampler=sample_inputs,
    )


def left_equality_relation() -> Algorithm:
    return Algorithm.from_functions(
        INPUTS,
        {"V1": lambda x1, x2: equal(x1, x2), "O": lambda V1, x3, x4: V1 == equal(x3, x4)},
        domains={"V1": (False, True), "O": (False, True)},
        name="left_equality_relation",
        input_sampler=sample_inputs,
    )


def identity_of_first_argument() -> Algorithm:
    return Algorithm.from_functions(
        INPUTS,
        {"O": lambda x1, x2, x3, x4: equal(x1, x2) == equal(x3, x4)},
        domains={"O": (False, True)},
        name="identity_of_first_argument",
        input_sampler=sample_inputs,
    )


def first_argument_source(base: Values, variable: str, g: torch.Generator) -> Values:
    """Sources whose x1 equals the base's x2 half the time, so that swapping x1 flips V1 half the time."""
    n = base["x1"].shape[0]
    src = sample_inputs(n, g)
    reuse = torch.rand(n, generator=g) < 0.5
    src["x1"] = torch.where(reuse[:, None], base["x2"], src["x1"])
    return src


def encode(inputs: Values) -> torch.Tensor:
    return torch.cat([inputs["x1"], inputs["x2"], inputs["x3"], inputs["x4"]], dim=-1)


def label(outputs: Values) -> torch.Tensor:
    return outputs["O"].long()


def _task(name: str, algorithm: Algorithm, sets, **kw) -> Task:
    return Task(
        name=name,
        algorithm=algorithm,
        encode=encode,
        label=label,
        intervention_sets=sets,
        family=FAMILY,
        n_classes=2,
        input_width=4 * DIM, hidden_width=16, oracle=oracle_mlp,
        **kw,
    )


@register_algorithm("both_equality_relations")
def both_equality_relations_task() -> Task:
    """V1 and V2; interventions on V1, V2 or both, 1/3 each (as in the paper)."""
    return _task("both_equality_relations", both_equality_relations(), [("V1",), ("V2",), ("V1", "V2")])


@register_algorithm("left_equality_relation")
def left_equality_relation_task() -> Task:
    """Only V1 = (x1 == x2) is a variable; the right relation stays inside the output's mechanism."""
    return _task("left_equality_relation", left_equality_relation(), [("V1",)])


@register_algorithm("identity_of_first_argument")
def identity_of_first_argument_task() -> Task:
    """The variable is the input x1 itself; sources reuse the base's x2 as x1 half the time."""
    return _task(
        "identity_of_first_argument",
        identity_of_first_argument(),
        [("x1",)],
        pair_sampler=first_argument_source,
    )


def oracle_mlp(sharpness: float = 30.0):
    """A hand-built MLP of the paper's shape that computes both equality relations.

    Hidden layer 1 holds ``|x1 - x2|`` coordinate-wise in neurons 0-7 (V1's block)
    and ``|x3 - x4|`` in neurons 8-15 (V2's block); layer 2 turns each block's sum
    into an equality indicator; layer 3 computes XNOR; the read-out gives the class.
    """
    from causalab.neural.mlp import MLPTarget

    model = MLPTarget(4 * DIM, hidden=16, depth=3, n_classes=2)
    l1, l2, l3, out = model.net[0], model.net[2], model.net[4], model.net[6]
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for pair, (a, b) in enumerate(((0, 1), (2, 3))):
            for i in range(DIM):
                for sign, offset in ((1.0, 0), (-1.0, DIM)):
                    row = pair * 2 * DIM + offset + i
                    l1.weight[row, a * DIM + i] = sign
                    l1.weight[row, b * DIM + i] = -sign
        # layer 2: e1 = relu(1 - k * sum(block1)), e2 likewise (1 when equal, 0 when far apart)
        l2.weight[0, 0 : 2 * DIM] = -sharpness
        l2.bias[0] = 1.0
        l2.weight[1, 2 * DIM : 4 * DIM] = -sharpness
        l2.bias[1] = 1.0
        # layer 3: both = relu(e1 + e2 - 1), neither = relu(1 - e1 - e2)
        l3.weight[0, 0], l3.weight[0, 1], l3.bias[0] = 1.0, 1.0, -1.0
        l3.weight[1, 0], l3.weight[1, 1], l3.bias[1] = -1.0, -1.0, 1.0
        # read-out: logit(1) - logit(0) = 2 * (both + neither) - 1
        out.weight[1, 0], out.weight[1, 1], out.bias[1] = 2.0, 2.0, -0.5
        out.bias[0] = 0.5
    return model.freeze()
