"""Control algorithms: the same graph with one intermediate variable replaced by a random function.

A control keeps the variable's parents and its marginal distribution (so its entropy)
but computes something the network has no reason to compute: a random partition of
its parents' values. If an alignment map reaches the same IIA for the control as for
the real algorithm, the IIA says more about the map than about the network
(Hewitt and Liang's control tasks, carried over to interchange interventions).

The random function is deterministic in the parents' values, so counterfactual
labels are well defined:

- any floating-point parent: a fixed random projection of all parents' values
  (flattened and concatenated), cut at the quantiles of the input distribution;
- only integer or boolean parents: a fixed random hash of the values, cut likewise.

Cutting at quantiles matched to the variable's own marginal ``P(value)`` (estimated
on ``n_estimate`` input draws) gives the control the same distribution of values.
"""

from __future__ import annotations

import dataclasses
import inspect

import torch

from causalab.causal.algorithm import Algorithm, Values
from causalab.causal.task import Task
from causalab.errors import ScoreError

_HASH_PRIME = 2_147_483_629  # below 2^31, so products of two residues fit in int64


class RandomPartitionMechanism:
    """``value = domain[bin(score(parents))]``: a fixed, seeded, deterministic random function.

    ``score`` is a random projection (float parents) or a random hash (integer parents);
    ``cuts`` are the score's quantiles under the input distribution, chosen so that
    each domain value keeps its probability.
    """

    def __init__(self, parents: list[str], domain: tuple, seed: int) -> None:
        self.parents = list(parents)
        self.domain = torch.as_tensor(list(domain))
        self.seed = seed
        self.weights: dict[str, torch.Tensor] = {}
        self.hashed: bool | None = None
        self.cuts = torch.zeros(0)
        self.__signature__ = inspect.Signature(
            [inspect.Parameter(p, inspect.Parameter.KEYWORD_ONLY) for p in self.parents]
        )
        self.__name__ = f"random_partition(seed={seed})"

    def _flat(self, values: dict[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
        """Each parent's values as ``(batch, features)``, in the parents' order."""
        out = []
        for p in self.parents:
            v = torch.as_tensor(values[p])
            out.append((p, v.reshape(v.shape[0], -1)))
        return out

    def score(self, **values: torch.Tensor) -> torch.Tensor:
        flat = self._flat(values)
        if self.hashed is None:
            self.hashed = not any(v.is_floating_point() for _, v in flat)
        g = torch.Generator().manual_seed(self.seed)
        if self.hashed:
            h = torch.zeros(flat[0][1].shape[0], dtype=torch.int64)
            for _p, v in flat:
                coeffs = torch.randint(1, _HASH_PRIME, (v.shape[1], 2), generator=g)
                for j in range(v.shape[1]):
                    h = (h * coeffs[j, 0] + v[:, j].long() % _HASH_PRIME + coeffs[j, 1]) % _HASH_PRIME
            # a final multiplicative mix so that nearby integers land far apart
            mix = int(torch.randint(1, _HASH_PRIME, (1,), generator=g))
            return ((h * mix) % _HASH_PRIME).double() / _HASH_PRIME
        out = torch.zeros(flat[0][1].shape[0], dtype=torch.float64)
        for p, v in flat:
            if p not in self.weights:
                self.weights[p] = torch.randn(v.shape[1], generator=g, dtype=torch.float64)
            out = out + v.double() @ self.weights[p]
        return out

    def calibrate(self, values: Values, probs: torch.Tensor) -> None:
        """Set the cut points so that the domain values come out with probabilities ``probs``."""
        s = self.score(**{p: values[p] for p in self.parents})
        cum = torch.cumsum(probs.double(), 0)[:-1].clamp(0.0, 1.0)
        self.cuts = torch.quantile(s, cum) if len(cum) else torch.zeros(0, dtype=torch.float64)

    def __call__(self, **values: torch.Tensor) -> torch.Tensor:
        s = self.score(**values)
        idx = torch.bucketize(s, self.cuts.to(s.dtype), right=True)
        return self.domain[idx.clamp(max=len(self.domain) - 1)]


def _marginal(values: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
    hits = values.reshape(-1, 1) == domain.to(values.dtype).reshape(1, -1)
    return hits.double().mean(0)


def control_algorithm(
    task: Task,
    variable: str,
    seed: int = 0,
    *,
    n_estimate: int = 20_000,
) -> Task:
    """The task with ``variable``'s mechanism replaced by a random function of the same parents.

    The new variable keeps its parents, its finite domain and its marginal distribution
    under the task's input distribution; everything else (encoding, labels, sources,
    intervention sets) is the task's own. The result is named ``"<task>~control(<variable>)"``.
    """
    algorithm = task.algorithm
    if variable not in algorithm.graph:
        raise ScoreError(
            f"control_algorithm: task {task.name!r} has no variable {variable!r}; "
            f"its intermediate variables are {_intermediates(algorithm)}"
        )
    if variable in algorithm.inputs or variable in algorithm.outputs:
        kind = "an input" if variable in algorithm.inputs else "an output"
        raise ScoreError(
            f"control_algorithm: {variable!r} is {kind} of {algorithm.name!r}; only an intermediate "
            f"variable's mechanism can be replaced (choose from {_intermediates(algorithm)})"
        )
    domain = algorithm.domain(variable)
    if domain is None:
        raise ScoreError(
            f"control_algorithm: {variable!r} has no finite domain; a control with the same "
            "distribution is defined for finite-valued variables only"
        )
    gen = torch.Generator().manual_seed(1_000_003 * (seed + 1))
    values = algorithm.run(algorithm.sample_inputs(n_estimate, gen))
    dom = torch.as_tensor(list(domain))
    probs = _marginal(values[variable], dom)
    mechanism = RandomPartitionMechanism(algorithm.parents(variable), tuple(domain), seed)
    mechanism.calibrate(values, probs)
    graph = algorithm.graph.copy()
    graph.nodes[variable]["mechanism"] = mechanism
    control = Algorithm(
        graph,
        name=f"{algorithm.name}~control({variable})",
        outputs=list(algorithm.outputs),
        input_sampler=algorithm.input_sampler,
    )
    control_of = {"task": task.name, "variable": variable, "seed": seed, "marginal": probs.tolist()}
    return dataclasses.replace(task, name=f"{task.name}~control({variable})", algorithm=control, control_of=control_of,
                               counterfactual_splits=None, ood_split=None)


def _intermediates(algorithm: Algorithm) -> list[str]:
    return [v for v in algorithm.variables if v not in algorithm.outputs]
