"""The compile runtime setting (torch.compile of the resumed blocks) on every Llama-like family: the same logits and
gradients as the eager fast path. GPT-NeoX and GPT-2 are checked in tests/test_resume.py."""

import pytest
import torch

from causalab.neural.lm import random_lm
from causalab.neural.target import Site
from causalab.runtime import RuntimeSettings

torch.set_num_threads(1)
V = 50


@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3", "olmo2", "mistral", "gemma2", "gemma3"])
def test_compiled_resume_equals_the_eager_fast_path(arch):
    lm = random_lm(V, arch=arch, size="tiny", seed=0)
    g = torch.Generator().manual_seed(0)
    inputs = {"input_ids": torch.randint(3, V, (4, 7), generator=g), "pos_last": torch.tensor([6, 5, 6, 4])}
    site = Site(1, "last")
    h = (lm.hidden(inputs, site) + torch.randn(4, lm.width(site), generator=g)).requires_grad_(True)
    eager = lm.resume_cache(inputs, site, runtime=RuntimeSettings())
    compiled = lm.resume_cache(inputs, site, runtime=RuntimeSettings(compile=True))
    assert compiled is not None and compiled.compile and not eager.compile
    want = lm.patched_logits(inputs, site, h, resume=eager)
    got = lm.patched_logits(inputs, site, h, resume=compiled)
    (grad_want,) = torch.autograd.grad(want.square().sum(), h)
    (grad_got,) = torch.autograd.grad(got.square().sum(), h)
    assert (got - want).abs().max() < 1e-5 and (grad_got - grad_want).abs().max() < 1e-5
    assert not torch.allclose(want, lm.logits(inputs), atol=1e-4)  # the patch mattered
