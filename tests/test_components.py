"""Sites inside a block (attention output, MLP output, attention heads) against independent identities:
the residual stream is the sum of its parts, the heads are what the output projection mixes, and a
patch of a part equals a patch of the block output shifted by the same amount."""

import pytest
import torch

from algorithms import ioi_data as data
from algorithms import ioi_models
from causalab.errors import ConfigFieldError, SiteError
from causalab.experiments import ExperimentConfig, run_experiment, validate
from causalab.neural.lm import random_lm
from causalab.neural.target import Site

V = len(data.VOCAB)


@pytest.fixture(scope="module", params=["gpt_neox", "gpt2"])
def target(request):
    return random_lm(V, arch=request.param, size="tiny", seed=0, tokenizer=ioi_models.tokenizer())


@pytest.fixture(scope="module")
def inputs():
    return data.token_ids(data.sample_sentences(12, torch.Generator().manual_seed(3)))


def read(target, inputs, layer, component, position="last"):
    return target.hidden(inputs, Site(layer, position, component))


def test_block_output_is_the_stream_plus_attention_plus_mlp(target, inputs):
    # both architectures add the two sub-layers' outputs to the block's input
    layer = 2
    before = read(target, inputs, layer - 1, "block_output")
    total = before + read(target, inputs, layer, "attention_output") + read(target, inputs, layer, "mlp_output")
    assert torch.allclose(total, read(target, inputs, layer, "block_output"), atol=1e-5)


def test_all_heads_through_the_output_projection_give_the_attention_output(target, inputs):
    parts = target.parts()
    heads = ",".join(str(h) for h in range(parts.heads))
    z = read(target, inputs, 1, f"heads:{heads}")
    assert z.shape[1] == parts.heads * parts.head_width == target.width(Site(1, "last", f"heads:{heads}"))
    projected = parts.projections()[0](z)
    assert torch.allclose(projected, read(target, inputs, 1, "attention_output"), atol=1e-5)
    one = read(target, inputs, 1, "heads:1")
    assert torch.equal(one, z[:, parts.head_width : 2 * parts.head_width])


def test_patching_a_part_equals_patching_the_block_output_shifted(target, inputs):
    gen = torch.Generator().manual_seed(0)
    block = read(target, inputs, 1, "block_output")
    mlp = read(target, inputs, 1, "mlp_output")
    v = torch.randn(mlp.shape, generator=gen)
    # the MLP's output is the block's last addition in both architectures
    got = target.patched_logits(inputs, Site(1, "last", "mlp_output"), v)
    want = target.patched_logits(inputs, Site(1, "last"), block - mlp + v)
    assert torch.allclose(got, want, atol=1e-5)
    # heads: patching every head with z is patching the attention output with its projection
    parts = target.parts()
    all_heads = f"heads:{','.join(str(h) for h in range(parts.heads))}"
    z = torch.randn(len(inputs["input_ids"]), parts.heads * parts.head_width, generator=gen)
    got = target.patched_logits(inputs, Site(1, "last", all_heads), z)
    want = target.patched_logits(inputs, Site(1, "last", "attention_output"), parts.projections()[0](z).detach())
    assert torch.allclose(got, want, atol=1e-5)
    # unpatched values leave the logits as they are
    for component in ("attention_output", "mlp_output", "heads:2"):
        h = read(target, inputs, 1, component)
        assert torch.allclose(target.patched_logits(inputs, Site(1, "last", component), h), target.logits(inputs), atol=1e-5)


def test_parallel_residual_attention_patch_is_a_shifted_block_patch(inputs):
    lm = random_lm(V, arch="gpt_neox", size="tiny", seed=1, tokenizer=ioi_models.tokenizer())
    assert lm.model.config.use_parallel_residual  # the MLP reads the block's input, not the attention's output
    attn, block = read(lm, inputs, 1, "attention_output"), read(lm, inputs, 1, "block_output")
    v = torch.randn(attn.shape, generator=torch.Generator().manual_seed(1))
    got = lm.patched_logits(inputs, Site(1, "last", "attention_output"), v)
    assert torch.allclose(got, lm.patched_logits(inputs, Site(1, "last"), block - attn + v), atol=1e-5)


def test_bad_components_are_named(target):
    with pytest.raises(SiteError, match="unknown component 'attn'.*attention_output"):
        target.check_site(Site(1, "last", "attn"))
    with pytest.raises(SiteError, match=r"head\(s\) \[9\] do not exist"):
        target.check_site(Site(1, "last", "heads:9"))
    with pytest.raises(SiteError, match="distinct head indices"):
        target.check_site(Site(1, "last", "heads:1,1"))


def test_a_head_as_the_site_of_an_experiment():
    cfg = ExperimentConfig(algorithm="ioi_pattern", target="random", target_options={"size": "tiny"}, layer=1,
                           position="last", component="heads:0", alignment="rotation", intervention_size=4,
                           n_train=64, n_val=32, n_test=64, epochs=1, batch_size=32)
    result = run_experiment(cfg)
    assert result.width == 8 and 0.0 <= result.test.iia <= 1.0
    assert result.to_record()["config"]["component"] == "heads:0"
    assert ExperimentConfig(**{**cfg.to_dict(), "component": "block_output"}).hash() == \
        ExperimentConfig(**{k: v for k, v in cfg.to_dict().items() if k != "component"}).hash()
    with pytest.raises(ConfigFieldError) as info:
        validate(ExperimentConfig(**{**cfg.to_dict(), "component": "heads:7"}))
    assert info.value.field == "component"
    with pytest.raises(ConfigFieldError) as info:
        validate(ExperimentConfig(target="oracle", component="mlp_output"))
    assert info.value.field == "component"
