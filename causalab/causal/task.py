"""`Task`: an algorithm bound to a network's input encoding and output classes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from causalab.causal.algorithm import Algorithm, Values
from causalab.causal.counterfactual import CounterfactualDataset, PairSampler, sample_counterfactuals


def cross_entropy_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, labels)


def argmax_correct(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return logits.argmax(dim=-1) == labels


@dataclass
class Task:
    """What a network sees of an algorithm, and how its outputs are scored.

    ``encode`` turns algorithm inputs into network inputs; ``label`` turns output-node
    values into class indices. ``family`` names the input/output behaviour that
    algorithms share: networks trained for one family serve all of its algorithms.
    ``loss`` and ``correct`` default to cross-entropy and argmax accuracy.
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
    extras: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.intervention_sets = [((s,) if isinstance(s, str) else tuple(s)) for s in self.intervention_sets]
        if self.output is None:
            self.output = self.algorithm.output

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

    def factual(self, n: int, generator: torch.Generator) -> tuple[Any, torch.Tensor]:
        """Network inputs and labels of plain (un-intervened) runs, for training a network on the task."""
        inputs = self.algorithm.sample_inputs(n, generator)
        return self.encode(inputs), self.label(self.algorithm.run(inputs))

    def labels(self, data: CounterfactualDataset) -> torch.Tensor:
        return self.label(data.counterfactual_outputs)
