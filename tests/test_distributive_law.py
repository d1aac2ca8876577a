"""The distributive-law task: both algorithms compute the same function; data are balanced."""

import pytest
import torch

from causalab import make_task


def test_and_or_and_and_or_agree_on_every_input():
    a, b = make_task("and_or_and"), make_task("and_or")
    inputs = a.algorithm.sample_inputs(20_000, torch.Generator().manual_seed(0))
    assert torch.equal(a.algorithm.run(inputs)["O"], b.algorithm.run(inputs)["O"])


@pytest.mark.parametrize("name", ["and_or_and", "and_or"])
def test_outputs_and_label_changes_are_balanced(name):
    task = make_task(name)
    ds = task.counterfactuals(20_000, torch.Generator().manual_seed(1))
    assert ds.label_changed("O").float().mean().item() == pytest.approx(0.5, abs=1e-3)
    assert ds.base_outputs["O"].float().mean().item() == pytest.approx(0.5, abs=0.03)
    assert task.hidden_width == 24


def test_and_or_variables_are_what_the_paper_names():
    task = make_task("and_or")
    eq = lambda x, y: (x == y).all(-1)
    inputs = task.algorithm.sample_inputs(5_000, torch.Generator().manual_seed(2))
    vals = task.algorithm.run(inputs)
    assert torch.equal(vals["V1"], eq(inputs["x3"], inputs["x4"]))
    assert torch.equal(vals["V2"], eq(inputs["x1"], inputs["x2"]) | eq(inputs["x5"], inputs["x6"]))
