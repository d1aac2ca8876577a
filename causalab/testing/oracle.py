"""An oracle network built from an algorithm: it computes the algorithm exactly, with known blocks.

Its one hidden layer (``Site(1)``) holds, side by side, an encoding of each chosen
variable (one-hot over a finite domain, else the raw numbers) and, after them, an
encoding of every input (the "carry"). The layers above decode that state and run
the algorithm on the carried inputs with the decoded variables fixed. So swapping a
variable's block is, by construction, the algorithm's own interchange on that
variable, and the identity map on those blocks must score IIA 1.0: if it does not,
the pipeline (sampling, encoding, the interchange, scoring) disagrees with the
algorithm.

The chosen variables must be an antichain (none a descendant of another): a block
that still holds the base's value of a descendant could not follow an intervention
upstream of it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from causalab.causal.algorithm import Algorithm, Values
from causalab.causal.task import Task
from causalab.errors import SiteError
from causalab.fit.metrics import IIAResult
from causalab.maps.intervene import Partition
from causalab.maps.spec import make_alignment
from causalab.neural.target import Site, Target
from causalab.testing.violations import InvariantViolation, KitError

SITE = Site(1)


class _Codec:
    """Encodes one node's values as a block of float64 coordinates, and back."""

    def __init__(self, algorithm: Algorithm, node: str, probe: torch.Tensor) -> None:
        domain = algorithm.domain(node)
        self.node = node
        self.domain = None if domain is None else torch.as_tensor(list(domain))
        self.shape = tuple(probe.shape[1:])
        self.dtype = probe.dtype
        self.size = len(domain) if domain is not None else int(torch.tensor(self.shape).prod()) if self.shape else 1

    def encode(self, values: torch.Tensor) -> torch.Tensor:
        if self.domain is not None:
            idx = (values.unsqueeze(-1) == self.domain.to(values.dtype)).long().argmax(-1)
            return F.one_hot(idx, self.size).double()
        return values.double().reshape(values.shape[0], self.size)

    def decode(self, block: torch.Tensor) -> torch.Tensor:
        if self.domain is not None:
            return self.domain[block.argmax(-1)]
        return block.reshape(block.shape[0], *self.shape).to(self.dtype)


class OracleTarget(Target):
    """A network that computes ``algorithm`` exactly, with ``variables`` in known blocks at ``Site(1)``.

    ``label`` turns the algorithm's outputs into class indices (default: the index of
    ``output``'s value in its finite domain); the logits are one-hot in those classes.
    """

    def __init__(
        self,
        algorithm: Algorithm,
        variables: Sequence[str],
        *,
        label: Callable[[Values], torch.Tensor] | None = None,
        n_classes: int | None = None,
        output: str | None = None,
        probe: Values | None = None,
    ) -> None:
        super().__init__()
        self.algorithm = algorithm
        self.variables = list(variables)
        for v in self.variables:
            algorithm._check_known(v, "oracle variable")
            below = algorithm.descendants([v]) & set(self.variables)
            if below:
                raise KitError(
                    f"oracle variables must be an antichain, but {sorted(below)} descend from {v!r} in "
                    f"{algorithm.name!r}; choose variables none of which is downstream of another"
                )
        output = output or algorithm.outputs[0]
        if label is None:
            domain = algorithm.domain(output)
            if domain is None:
                raise KitError(f"output {output!r} of {algorithm.name!r} has no finite domain; pass label= and n_classes=")
            dom = torch.as_tensor(list(domain))
            label = lambda outputs: (outputs[output].unsqueeze(-1) == dom.to(outputs[output].dtype)).long().argmax(-1)  # noqa: E731
            n_classes = len(domain)
        if n_classes is None:
            raise KitError("an oracle with a custom label needs n_classes")
        self.label, self.n_classes = label, n_classes
        if probe is None:
            probe = algorithm.sample_inputs(2, torch.Generator().manual_seed(0))
        values = algorithm.run(probe)
        self._var_codecs = [_Codec(algorithm, v, values[v]) for v in self.variables]
        self._carry_codecs = [_Codec(algorithm, i, values[i]) for i in algorithm.inputs]
        blocks, start = {}, 0
        for c in self._var_codecs:
            blocks[c.node] = range(start, start + c.size)
            start += c.size
        self._carry_start = start
        self._width = start + sum(c.size for c in self._carry_codecs)
        self.partition = Partition(blocks, self._width)

    def sites(self) -> list[Site]:
        return [SITE]

    def check_site(self, site: Site) -> Site:
        site = site if isinstance(site, Site) else Site(int(site))
        if site != SITE:
            raise SiteError(f"an oracle network has one site, {SITE!r}; got {site!r}")
        return site

    def width(self, site: Site = SITE) -> int:
        self.check_site(site)
        return self._width

    def encode(self, values: Values) -> torch.Tensor:
        return torch.cat([c.encode(values[c.node]) for c in self._var_codecs + self._carry_codecs], dim=-1)

    def hidden(self, inputs: Values, site: Site = SITE) -> torch.Tensor:
        self.check_site(site)
        return self.encode(self.algorithm.run(inputs))

    def decode(self, h: torch.Tensor) -> tuple[Values, Values]:
        """The variables' values and the carried inputs held in a hidden state."""
        fixed, inputs, start = {}, {}, 0
        for codecs, out in ((self._var_codecs, fixed), (self._carry_codecs, inputs)):
            for c in codecs:
                out[c.node] = c.decode(h[:, start : start + c.size])
                start += c.size
        return fixed, inputs

    def patched_logits(self, inputs: Any, site: Site, h: torch.Tensor) -> torch.Tensor:
        """Only ``h`` is read, as in a real network's upper layers."""
        self.check_site(site)
        fixed, carried = self.decode(h)
        labels = self.label(self.algorithm.run(carried, fixed))
        return F.one_hot(labels.long(), self.n_classes).to(h.dtype)

    def logits(self, inputs: Values) -> torch.Tensor:
        return self.patched_logits(inputs, SITE, self.hidden(inputs))


