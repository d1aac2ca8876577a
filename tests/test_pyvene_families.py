"""The pyvene engine (``LMTarget(engine="pyvene")``) on every family ``random_lm`` builds, at every site kind.

The reference is the hook engine as a fit runs it: block outputs through the fast resume path
(the per-row key/value cache of ``resume_cache``), component sites through a hook on the full
forward. Tiny random models (2 layers, width 32); Gemma 2's soft-caps tightened and Gemma 3's two
layer types as in ``tests/test_families.py``.
"""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")
pytest.importorskip("pyvene")

from algorithms import ioi_data as data  # noqa: E402
from causalab.errors import SiteError  # noqa: E402
from causalab.neural.lm import ARCHS, random_lm  # noqa: E402
from causalab.neural.target import Site  # noqa: E402

torch.set_num_threads(1)
V = len(data.VOCAB)
OVERRIDES = {"gemma3": {"layer_types": ["sliding_attention", "full_attention"]},
             "gemma2": {"attn_logit_softcapping": 0.5, "final_logit_softcapping": 0.5}}
COMPONENTS = ("block_output", "attention_output", "mlp_output", "heads:1", "heads:0,3")


def pair(arch: str):
    """The same random model on the hook engine and on the pyvene engine."""
    kw = dict(arch=arch, size="tiny", seed=0, **OVERRIDES.get(arch, {}))
    return random_lm(V, **kw), random_lm(V, engine="pyvene", **kw)


@pytest.fixture(scope="module")
def inputs():
    x = data.token_ids(data.sample_sentences(6, torch.Generator().manual_seed(3)))
    assert len(set(x["pos_last"].tolist())) > 1  # mixed lengths, right-padded
    return x


@pytest.mark.parametrize("arch", ARCHS)
def test_pyvene_engine_patches_every_site_kind_as_the_hook_engine(arch, inputs):
    hook, pyvene = pair(arch)
    assert pyvene.path == "pyvene"
    g = torch.Generator().manual_seed(1)
    for component in COMPONENTS:
        for layer in (1, 2):
            for position in ("last", "s2"):
                site = Site(layer, position, component)
                h = torch.randn(len(inputs["input_ids"]), hook.width(site), generator=g, requires_grad=True)
                cache = hook.resume_cache(inputs, site)  # block outputs: the fast path's cache
                expected = hook.patched_logits(inputs, site, h, resume=cache)
                (grad_expected,) = torch.autograd.grad(expected.square().sum(), h)
                got = pyvene.patched_logits(inputs, site, h)
                (grad_got,) = torch.autograd.grad(got.square().sum(), h)
                assert (got - expected).abs().max() < 1e-5, (arch, str(site))
                assert (grad_got - grad_expected).abs().max() < 1e-5, (arch, str(site))
                if position == "last":  # the patch changed something (at s2, the top block reaches no logit)
                    assert not torch.equal(got, pyvene.logits(inputs)), (arch, str(site))


def test_a_site_pyvene_cannot_name_is_refused_naming_family_site_and_choices(monkeypatch, inputs):
    import causalab.neural.pyvene_engine as engine

    _, pyvene = pair("qwen3")
    site = Site(1, "last", "mlp_output")
    monkeypatch.setattr(engine, "module_path", lambda model, module: None)  # a module outside pyvene's reach
    with pytest.raises(SiteError, match=r"cannot express site .*mlp_output.* on the 'qwen3' family.*block_output.*"
                                        r"engine='hook'"):
        pyvene.patched_logits(inputs, site, torch.zeros(6, pyvene.width(site)))
    assert engine.site_component(pyvene, Site(1, "last"))[0] == "model.layers[0].output"  # block outputs always
