"""Seeded construction that leaves the caller's random stream where it was.

Networks are initialised by ``nn.Module`` constructors and transformers' ``_init_weights``,
which draw from torch's global CPU generator. :func:`seeded` seeds that generator for the
construction and restores the caller's state afterwards (``torch.random.fork_rng``), so
building a network from a seed gives the same weights as ``torch.manual_seed(seed)`` did
before, without moving any random stream the caller relies on. Only the CPU generator is
seeded and restored: construction happens on the CPU, and seeding CUDA generators would
initialise CUDA (which a process that forks workers must not do).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's global CPU generator seeded by ``seed``; restore the caller's state after."""
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        yield
