"""Random networks: each family's own initialisation, Pythia's by role on every family, and seeding
that leaves the caller's random stream alone while giving the weights a global seed gave."""

from __future__ import annotations

import types

import pytest
import torch

transformers = pytest.importorskip("transformers")

import causalab as cl  # noqa: E402
from causalab.errors import ConfigError  # noqa: E402
from causalab.neural.lm import ARCHS, lm_config, random_lm  # noqa: E402
from causalab.neural.mlp import MLPTarget, random_mlp, train_mlp  # noqa: E402
from causalab.neural.pythia_init import RESIDUAL_WRITERS, pythia_init_, small_init_std, wang_init_std  # noqa: E402

V = 50


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_building_a_network_leaves_the_global_random_stream_alone(tmp_path):
    from algorithms.ioi_models import train_ioi_lm

    task = cl.make_task("left_equality_relation")
    builds = {
        "random_mlp": lambda: random_mlp(task, 3),
        "train_mlp": lambda: train_mlp(task, 1, samples=512, epoch_size=256, n_test=64),
        "random_lm": lambda: random_lm(V, arch="llama", size="tiny", seed=2),
        "random_lm pythia": lambda: random_lm(V, arch="gpt_neox", size="tiny", seed=2, init="pythia"),
        "train_ioi_lm": lambda: train_ioi_lm(seed=1, cache=tmp_path, steps=2, checkpoints=(0,), eval_every=2),
    }
    torch.manual_seed(1234)
    for name, build in builds.items():
        state = torch.random.get_rng_state()
        build()
        assert torch.equal(torch.random.get_rng_state(), state), name


def test_a_seed_gives_the_weights_a_global_seed_gave_whatever_the_callers_state():
    task = cl.make_task("left_equality_relation")
    torch.manual_seed(0)
    old_mlp = MLPTarget(task.input_width, task.hidden_width or task.input_width, 3, task.n_classes)
    torch.manual_seed(0)
    old_lm = transformers.AutoModelForCausalLM.from_config(lm_config("qwen3", "tiny", vocab_size=V))
    for caller in (7, 8):
        torch.manual_seed(caller)
        assert same_weights(random_mlp(task, 0), old_mlp)
        assert same_weights(random_lm(V, arch="qwen3", size="tiny", seed=0).model, old_lm)


def test_family_is_the_families_own_init_under_its_other_name():
    for arch in ("gemma2", "olmo2"):
        family = random_lm(V, arch=arch, size="tiny", seed=1, init="family").model
        assert same_weights(family, random_lm(V, arch=arch, size="tiny", seed=1).model)
    gemma = random_lm(V, arch="gemma2", size="tiny", seed=1, init="family").model
    assert not gemma.model.layers[0].input_layernorm.weight.any()  # Gemma's norms scale by 1 + weight


@pytest.mark.parametrize("arch", ARCHS)
def test_pythia_init_draws_each_weight_by_its_role_on_every_family(arch):
    lm = random_lm(V, arch=arch, size="small", seed=0, init="pythia").model
    family = random_lm(V, arch=arch, size="small", seed=0).model
    writers = RESIDUAL_WRITERS[lm.config.model_type]
    d, layers = lm.config.hidden_size, lm.config.num_hidden_layers
    seen = {"writer": 0, "other": 0}
    for name, module in lm.named_modules():
        weight = getattr(module, "weight", None)
        if weight is None or weight.dim() != 2:
            continue
        writer = name.rsplit(".", 1)[-1] in writers
        std = wang_init_std(d, layers) if writer else small_init_std(d)
        assert abs(weight.std().item() - std) < 0.06 * std, name
        bias = getattr(module, "bias", None)
        assert bias is None or not bias.any(), name
        seen["writer" if writer else "other"] += 1
    assert seen["writer"] == 2 * layers and seen["other"] > 2 * layers
    norms = {n: p for n, p in family.named_parameters() if p.dim() == 1 and ("norm" in n or ".ln_" in n)}
    params = dict(lm.named_parameters())
    assert norms and all(torch.equal(params[n], p) for n, p in norms.items())  # the family's neutral start
    again = random_lm(V, arch=arch, size="small", seed=0, init="pythia").model
    assert same_weights(lm, again)


def test_pythia_init_names_the_families_it_covers():
    model = torch.nn.Linear(2, 2)
    model.config = types.SimpleNamespace(model_type="opt", hidden_size=2, num_hidden_layers=1)
    with pytest.raises(ConfigError, match=r"defined for the model types gpt_neox, gpt2, llama.*this model is 'opt'"):
        pythia_init_(model)
    with pytest.raises(ConfigError, match="unknown init 'xavier'; valid: transformers, family, pythia"):
        random_lm(V, size="tiny", init="xavier")
