"""pytest fixtures for the property-testing kit.

Use them from a test module with ``from causalab.testing.plugin import *``, from a
root ``conftest.py`` with ``pytest_plugins = ["causalab.testing.plugin"]``, or for
one run with ``pytest -p causalab.testing.plugin``. Loaded as a plugin (the last two
ways) it adds the option ``--kit-examples N``; the environment variable
``CAUSALAB_KIT_EXAMPLES`` works every way.

Fixtures:

- ``kit``: the check functions bound to one set of hypothesis settings;
- ``alignment_family``: each registered alignment family's name, one test per family;
- ``builtin_task``: each registered task, one test per task.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from causalab.registry import ALGORITHMS, ALIGNMENTS, make_task
from causalab.testing.checks import check_algorithm, check_alignment_map, check_interchange, kit_settings

__all__ = ["Kit", "alignment_family", "builtin_task", "kit"]


class Kit:
    """The kit's checks with shared settings (``max_examples`` per invariant, derandomised)."""

    def __init__(self, max_examples: int = 25, **settings: Any) -> None:
        self.settings = kit_settings(max_examples, **settings)

    def check_alignment_map(self, map_or_factory: Any, **options: Any) -> None:
        check_alignment_map(map_or_factory, settings=self.settings, **options)

    def check_interchange(self, map_or_factory: Any = "identity", interchange_fn: Any = None, **options: Any) -> None:
        if interchange_fn is not None:
            options["interchange_fn"] = interchange_fn
        check_interchange(map_or_factory, settings=self.settings, **options)

    def check_algorithm(self, algorithm: Any, **options: Any) -> None:
        check_algorithm(algorithm, settings=self.settings, **options)


def pytest_addoption(parser: Any) -> None:
    parser.addoption("--kit-examples", type=int, default=None, help="hypothesis examples per causalab.testing invariant")


@pytest.fixture
def kit(request: Any) -> Kit:
    """The checks, with ``--kit-examples`` / ``CAUSALAB_KIT_EXAMPLES`` examples per invariant (default 25)."""
    n = request.config.getoption("kit_examples", default=None) or int(os.environ.get("CAUSALAB_KIT_EXAMPLES", "25"))
    return Kit(n)


@pytest.fixture(params=ALIGNMENTS.names())
def alignment_family(request: Any) -> str:
    """The name of each registered alignment family (families registered at collection time)."""
    return request.param


@pytest.fixture(params=ALGORITHMS.names())
def builtin_task(request: Any):
    """Each registered task, freshly built."""
    return make_task(request.param)
