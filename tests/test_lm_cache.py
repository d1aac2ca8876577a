"""What ``prepare`` caches for an LM target: each row's own prefix, and steps on it equal the full forward."""

from __future__ import annotations

import pytest
import torch

from algorithms import ioi, ioi_models
from algorithms import ioi_data as data
from causalab.errors import ConfigError
from causalab.neural.lm import random_lm
from causalab.neural.target import Site
from causalab.fit.train import index_inputs, prepare

PLAIN = ("input_ids", "attention_mask", "pos_last", "pos_s2", "pos_io")


def plain(inputs: dict) -> dict:
    """The encoded inputs without anything ``resume_inputs`` cached: the target then runs a hooked full forward."""
    return {k: v for k, v in inputs.items() if k in PLAIN}


def logits_and_grad(lm, inputs, site, h0, weights):
    h = h0.clone().requires_grad_(True)
    out = lm.patched_logits(inputs, site, h)
    (out * weights).sum().backward()
    return out.detach(), h.grad


@pytest.mark.parametrize("arch", ["gpt_neox", "gpt2"])
@pytest.mark.parametrize("position", ["last", "s2", "io"])
def test_a_step_on_the_per_row_cache_equals_the_full_forward(arch, position):
    """Sentences of mixed lengths (right-padded), patched at the last token or earlier and read at the last."""
    task = ioi.ioi_pattern_task()
    lm = random_lm(len(data.VOCAB), arch=arch, size="tiny", seed=0, tokenizer=ioi_models.tokenizer())
    site = Site(1, position)
    pairs = prepare(lm, site, task, task.counterfactuals(40, torch.Generator().manual_seed(1)))
    cached = pairs.base_inputs
    read, patched = cached["pos_last"], cached[f"pos_{position}"]
    assert len(set(read.tolist())) > 1  # mixed read positions
    starts = torch.minimum(read, patched)
    assert torch.equal(cached["stream_start_1"], starts)
    assert cached["stream_1"].shape[1] == int((read - starts).max()) + 1  # the window: the row's own start to its read
    assert cached["kv_1"]["keys_0"].shape[2] == int(starts.max())
    # the base hidden states read from the window equal a forward pass's
    assert torch.allclose(pairs.h_base, lm.hidden(plain(cached), site), atol=1e-6, rtol=0)
    g = torch.Generator().manual_seed(2)
    idx = torch.randperm(len(pairs), generator=g)[:17]
    h0 = pairs.h_sources["pattern"][idx] + 0.1 * torch.randn(17, lm.hidden_width, generator=g)
    weights = torch.randn(17, len(data.VOCAB), generator=g)
    fast = logits_and_grad(lm, index_inputs(cached, idx), site, h0, weights)
    ref = logits_and_grad(lm, plain(index_inputs(cached, idx)), site, h0, weights)
    assert torch.allclose(fast[0], ref[0], atol=1e-5, rtol=0), (fast[0] - ref[0]).abs().max()
    assert torch.allclose(fast[1], ref[1], atol=1e-5, rtol=0), (fast[1] - ref[1]).abs().max()


def test_half_precision_cache_halves_its_bytes_and_stays_close(monkeypatch):
    task = ioi.ioi_pattern_task()
    lm = random_lm(len(data.VOCAB), arch="gpt_neox", size="tiny", seed=0, tokenizer=ioi_models.tokenizer())
    site = Site(1, "last")
    d = task.counterfactuals(32, torch.Generator().manual_seed(3))
    full = prepare(lm, site, task, d).base_inputs
    monkeypatch.setenv("CAUSALAB_KV_CACHE_DTYPE", "float16")
    half = prepare(lm, site, task, d).base_inputs
    assert half["kv_1"]["keys_0"].dtype == torch.float16 and full["kv_1"]["keys_0"].dtype == torch.float32
    assert half["stream_1"].dtype == torch.float32  # the patched stream itself stays exact
    assert torch.allclose(half["kv_1"]["keys_0"].float(), full["kv_1"]["keys_0"], atol=1e-3, rtol=1e-2)
    h = torch.randn(32, lm.hidden_width, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        a, b = lm.patched_logits(full, site, h), lm.patched_logits(half, site, h)
    assert a.dtype == b.dtype == torch.float32
    assert 0 < (a - b).abs().max() < 1e-2
    monkeypatch.setenv("CAUSALAB_KV_CACHE_DTYPE", "int8")
    with pytest.raises(ConfigError, match="CAUSALAB_KV_CACHE_DTYPE must be one of float32, float16, bfloat16"):
        prepare(lm, site, task, d)
