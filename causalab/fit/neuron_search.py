"""Greedy search for the neurons that stand for each variable (the identity map of Sutter et al. 2025).

The identity map has nothing to learn by gradients; what makes it an alignment is the
choice of neurons per variable. The search grows every variable's block one neuron
per step: at each step every assignment of distinct unused neurons, one to each
variable whose block is not yet full, is scored, and the best one is kept. With
``n`` unused neurons and ``k`` growing variables a step scores ``n! / (n - k)!``
candidates: for two variables of 8 neurons each in a 16-wide layer that is
``16*15 + 14*13 + ... + 2*1 = 744`` scorings, for one variable of 8 it is
``16 + 15 + ... + 9 = 100``, for two of 12 in a 24-wide layer 2,444.

The search knows nothing of networks: ``score`` is called with candidate blocks
(variable -> neuron indices) and returns a comparable key (higher is better) and a
record of what it measured. Ties keep the first candidate in enumeration order
(neurons ascending), so the result depends only on the scores.

Example:

>>> blocks, history = greedy_neuron_blocks(4, {"V": 2}, lambda b: (-abs(sum(b["V"]) - 5), {}))
>>> blocks["V"], len(history)
([3, 2], 2)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from itertools import permutations
from typing import Any

from causalab.errors import PartitionError

Score = Callable[[dict[str, list[int]]], tuple[Any, dict]]


def candidate_count(width: int, sizes: Mapping[str, int]) -> int:
    """How many candidate blocks :func:`greedy_neuron_blocks` scores for these block sizes."""
    total, free, step = 0, width, 0
    while True:
        growing = sum(1 for s in sizes.values() if s > step)
        if not growing:
            return total
        count = 1
        for i in range(growing):
            count *= free - i
        total, free, step = total + count, free - growing, step + 1


def greedy_neuron_blocks(width: int, sizes: Mapping[str, int], score: Score) -> tuple[dict[str, list[int]], list[dict]]:
    """Grow each variable's block to ``sizes[v]`` neurons of ``range(width)``, one neuron per variable per step.

    Returns the blocks (in the order their neurons were added) and one history record
    per step: the step's block size, the chosen blocks, the number of candidates
    scored and the winner's record from ``score``. Raises :class:`PartitionError` if
    the blocks need more neurons than ``width``.
    """
    need = sum(sizes.values())
    if any(s < 0 for s in sizes.values()) or need > width:
        raise PartitionError(f"block sizes {dict(sizes)} need {need} distinct neurons, but the width is {width}")
    blocks: dict[str, list[int]] = {v: [] for v in sizes}
    history: list[dict] = []
    step = 0
    while True:
        growing = [v for v, s in sizes.items() if s > step]
        if not growing:
            return blocks, history
        used = {i for b in blocks.values() for i in b}
        free = [i for i in range(width) if i not in used]
        best_key, best, best_record, scored = None, None, {}, 0
        for pick in permutations(free, len(growing)):
            candidate = {v: b + [pick[growing.index(v)]] if v in growing else list(b) for v, b in blocks.items()}
            key, record = score(candidate)
            scored += 1
            if best_key is None or key > best_key:
                best_key, best, best_record = key, candidate, record
        blocks = best
        step += 1
        history.append({"step": step, "blocks": {v: list(b) for v, b in blocks.items()}, "candidates": scored,
                        **best_record})
