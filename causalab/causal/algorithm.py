"""`Algorithm`: a symbolic causal model held as a networkx DAG.

Each node of the graph carries, as node attributes:

- ``domain``: a finite tuple of allowed values, or ``None`` for a continuous node;
- ``sampler``: for an input node, ``sampler(n, generator) -> Tensor`` drawing ``n``
  values (batch first); optional when the domain is finite or the algorithm has
  an ``input_sampler``;
- ``mechanism``: for every other node, a function whose argument names are
  exactly its parents; it receives batched tensors and returns a batched tensor.

Values are torch tensors whose first dimension is the batch, so a run over a
million inputs is a handful of tensor operations.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import networkx as nx
import torch

from causalab.errors import (
    AlgorithmError,
    CycleError,
    DomainError,
    DuplicateNodeError,
    MechanismError,
    MissingInputError,
    NoOutputError,
    SamplingError,
    UnknownNodeError,
)

Values = dict[str, torch.Tensor]
InputSampler = Callable[[int, torch.Generator], Mapping[str, torch.Tensor]]


def _parameter_names(fn: Callable) -> list[str]:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError) as exc:  # builtins without a signature
        raise MechanismError(f"cannot read the arguments of mechanism {fn!r}: {exc}") from exc
    names = []
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise MechanismError(
                f"mechanism {getattr(fn, '__name__', fn)!r} uses *args/**kwargs; "
                "its arguments must name its parents one by one"
            )
        names.append(p.name)
    return names


class Algorithm:
    """A causal model over an ``nx.DiGraph``; see the module docstring for node attributes.

    Build it from a graph, or with :meth:`from_functions`, where each mechanism's
    argument names give its parents.
    """

    def __init__(
        self,
        graph: nx.DiGraph,
        *,
        name: str = "algorithm",
        outputs: Sequence[str] | None = None,
        input_sampler: InputSampler | None = None,
    ) -> None:
        if not isinstance(graph, nx.DiGraph):
            raise AlgorithmError(f"algorithm {name!r}: expected an nx.DiGraph, got {type(graph).__name__}")
        self.name = name
        self.graph = graph
        self.input_sampler = input_sampler
        self._validate_graph()
        self.order: list[str] = list(nx.topological_sort(graph))
        self.inputs: list[str] = [n for n in self.order if graph.in_degree(n) == 0]
        self.variables: list[str] = [n for n in self.order if graph.in_degree(n) > 0]
        if outputs is None:
            outputs = [n for n in self.variables if graph.out_degree(n) == 0]
        for o in outputs:
            self._check_known(o, "output")
            if o in self.inputs:
                raise NoOutputError(f"algorithm {name!r}: output {o!r} is an input node; an output needs a mechanism")
        if not outputs:
            raise NoOutputError(
                f"algorithm {name!r} has no output: no node has a mechanism and no children "
                f"(nodes: {sorted(graph.nodes)})"
            )
        self.outputs: list[str] = list(outputs)
        self._validate_nodes()
        self._domain_tensors: dict[str, torch.Tensor] = {}

    # --- construction ------------------------------------------------------------
    @classmethod
    def from_functions(
        cls,
        inputs: Mapping[str, Any],
        mechanisms: Mapping[str, Callable],
        *,
        domains: Mapping[str, Sequence] | None = None,
        name: str = "algorithm",
        outputs: Sequence[str] | None = None,
        input_sampler: InputSampler | None = None,
    ) -> Algorithm:
        """Build from plain functions; a mechanism's argument names are its parents.

        ``inputs`` maps each input name to a sampler ``(n, generator) -> Tensor``,
        a finite domain (a list or tuple), or ``None`` when ``input_sampler`` draws it.
        """
        domains = dict(domains or {})
        clash = set(inputs) & set(mechanisms)
        if clash:
            raise DuplicateNodeError(f"algorithm {name!r}: {sorted(clash)} named both as input and as mechanism")
        g = nx.DiGraph()
        for inp, spec in inputs.items():
            attrs: dict[str, Any] = {"domain": domains.get(inp), "sampler": None}
            if callable(spec):
                attrs["sampler"] = spec
            elif isinstance(spec, (list, tuple)):
                attrs["domain"] = tuple(spec)
            elif spec is not None:
                raise AlgorithmError(
                    f"algorithm {name!r}: input {inp!r} needs a sampler, a finite domain or None, got {spec!r}"
                )
            g.add_node(inp, **attrs)
        for var, fn in mechanisms.items():
            g.add_node(var, mechanism=fn, domain=domains.get(var))
        known = set(g.nodes)
        for var, fn in mechanisms.items():
            for parent in _parameter_names(fn):
                if parent not in known:
                    raise UnknownNodeError(
                        f"algorithm {name!r}: mechanism of {var!r} takes argument {parent!r}, "
                        f"which is not a node (nodes: {sorted(known)})"
                    )
                g.add_edge(parent, var)
        unknown_domains = set(domains) - known
        if unknown_domains:
            raise UnknownNodeError(f"algorithm {name!r}: domains given for unknown nodes {sorted(unknown_domains)}")
        return cls(g, name=name, outputs=outputs, input_sampler=input_sampler)

    def _validate_graph(self) -> None:
        if not nx.is_directed_acyclic_graph(self.graph):
            cycle = nx.find_cycle(self.graph)
            path = " -> ".join(str(u) for u, _ in cycle) + f" -> {cycle[0][0]}"
            raise CycleError(f"algorithm {self.name!r} has a cycle: {path}")
        names = [str(n) for n in self.graph.nodes]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise DuplicateNodeError(f"algorithm {self.name!r}: node names {dup} are used twice")

    def _validate_nodes(self) -> None:
        g = self.graph
        for node in self.order:
            data = g.nodes[node]
            domain = data.get("domain")
            if domain is not None:
                if not isinstance(domain, (list, tuple)) or len(domain) == 0:
                    raise AlgorithmError(f"node {node!r}: domain must be a non-empty list or tuple, got {domain!r}")
                try:
                    torch.as_tensor(list(domain))
                except (TypeError, ValueError, RuntimeError):
                    raise AlgorithmError(
                        f"node {node!r}: domain {domain!r} must hold numbers or booleans (encode symbols as integers)"
                    ) from None
            parents = set(g.predecessors(node))
            mech = data.get("mechanism")
            if not parents:
                if mech is not None:
                    raise MechanismError(f"node {node!r} has a mechanism but no parents; an input node takes a sampler")
                if data.get("sampler") is None and domain is None and self.input_sampler is None:
                    raise AlgorithmError(
                        f"input {node!r} has neither a sampler nor a finite domain, and the algorithm "
                        "has no input_sampler: there is no way to draw it"
                    )
                continue
            if mech is None:
                raise MechanismError(f"node {node!r} has parents {sorted(parents)} but no mechanism")
            args = _parameter_names(mech)
            if len(set(args)) != len(args) or set(args) != parents:
                raise MechanismError(
                    f"mechanism of {node!r} takes arguments {args}, but its parents are {sorted(parents)}: "
                    "the argument names must be exactly the parents"
                )

    # --- queries -----------------------------------------------------------------
    @property
    def nodes(self) -> list[str]:
        return list(self.order)

    @property
    def output(self) -> str:
        """The single output (an error if the algorithm has several)."""
        if len(self.outputs) != 1:
            raise AlgorithmError(f"algorithm {self.name!r} has outputs {self.outputs}; name one explicitly")
        return self.outputs[0]

    def parents(self, node: str) -> list[str]:
        self._check_known(node)
        return sorted(self.graph.predecessors(node))

    def domain(self, node: str) -> tuple | None:
        self._check_known(node)
        return self.graph.nodes[node].get("domain")

    def _check_known(self, node: str, what: str = "node") -> None:
        if node not in self.graph:
            raise UnknownNodeError(
                f"algorithm {self.name!r} has no {what} {node!r} "
                f"(nodes: {', '.join(map(str, self.order if hasattr(self, 'order') else self.graph.nodes))})"
            )

    def __repr__(self) -> str:
        return f"Algorithm({self.name!r}, inputs={self.inputs}, variables={self.variables}, outputs={self.outputs})"

    # --- domains -----------------------------------------------------------------
    def _domain_tensor(self, node: str) -> torch.Tensor | None:
        domain = self.graph.nodes[node].get("domain")
        if domain is None:
            return None
        if node not in self._domain_tensors:
            self._domain_tensors[node] = torch.as_tensor(list(domain))
        return self._domain_tensors[node]

    def check_domain(self, node: str, value: torch.Tensor, what: str = "value") -> None:
        """Raise :class:`DomainError` if any entry of ``value`` lies outside ``node``'s finite domain."""
        dom = self._domain_tensor(node)
        if dom is None:
            return
        if value.dtype != dom.dtype and (value.dtype == torch.bool) != (dom.dtype == torch.bool):
            raise DomainError(
                f"{what} for {node!r} has dtype {value.dtype}, but its domain {tuple(dom.tolist())} is {dom.dtype}"
            )
        inside = (value.unsqueeze(-1) == dom.to(device=value.device, dtype=value.dtype)).any(-1)
        if not bool(inside.all()):
            bad = value[~inside].flatten()[:3].tolist()
            raise DomainError(f"{what} for {node!r} is outside its domain {tuple(dom.tolist())}: got {bad}")

    # --- running -----------------------------------------------------------------
    def sample_inputs(self, n: int, generator: torch.Generator | None = None) -> Values:
        """Draw ``n`` input settings: the algorithm's input_sampler, else each input's sampler or domain."""
        if generator is None:
            generator = torch.Generator().manual_seed(0)
        values: Values = {}
        if self.input_sampler is not None:
            drawn = dict(self.input_sampler(n, generator))
            self._check_inputs(drawn, n_expected=n)
            self._check_finite(drawn, "the algorithm's input_sampler")
            return drawn
        for node in self.inputs:
            data = self.graph.nodes[node]
            if data.get("sampler") is not None:
                values[node] = data["sampler"](n, generator)
            else:
                dom = self._domain_tensor(node)
                idx = torch.randint(len(dom), (n,), generator=generator)
                values[node] = dom[idx]
        self._check_finite(values, "its sampler")
        return values

    def _check_finite(self, values: Mapping[str, Any], source: str) -> None:
        """Sampled inputs are finite: a NaN would flow silently through every mechanism and network."""
        for node, v in values.items():
            if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all()):
                rows = torch.nonzero(~torch.isfinite(v.reshape(v.shape[0], -1)).all(1)).flatten()[:5].tolist()
                raise SamplingError(f"algorithm {self.name!r}: input {node!r} drawn by {source} is not finite "
                                    f"(NaN or inf) in rows {rows}; samplers must return finite values")

    def _check_inputs(self, inputs: Mapping[str, torch.Tensor], n_expected: int | None = None) -> int:
        missing = [i for i in self.inputs if i not in inputs]
        if missing:
            raise MissingInputError(f"algorithm {self.name!r}: no value given for input(s) {missing}")
        extra = [k for k in inputs if k not in self.graph]
        if extra:
            raise UnknownNodeError(f"algorithm {self.name!r} has no node(s) {extra} (inputs: {self.inputs})")
        not_inputs = [k for k in inputs if k not in self.inputs]
        if not_inputs:
            raise AlgorithmError(
                f"algorithm {self.name!r}: {not_inputs} are not input nodes; set them through interventions"
            )
        sizes = {k: v.shape[0] if v.dim() else None for k, v in inputs.items()}
        batch = {s for s in sizes.values()}
        if None in batch or len(batch) != 1:
            raise AlgorithmError(f"algorithm {self.name!r}: inputs must share one batch dimension, got sizes {sizes}")
        n = batch.pop()
        if n_expected is not None and n != n_expected:
            raise AlgorithmError(f"algorithm {self.name!r}: input sampler returned {n} rows, expected {n_expected}")
        return n

    def run(
        self,
        inputs: Mapping[str, torch.Tensor],
        interventions: Mapping[str, torch.Tensor | Any] | None = None,
    ) -> Values:
        """Compute every node on a batch of inputs, with optional hard interventions.

        An intervention fixes a node (input or variable) to the given value, a batched
        tensor or one value for the whole batch; the node's mechanism is not run.
        """
        inputs = {k: torch.as_tensor(v) for k, v in inputs.items()}
        n = self._check_inputs(inputs)
        fixed: Values = {}
        for node, value in (interventions or {}).items():
            self._check_known(node, "intervened variable")
            value = torch.as_tensor(value)
            if value.dim() == 0 or value.shape[0] != n:
                value = value.expand(n, *value.shape) if value.dim() == 0 else value.unsqueeze(0).expand(n, *value.shape)
            self.check_domain(node, value, what="intervention value")
            fixed[node] = value
        values: Values = {}
        for node in self.order:
            if node in fixed:
                values[node] = fixed[node]
            elif node in inputs:
                values[node] = inputs[node]
            else:
                mech = self.graph.nodes[node]["mechanism"]
                args = {p: values[p] for p in self.graph.predecessors(node)}
                out = torch.as_tensor(mech(**args))
                if out.dim() == 0 or out.shape[0] != n:
                    raise MechanismError(
                        f"mechanism of {node!r} returned shape {tuple(out.shape)}; a batch of {n} needs a leading dimension of {n}"
                    )
                values[node] = out
        return values

    def interchange(
        self,
        base: Mapping[str, torch.Tensor],
        sources: Mapping[str, Mapping[str, torch.Tensor]],
    ) -> Values:
        """Run ``base`` with each variable set to the value it takes on its own source input.

        ``sources`` maps each intervened variable to a batch of source inputs
        (one source per variable, row-aligned with ``base``).
        """
        interventions: Values = {}
        for var, src in sources.items():
            self._check_known(var, "intervened variable")
            interventions[var] = self.run(src)[var]
        return self.run(base, interventions)

    def descendants(self, nodes: Iterable[str]) -> set[str]:
        out: set[str] = set()
        for n in nodes:
            self._check_known(n)
            out |= nx.descendants(self.graph, n)
        return out
