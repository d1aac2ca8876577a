"""Distributive law: y = (x1==x2 and x3==x4) or (x3==x4 and x5==x6), x1..x6 in [-0.5, 0.5]^4.

With E1 = (x1==x2), E2 = (x3==x4), E3 = (x5==x6), the output is
(E1 and E2) or (E2 and E3) = E2 and (E1 or E3); two algorithms compute it:
- And-Or-And: V1 = E1 and E2, V2 = E2 and E3, O = V1 or V2;
- And-Or:     V1 = E2,         V2 = E1 or E3,  O = V1 and V2.
Inputs are drawn so that the output is balanced (half true), and counterfactual
pairs so that half of them change the label, as in the paper.
"""

from __future__ import annotations

import torch

from causalab.causal.algorithm import Algorithm, Values
from causalab.causal.task import Task
from causalab.registry import register_algorithm

DIM = 4
FAMILY = "distributive_law"
NAMES = ("x1", "x2", "x3", "x4", "x5", "x6")

# the 8 settings of (E1, E2, E3), split by the output they give
_BITS = torch.tensor([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], dtype=torch.bool)
_OUT = (_BITS[:, 0] & _BITS[:, 1]) | (_BITS[:, 1] & _BITS[:, 2])
_TRUE, _FALSE = torch.nonzero(_OUT).flatten(), torch.nonzero(~_OUT).flatten()


def sample_inputs(n: int, g: torch.Generator) -> Values:
    """Balanced output: pick the output, then an equality pattern uniformly among those giving it."""
    want = torch.rand(n, generator=g) < 0.5
    pick_t = _TRUE[torch.randint(len(_TRUE), (n,), generator=g)]
    pick_f = _FALSE[torch.randint(len(_FALSE), (n,), generator=g)]
    bits = _BITS[torch.where(want, pick_t, pick_f)]
    out: Values = {}
    for k in range(3):
        a = torch.rand(n, DIM, generator=g) - 0.5
        b = torch.rand(n, DIM, generator=g) - 0.5
        out[NAMES[2 * k]] = a
        out[NAMES[2 * k + 1]] = torch.where(bits[:, k : k + 1], a, b)
    return out


def equal(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a == b).all(dim=-1)


INPUTS = {name: None for name in NAMES}
BOOL = (False, True)


def and_or_and() -> Algorithm:
    return Algorithm.from_functions(
        INPUTS,
        {
            "V1": lambda x1, x2, x3, x4: equal(x1, x2) & equal(x3, x4),
            "V2": lambda x3, x4, x5, x6: equal(x3, x4) & equal(x5, x6),
            "O": lambda V1, V2: V1 | V2,
        },
        domains={"V1": BOOL, "V2": BOOL, "O": BOOL},
        name="and_or_and",
        input_sampler=sample_inputs,
    )


def and_or() -> Algorithm:
    return Algorithm.from_functions(
        INPUTS,
        {
            "V1": lambda x3, x4: equal(x3, x4),
            "V2": lambda x1, x2, x5, x6: equal(x1, x2) | equal(x5, x6),
            "O": lambda V1, V2: V1 & V2,
        },
        domains={"V1": BOOL, "V2": BOOL, "O": BOOL},
        name="and_or",
        input_sampler=sample_inputs,
    )


def encode(inputs: Values) -> torch.Tensor:
    return torch.cat([inputs[n] for n in NAMES], dim=-1)


def label(outputs: Values) -> torch.Tensor:
    return outputs["O"].long()


def _task(name: str, algorithm: Algorithm) -> Task:
    return Task(
        name=name,
        algorithm=algorithm,
        encode=encode,
        label=label,
        intervention_sets=[("V1",), ("V2",), ("V1", "V2")],
        family=FAMILY,
        n_classes=2,
        change_share=0.5,
        input_width=6 * DIM, hidden_width=6 * DIM,
    )


@register_algorithm("and_or_and")
def and_or_and_task() -> Task:
    """Distributive law as (E1 and E2) or (E2 and E3); half the counterfactuals change the label."""
    return _task("and_or_and", and_or_and())


@register_algorithm("and_or")
def and_or_task() -> Task:
    """Distributive law as E2 and (E1 or E3); half the counterfactuals change the label."""
    return _task("and_or", and_or())
