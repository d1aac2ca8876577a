"""How many torch threads a causalab process computes with.

One thread per process is several times faster than two on the small models causalab
fits, so the command line and the sweep workers set one unless told otherwise; runs
are parallelised across processes instead. Importing causalab sets nothing: a notebook
or script that imports the library keeps its own thread count.
"""

from __future__ import annotations

import os

import torch

from causalab.errors import ConfigError

ENV = "CAUSALAB_THREADS"


def thread_count(threads: int | None = None) -> int:
    """``threads`` if given, else ``$CAUSALAB_THREADS``, else 1."""
    if threads is None:
        text = os.environ.get(ENV, "").strip()
        if not text:
            return 1
        try:
            threads = int(text)
        except ValueError:
            raise ConfigError(f"${ENV} must be a positive integer (torch threads per process), got {text!r}") from None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"torch threads per process must be a positive integer, got {threads!r}")
    return threads


def use_threads(threads: int | None = None) -> int:
    """Set this process's torch threads to :func:`thread_count` of ``threads``; return the count."""
    n = thread_count(threads)
    torch.set_num_threads(n)
    return n