def default_variables(algorithm: Algorithm) -> list[str]:
    """A greedy antichain of the intermediate variables (the output's parents if there are none)."""
    chosen: list[str] = []
    for v in algorithm.variables:
        if v in algorithm.outputs:
            continue
        if not (algorithm.descendants([v]) & set(chosen)) and not any(v in algorithm.descendants([c]) for c in chosen):
            chosen.append(v)
    return chosen or algorithm.parents(algorithm.outputs[0])


def is_antichain(algorithm: Algorithm, variables: Sequence[str]) -> bool:
    """No variable descends from another (what one oracle network can hold at one site)."""
    return not any(algorithm.descendants([v]) & set(variables) for v in variables)


def oracle_groups(task: Task) -> list[tuple[list[str], list[tuple[str, ...]]]]:
    """Oracle networks a task needs: one for all its sets if their variables form an antichain,
    else one per intervention set that is an antichain (a set that is not has no exact network)."""
    if is_antichain(task.algorithm, task.variables):
        return [(task.variables, list(task.intervention_sets))]
    return [(list(s), [s]) for s in task.intervention_sets if is_antichain(task.algorithm, s)]


def oracle_task(subject: Task | Algorithm, variables: Sequence[str] | None = None,
                intervention_sets: Sequence[Sequence[str]] | None = None) -> tuple[Task, OracleTarget]:
    """The oracle network for a task or algorithm, and a task that feeds it the algorithm's inputs."""
    if isinstance(subject, Task):
        task = subject
        variables = list(variables or task.variables)
        target = OracleTarget(task.algorithm, variables, label=task.label_outputs, n_classes=task.n_classes,
                              output=task.output)
        if intervention_sets is None:
            return dataclasses.replace(task, encode=dict, family="oracle"), target
        probs = None  # the task's set probabilities describe its own sets
        return dataclasses.replace(task, encode=dict, intervention_sets=list(intervention_sets), set_probs=probs,
                                   family="oracle"), target
    if not isinstance(subject, Algorithm):
        raise KitError(f"expected a Task or an Algorithm, got {type(subject).__name__}")
    variables = list(variables or default_variables(subject))
    target = OracleTarget(subject, variables)
    sets = intervention_sets or [(v,) for v in variables] + ([tuple(variables)] if len(variables) > 1 else [])
    task = Task(name=f"{subject.name}_oracle", algorithm=subject, encode=dict, label=target.label,
                intervention_sets=list(sets), family="oracle", n_classes=target.n_classes, output=subject.outputs[0])
    return task, target


def oracle_iia(subject: Task | Algorithm, *, variables: Sequence[str] | None = None,
               intervention_sets: Sequence[Sequence[str]] | None = None, n: int = 64, seed: int = 0) -> IIAResult:
    """Score the identity map on the oracle network's blocks; raise :class:`InvariantViolation` below 1.0."""
    from causalab.fit.fitting import evaluate, patched_logits, prepare  # train imports the neural stack

    task, target = oracle_task(subject, variables, intervention_sets)
    data = task.counterfactuals(n, torch.Generator().manual_seed(seed))
    pairs = prepare(target, SITE, task, data)
    phi = make_alignment("identity", target.width()).double()
    result = evaluate(target, SITE, phi, target.partition, task, pairs)
    if result.iia < 1.0:
        with torch.no_grad():
            logits = patched_logits(target, SITE, phi, target.partition, pairs, slice(None))
        row = int(torch.nonzero(~task.correct(logits, pairs.labels))[0])
        k = int(data.set_index[row])
        details = {"intervened": data.intervention_sets[k], "row": row, "IIA": result.iia,
                   **{f"base {i}": v[row] for i, v in data.base.items()}}
        for var in data.intervention_sets[k]:
            details.update({f"source[{var}] {i}": v[row] for i, v in data.sources[var].items()})
        details.update({"expected label": int(pairs.labels[row]), "network label": int(logits[row].argmax())})
        raise InvariantViolation("oracle_iia", f"{task.algorithm.name} (oracle blocks {target.partition})",
                                 "a network that computes the algorithm exactly scores IIA below 1.0 under the identity map",
                                 details)
    return result
