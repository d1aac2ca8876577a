"""Random causal algorithms: a DAG over a few integer variables whose mechanisms are lookup tables.

A :class:`TableAlgorithm` is an ordinary :class:`~causalab.causal.algorithm.Algorithm`
whose every node has a small finite integer domain and whose every mechanism is a
table indexed by its parents' values, batched by tensor indexing. Its ``repr``
prints the tables, so a counterexample built on one can be read and rebuilt.
"""

from __future__ import annotations

import inspect
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import networkx as nx
import torch

from causalab.causal.algorithm import Algorithm


@dataclass(frozen=True)
class NodeSpec:
    """One node: its domain, and for a variable its parents and its table.

    ``table`` is flat and row-major over the parents' *domain indices*; each entry is
    an index into ``domain``.
    """

    name: str
    domain: tuple[int, ...]
    parents: tuple[str, ...] = ()
    table: tuple[int, ...] = ()


def domain_index(values: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
    """The position of each value in ``domain`` (values must lie in it)."""
    return (values.unsqueeze(-1) == domain.to(values.dtype)).long().argmax(-1)


class TableMechanism:
    """A mechanism ``node = domain[table[index(parent_1), ..., index(parent_k)]]``.

    Its signature names the parents, as :class:`Algorithm` requires.
    """

    def __init__(self, spec: NodeSpec, parent_domains: Sequence[tuple[int, ...]]) -> None:
        self.spec = spec
        self.__signature__ = inspect.Signature(
            [inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in spec.parents]
        )
        self._parent_domains = [torch.as_tensor(list(d)) for d in parent_domains]
        self._domain = torch.as_tensor(list(spec.domain))
        self._table = torch.as_tensor(list(spec.table), dtype=torch.long)

    def __call__(self, **values: torch.Tensor) -> torch.Tensor:
        flat = None
        for parent, dom in zip(self.spec.parents, self._parent_domains):
            idx = domain_index(values[parent], dom)
            flat = idx if flat is None else flat * len(dom) + idx
        return self._domain[self._table[flat]]

    def __repr__(self) -> str:
        return f"table({', '.join(self.spec.parents)})"


class TableAlgorithm(Algorithm):
    """An algorithm built from :class:`NodeSpec` s; the last spec is the output."""

    def __init__(self, specs: Sequence[NodeSpec], name: str = "table_algorithm") -> None:
        self.specs = tuple(specs)
        by_name = {s.name: s for s in self.specs}
        g = nx.DiGraph()
        for s in self.specs:
            if s.parents:
                mech = TableMechanism(s, [by_name[p].domain for p in s.parents])
                g.add_node(s.name, domain=s.domain, mechanism=mech)
                for p in s.parents:
                    g.add_edge(p, s.name)
            else:
                g.add_node(s.name, domain=s.domain, sampler=None)
        super().__init__(g, name=name, outputs=[self.specs[-1].name])

    def __repr__(self) -> str:
        by_name = {s.name: s for s in self.specs}
        lines = [f"TableAlgorithm({self.name!r}, output={self.outputs[0]!r},"]
        for s in self.specs:
            if not s.parents:
                lines.append(f"  {s.name} in {s.domain}  (input)")
                continue
            keys = _index_rows([by_name[p].domain for p in s.parents])
            rows = " ".join(f"{','.join(map(str, k))}->{s.domain[t]}" for k, t in zip(keys, s.table))
            lines.append(f"  {s.name} in {s.domain} = f({', '.join(s.parents)}): {rows}")
        return "\n".join(lines) + ")"


def _index_rows(domains: Sequence[tuple[int, ...]]) -> list[tuple[int, ...]]:
    rows: list[tuple[int, ...]] = [()]
    for d in domains:
        rows = [r + (v,) for r in rows for v in d]
    return rows


PickInt = Callable[[int, int], int]
PickSubset = Callable[[Sequence[str], int, int], list[str]]


def design(
    pick_int: PickInt,
    pick_subset: PickSubset,
    *,
    max_inputs: int = 3,
    max_variables: int = 3,
    max_domain: int = 3,
    max_parents: int = 3,
) -> list[NodeSpec]:
    """Choose a table algorithm with the given choosers (hypothesis draws, or a seeded RNG).

    Every choice is made so that the smallest draws give the smallest algorithm.
    """
    n_inputs = pick_int(1, max_inputs)
    n_vars = pick_int(1, max_variables)
    specs: list[NodeSpec] = []
    for k in range(n_inputs + n_vars):
        is_input = k < n_inputs
        name = f"x{k}" if is_input else f"v{k - n_inputs}"
        size = pick_int(1, max_domain)
        offset = pick_int(0, 2)
        domain = tuple(range(offset, offset + size))
        if is_input:
            specs.append(NodeSpec(name, domain))
            continue
        earlier = [s.name for s in specs]
        chosen = set(pick_subset(earlier, 1, min(max_parents, len(earlier))))
        parents = tuple(n for n in earlier if n in chosen)
        rows = math.prod(len(s.domain) for s in specs if s.name in chosen)
        table = tuple(pick_int(0, size - 1) for _ in range(rows))
        specs.append(NodeSpec(name, domain, parents, table))
    return specs


def random_algorithm(seed: int, **sizes: int) -> TableAlgorithm:
    """A random :class:`TableAlgorithm` from ``seed`` (no hypothesis needed); ``sizes`` as in :func:`design`."""
    rng = random.Random(seed)

    def pick_subset(items: Sequence[str], lo: int, hi: int) -> list[str]:
        return rng.sample(list(items), rng.randint(lo, hi))

    return TableAlgorithm(design(rng.randint, pick_subset, **sizes), name=f"random_algorithm_{seed}")
