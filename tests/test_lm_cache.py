"""What ``prepare`` caches for an LM target: each row's own prefix, and steps on it equal the full forward."""

from __future__ import annotations

import pytest
import torch

from algorithms import ioi, ioi_models
from algorithms import ioi_data as data
from causalab.errors import ConfigError
from causalab.fit.fitting import index_inputs, prepare
from causalab.neural.lm import random_lm
from causalab.neural.resume_cache import ResumeCache
from causalab.neural.target import Site


def logits_and_grad(lm, inputs, site, h0, weights, resume=None):
    """Without ``resume`` (nothing cached) the target runs a hooked full forward."""
    h = h0.clone().requires_grad_(True)
    out = lm.patched_logits(inputs, site, h, resume=resume)
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
    inputs, cache = pairs.base_inputs, pairs.resume
    read, patched = inputs["pos_last"], inputs[f"pos_{position}"]
    assert len(set(read.tolist())) > 1  # mixed read positions
    starts = torch.minimum(read, patched)
    assert cache.kind == "window" and torch.equal(cache.starts, starts)
    assert cache.stream.shape[1] == int((read - starts).max()) + 1  # the window: the row's own start to its read
    assert cache.keys_values["keys_0"].shape[2] == int(starts.max())
    # the base hidden states read from the window equal a forward pass's
    assert torch.allclose(pairs.h_base, lm.hidden(inputs, site), atol=1e-6, rtol=0)
    g = torch.Generator().manual_seed(2)
    idx = torch.randperm(len(pairs), generator=g)[:17]
    h0 = pairs.h_sources["pattern"][idx] + 0.1 * torch.randn(17, lm.hidden_width, generator=g)
    weights = torch.randn(17, len(data.VOCAB), generator=g)
    fast = logits_and_grad(lm, index_inputs(inputs, idx), site, h0, weights, cache.rows(idx))
    ref = logits_and_grad(lm, index_inputs(inputs, idx), site, h0, weights)
    assert torch.allclose(fast[0], ref[0], atol=1e-5, rtol=0), (fast[0] - ref[0]).abs().max()
    assert torch.allclose(fast[1], ref[1], atol=1e-5, rtol=0), (fast[1] - ref[1]).abs().max()


def test_half_precision_cache_halves_its_bytes_and_stays_close(monkeypatch):
    task = ioi.ioi_pattern_task()
    lm = random_lm(len(data.VOCAB), arch="gpt_neox", size="tiny", seed=0, tokenizer=ioi_models.tokenizer())
    site = Site(1, "last")
    d = task.counterfactuals(32, torch.Generator().manual_seed(3))
    full = prepare(lm, site, task, d)
    monkeypatch.setenv("CAUSALAB_KV_CACHE_DTYPE", "float16")
    half = prepare(lm, site, task, d)
    keys_half, keys_full = half.resume.keys_values["keys_0"], full.resume.keys_values["keys_0"]
    assert keys_half.dtype == torch.float16 and keys_full.dtype == torch.float32
    assert half.resume.stream.dtype == torch.float32  # the patched stream itself stays exact
    kv_bytes = full.resume.nbytes() - half.resume.nbytes()  # the stream and starts are the same size in both
    assert kv_bytes == sum(t.numel() * 2 for t in half.resume.keys_values.values())  # the cached keys/values halved
    assert torch.allclose(keys_half.float(), keys_full, atol=1e-3, rtol=1e-2)
    h = torch.randn(32, lm.hidden_width, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        a, b = full.base_logits(lm, site, slice(None), h), half.base_logits(lm, site, slice(None), h)
    assert a.dtype == b.dtype == torch.float32
    assert 0 < (a - b).abs().max() < 1e-2
    monkeypatch.setenv("CAUSALAB_KV_CACHE_DTYPE", "int8")
    with pytest.raises(ConfigError, match="CAUSALAB_KV_CACHE_DTYPE must be one of float32, float16, bfloat16"):
        prepare(lm, site, task, d)


def test_the_resume_cache_selects_rows_and_moves_as_one_object():
    g = torch.Generator().manual_seed(0)
    cache = ResumeCache(2, torch.randn(6, 3, 4, generator=g), torch.arange(6),
                        {"keys_0": torch.randn(6, 2, 5, 2, generator=g), "values_0": torch.randn(6, 2, 5, 2, generator=g)})
    assert cache.kind == "window" and cache.serves(2) and not cache.serves(1)
    idx = torch.tensor([4, 0, 4])
    part = cache.rows(idx)
    assert part.layer == 2 and torch.equal(part.starts, torch.tensor([4, 0, 4]))
    assert torch.equal(part.stream, cache.stream[idx]) and torch.equal(part.keys_values["values_0"], cache.keys_values["values_0"][idx])
    assert cache.rows(slice(1, 3)).stream.shape == (2, 3, 4)
    moved = cache.to("cpu")
    assert moved is not cache and torch.equal(moved.stream, cache.stream)
    assert cache.nbytes() == (6 * 3 * 4 + 2 * 6 * 2 * 5 * 2) * 4 + 6 * 8
    assert ResumeCache(1, torch.zeros(2, 7, 4)).kind == "stream" and ResumeCache(1).kind == "recompute"
    assert ResumeCache(1).rows(idx).kind == "recompute"
    with pytest.raises(ValueError, match="starts without a stream"):
        ResumeCache(1, None, torch.arange(2))
    with pytest.raises(ValueError, match="give starts"):
        ResumeCache(1, torch.zeros(2, 7, 4), None, {"keys_0": torch.zeros(2, 1, 1, 1)})
