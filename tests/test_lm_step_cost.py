"""The LM step-cost benchmark times the previous and the current resume on the same computation."""

from __future__ import annotations

import pytest
import torch
from conftest import load_benchmark


@pytest.fixture(scope="module")
def cost():
    return load_benchmark("lm_step_cost")


@pytest.mark.parametrize("spec", ["rotation", "revnet:blocks=2,hidden=8"])
def test_before_and_after_compute_the_same_loss_and_the_estimate_counts_the_step(cost, spec):
    s = cost.setup("tiny", spec, 16, 48)
    idx = torch.arange(16)
    losses = {path: float(step(idx)) for path, step in s.steps.items()}
    assert losses["after"] == pytest.approx(losses["before"], abs=1e-5)
    total, prods = s.estimate(spec)
    d, ffn, vocab = 32, 128, s.lm.model.config.vocab_size
    # one live position per row in the one block above layer 1, forward and backward, and the unembedding
    lower = 2 * 2 * 16 * (d * 3 * d + d * d + 2 * d * ffn) + 2 * 2 * 16 * d * vocab
    assert total > lower
    assert s.cached_bytes_per_pair() > 4 * d * 3  # at least the window and the two hidden states
    assert cost.Programme(prods[:2]).seconds(1) > 0


def test_the_compiled_path_computes_the_eager_step(cost):
    s = cost.setup("tiny", "rotation", 16, 48, ["after", "compiled"])
    idx = torch.arange(16)
    losses = {path: float(step(idx)) for path, step in s.steps.items()}
    assert losses["compiled"] == pytest.approx(losses["after"], abs=1e-5)
    # the maps started equal and took the same step
    after, compiled = (dict(s.phis[p].named_parameters()) for p in ("after", "compiled"))
    for name, value in after.items():
        assert torch.allclose(value, compiled[name], atol=1e-6), name
