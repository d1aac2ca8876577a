"""Sliding attention windows: while a batch fits in the window the fast resume path runs; a longer batch
takes the hooked forward (which applies the window), and the target says which (``LMTarget.path_for``)."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from algorithms import ioi_data as data  # noqa: E402
from causalab.neural.lm import random_lm  # noqa: E402
from causalab.neural.target import Site  # noqa: E402

torch.set_num_threads(1)
V = len(data.VOCAB)
WINDOWED = {
    "mistral": {"sliding_window": 4},
    "qwen2": {"use_sliding_window": True, "sliding_window": 4, "max_window_layers": 0},
    "gemma2": {"sliding_window": 4},
    "gemma3": {"sliding_window": 4, "layer_types": ["sliding_attention", "full_attention"]},
}


@pytest.fixture(scope="module")
def inputs():
    return data.token_ids(data.sample_sentences(6, torch.Generator().manual_seed(3)))


def full_forward(lm, inputs, site, h):
    """The model's own forward with the block output at each row's position replaced (no causalab path)."""
    rows, pos = torch.arange(len(h)), lm.token_positions(inputs, site.position)

    def put(module, args, out):
        hs = (out[0] if isinstance(out, tuple) else out).clone()
        hs[rows, pos] = h
        return (hs, *out[1:]) if isinstance(out, tuple) else hs

    handle = lm.blocks[site.layer - 1].register_forward_hook(put)
    try:
        with torch.no_grad():
            logits = lm.model(input_ids=inputs["input_ids"]).logits
    finally:
        handle.remove()
    return logits[rows, lm.token_positions(inputs, "last")]


@pytest.mark.parametrize("arch", WINDOWED)
def test_a_batch_longer_than_the_window_takes_the_hooked_forward_and_says_so(arch, inputs):
    lm = random_lm(V, arch=arch, size="tiny", seed=0, **WINDOWED[arch])
    assert lm.layout().sliding_window == 4 and lm.path == "resume"
    site = Site(1, "last")
    assert lm.path_for(inputs, site) == "hooked"
    assert lm.resume_cache(inputs, site) is None  # nothing cached
    h = lm.hidden(inputs, site) + 1.0
    want = full_forward(lm, inputs, site, h)
    assert (lm.patched_logits(inputs, site, h) - want).abs().max() < 1e-5
    unwindowed = random_lm(V, arch=arch, size="tiny", seed=0, **{**WINDOWED[arch], "sliding_window": 4096})
    assert (full_forward(unwindowed, inputs, site, h) - want).abs().max() > 1e-4  # the window mattered


@pytest.mark.parametrize("arch", WINDOWED)
def test_a_batch_inside_the_window_takes_the_fast_path(arch):
    lm = random_lm(V, arch=arch, size="tiny", seed=0, **WINDOWED[arch])
    short = {"input_ids": torch.randint(0, V, (5, 4), generator=torch.Generator().manual_seed(0))}
    site = Site(1, 2)
    assert lm.path_for(short, site) == "resume" and lm.path_for(short, Site(1, 2, "mlp_output")) == "hooked"
    cache = lm.resume_cache(short, site)
    assert cache is not None
    h = lm.hidden(short, site) + 1.0
    assert (lm.patched_logits(short, site, h, resume=cache) - full_forward(lm, short, site, h)).abs().max() < 1e-5
    assert random_lm(V, arch=arch, size="tiny", seed=0, engine="pyvene", **WINDOWED[arch]).path_for(short, site) \
        == "pyvene"
