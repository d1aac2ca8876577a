"""`Task`: an algorithm bound to a network's input encoding and output classes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from causalab.causal.algorithm import Algorithm, Values
from causalab.causal.counterfactual import CounterfactualDataset, PairSampler, sample_counterfactuals
from causalab.errors import SiteError, UnknownNodeError


def cross_entropy_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, labels)


def argmax_correct(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return logits.argmax(dim=-1) == labels


Splits = Callable[[Sequence[int], torch.Generator], "list[CounterfactualDataset]"]


@dataclass
class Task:
    """What a network sees of an algorithm, and how its outputs are scored.

    ``encode`` turns algorithm inputs into network inputs; ``label`` turns output-node
    values into class indices. ``family`` names the input/output behaviour that
    algorithms share: networks trained for one family serve all of its algorithms.
    ``loss`` and ``correct`` default to cross-entropy and argmax accuracy.

    The networks a task is scored on:

    - ``input_width`` / ``hidden_width``: the width of the encoded input and the default
      hidden width of the family's MLP targets (``trained``, ``random``); the hidden width
      defaults to the input width, as in the paper.
    - ``oracle``: a zero-argument builder of a hand-built network computing the algorithm
      in known neurons (the ``oracle`` target), where the family has one.
    - ``build_target``: a family's own networks (IOI's language models), called as
      ``build_target(kind, seed, *, dtype, dry, **options)``; ``dry=True`` asks for a network
      of the same architecture without training it (what validation reads widths and sites
      from). When set, it replaces the MLP builders.
    - ``positions``: the named token positions its language-model encoding marks (an input key
      ``pos_<name>`` per name; IOI: ``s2``, ``io``), where a site may sit beside ``"last"`` and
      integer indices (:meth:`check_position`).

    Its data:

    - ``counterfactual_splits``: ``(sizes, generator) -> [train, val, test]`` for a task that
      controls its splits itself (IOI with disjoint names: test pairs use unseen names);
      else the three are cut from one draw (:meth:`splits`).
    - ``ood_split``: the same signature, for :func:`causalab.scores.ood_iia`: fit on one part
      of the input space, test on another.
    - ``control_of``: set on a control task made by :func:`causalab.scores.control_algorithm`
      (which task, variable and seed it controls), for the record.
    """

    name: str
    algorithm: Algorithm
    encode: Callable[[Values], Any]
    label: Callable[[Values], torch.Tensor]
    intervention_sets: list[tuple[str, ...]]
    family: str
    n_classes: int
    set_probs: Sequence[float] | None = None
    pair_sampler: PairSampler | None = None
    change_share: float | None = None
    output: str | None = None
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = cross_entropy_loss
    correct: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = argmax_correct
    description: str = ""
    input_width: int | None = None
    hidden_width: int | None = None
    oracle: Callable[[], Any] | None = None
    build_target: Callable[..., Any] | None = None
    counterfactual_splits: Splits | None = None
    ood_split: Splits | None = None
    control_of: dict[str, Any] | None = None
    positions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.intervention_sets = [((s,) if isinstance(s, str) else tuple(s)) for s in self.intervention_sets]
        for s in self.intervention_sets:
            for v in s:
                if v not in self.algorithm.graph:
                    raise UnknownNodeError(
                        f"task {self.name!r}: intervention set {list(s)} names {v!r}, which algorithm "
                        f"{self.algorithm.name!r} does not have; its variables: {', '.join(self.algorithm.variables)} "
                        f"(inputs: {', '.join(self.algorithm.inputs)})")
        if self.output is None:
            self.output = self.algorithm.output

    def check_position(self, position: str | int | None, known: Sequence[str] = ()) -> None:
        """Raise :class:`~causalab.errors.SiteError` (part ``"position"``) for a named token position
        this task's inputs do not mark; ``"last"``, an integer and ``None`` are the network's to check,
        and so are the names in ``known`` (the network's own, :attr:`LMTarget.positions`).

        >>> from causalab.registry import make_task
        >>> make_task("ioi_pattern").check_position("s2")
        >>> make_task("ioi_pattern").check_position("s3")
        Traceback (most recent call last):
        ...
        causalab.errors.SiteError: 'ioi_pattern' marks no token position 's3'; its named positions: last, s2, io (or an index >= 0)
        """
        if isinstance(position, str) and position != "last" and position not in (*self.positions, *known):
            names = ", ".join(["last", *self.positions])
            raise SiteError(f"{self.name!r} marks no token position {position!r}; its named positions: {names} "
                            "(or an index >= 0)", "position")

    @property
    def variables(self) -> list[str]:
        """The intervened variables, in order of first appearance."""
        return list(dict.fromkeys(v for s in self.intervention_sets for v in s))

    def counterfactuals(self, n: int, generator: torch.Generator) -> CounterfactualDataset:
        return sample_counterfactuals(
            self.algorithm,
            n,
            self.intervention_sets,
            probs=self.set_probs,
            generator=generator,
            pair_sampler=self.pair_sampler,
            change_share=self.change_share,
            output=self.output,
        )

    def splits(self, sizes: Sequence[int], generator: torch.Generator) -> list[CounterfactualDataset]:
        """Train, validation and test pairs of ``sizes``: the task's own split, else three cuts of one draw."""
        if self.counterfactual_splits is not None:
            return list(self.counterfactual_splits(list(sizes), generator))
        return self.counterfactuals(sum(sizes), generator).split(list(sizes))

    def for_target(self, target: Any) -> Task:
        """This task as ``target`` reads it: the same task, unless the target brings its own
        input encoding (an LM with another tokenizer), in which case a new task, never a change
        to this one."""
        return self

    def factual(self, n: int, generator: torch.Generator) -> tuple[Any, torch.Tensor]:
        """Network inputs and labels of plain (un-intervened) runs, for training a network on the task."""
        inputs = self.algorithm.sample_inputs(n, generator)
        return self.encode(inputs), self.label_outputs(self.algorithm.run(inputs))

    def labels(self, data: CounterfactualDataset) -> torch.Tensor:
        return self.label_outputs(data.counterfactual_outputs)

    def label_outputs(self, values: Values) -> torch.Tensor:
        """``label`` applied to the output nodes' values (and only those, wherever labels are computed).

        Raises :class:`~causalab.errors.UnknownNodeError` naming the node when ``label`` reads
        one that is not an output, instead of a bare ``KeyError``.
        """
        outputs = self.algorithm.outputs
        given = {o: values[o] for o in outputs if o in values}
        try:
            return self.label(given)
        except KeyError as exc:
            key = exc.args[0] if len(exc.args) == 1 else None
            if not isinstance(key, str) or key in given or isinstance(exc, UnknownNodeError):
                raise
            what = (f"{key!r} is not an output of algorithm {self.algorithm.name!r}" if key in self.algorithm.graph
                    else f"algorithm {self.algorithm.name!r} has no node {key!r}")
            raise UnknownNodeError(f"task {self.name!r}: its label reads {key!r}, but a label is given the output "
                                   f"node(s) only ({', '.join(outputs)}); {what}") from None
