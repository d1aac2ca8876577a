"""Public functions are documented the networkx way (parameters, returns, examples), and every example runs."""

import doctest
import importlib
import inspect

import pytest
import torch

import causalab
from causalab.registry import ALGORITHMS, ALIGNMENTS

torch.set_num_threads(1)

FUNCTIONS = sorted(name for name in causalab.__all__ if inspect.isfunction(getattr(causalab, name)))
MODULES = sorted({getattr(causalab, name).__module__ for name in FUNCTIONS})


@pytest.mark.parametrize("name", FUNCTIONS)
def test_a_public_function_documents_parameters_returns_and_an_example(name):
    function = getattr(causalab, name)
    doc = inspect.getdoc(function) or ""
    returns = inspect.signature(function).return_annotation not in ("None", None)
    wanted = ("Parameters\n---", "Returns\n---", "Examples\n---") if returns else ("Parameters\n---", "Examples\n---")
    missing = [section for section in wanted if section not in doc]
    assert not missing, f"causalab.{name}'s docstring lacks {[m.split(chr(10))[0] for m in missing]}"


@pytest.fixture
def registries_restored():
    """The examples register a task and a map family of their own; the registries are put back after."""
    saved = dict(ALGORITHMS._items), dict(ALIGNMENTS._items)
    yield
    ALGORITHMS._items.clear(), ALGORITHMS._items.update(saved[0])
    ALIGNMENTS._items.clear(), ALIGNMENTS._items.update(saved[1])


@pytest.mark.parametrize("module", MODULES)
def test_the_examples_run(module, tmp_path, monkeypatch, registries_restored):
    monkeypatch.chdir(tmp_path)  # examples that save a map write it here
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0, (module, result)
