"""The throughput benchmark times the same computation three ways: its paths agree on the loss."""

from __future__ import annotations

import pytest
import torch
from conftest import load_benchmark


@pytest.fixture(scope="module")
def throughput():
    return load_benchmark("throughput")


def first_losses(steps: dict) -> dict[str, float]:
    return {path: float(step(0)) for path, step in steps.items()}


@pytest.mark.parametrize("spec", ["rotation", "revnet:blocks=2,hidden=8"])
def test_mlp_paths_compute_the_same_loss(throughput, spec):
    steps = throughput.setup_mlp(spec, 128, throughput.PATHS)
    rows = {path: throughput.map_rows_per_step(path, step) for path, step in steps.items()}
    losses = first_losses(steps)  # same map init, same batch: the same interchange loss
    assert set(losses) == set(throughput.PATHS)
    assert losses["causalab"] == pytest.approx(losses["raw"], abs=1e-5)
    assert losses["causalab"] == pytest.approx(losses["pyvene"], abs=1e-5)
    # the pyvene loop runs base, source and inverse once per variable (two variables)
    assert rows["pyvene"] == 6 * 128
    if spec == "rotation":
        assert rows["causalab"] == 0  # swapped by projection
    else:
        assert 0 < rows["causalab"] < rows["raw"] < rows["pyvene"]


@pytest.mark.parametrize("spec", ["rotation", "revnet:blocks=2,hidden=8"])
def test_lm_paths_compute_the_same_loss(throughput, spec):
    torch.manual_seed(0)
    steps = throughput.setup_lm(spec, 4, throughput.PATHS, size="tiny", layer=1, seq=7, vocab=61, pool=2)
    losses = first_losses(steps)
    assert losses["causalab"] == pytest.approx(losses["raw"], abs=1e-4)
    assert losses["causalab"] == pytest.approx(losses["pyvene"], abs=1e-4)
