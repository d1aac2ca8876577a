"""Every language-model family at every site, on the fast resume path, at random init and from a saved folder.

References are independent of the code under test: Hugging Face's own full forward pass, with a
forward hook this file registers itself, read at each row's last real token.
"""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from algorithms import ioi_data as data  # noqa: E402
from algorithms import ioi_models  # noqa: E402
from causalab import FitConfig, Partition, Site, fit_alignment, make_alignment, prepare  # noqa: E402
from causalab.errors import ArchitectureError, ConfigError, ConfigFieldError  # noqa: E402
from causalab.experiments import ExperimentConfig  # noqa: E402
from causalab.experiments.validate import validate  # noqa: E402
from causalab.neural.architectures import norm_placement  # noqa: E402
from causalab.neural.lm import LLAMA_LIKE, SIZES, LMTarget, from_pretrained, lm_config, random_lm  # noqa: E402
from causalab.neural.resume import hooked_logits, residual_stream, resume_logits  # noqa: E402

torch.set_num_threads(1)
V = len(data.VOCAB)
FAMILIES = tuple(LLAMA_LIKE)
# Gemma 3's two layers of different types: both rotary tables (local and global bases) are exercised;
# Gemma 2's soft-capping tight enough to bend the scores and logits of a random model
OVERRIDES = {"gemma3": {"layer_types": ["sliding_attention", "full_attention"]},
             "gemma2": {"attn_logit_softcapping": 0.5, "final_logit_softcapping": 0.5}}


def family_lm(arch: str, **kw) -> LMTarget:
    return random_lm(V, arch=arch, size="tiny", seed=0, tokenizer=ioi_models.tokenizer(), **{**OVERRIDES.get(arch, {}), **kw})


@pytest.fixture(scope="module", params=FAMILIES)
def target(request):
    return family_lm(request.param)


@pytest.fixture(scope="module")
def inputs():
    """IOI sentences of mixed lengths, right-padded: each row's last real token is its own."""
    x = data.token_ids(data.sample_sentences(10, torch.Generator().manual_seed(3)))
    assert len(set(x["pos_last"].tolist())) > 1
    return x


def reference(target: LMTarget, inputs, module: torch.nn.Module, pos: torch.Tensor, value: torch.Tensor | None,
              pre: bool = False, heads: tuple[int, ...] = ()) -> torch.Tensor:
    """Logits at each row's last token from the model's own forward, with ``module``'s output (or input) at
    ``pos`` replaced by ``value`` (for heads: those heads' slices of the output projection's input)."""
    rows = torch.arange(len(pos))

    def put(x):
        x = x.clone()
        if heads:
            hd = target.layout().head_width
            for i, head in enumerate(heads):
                x[rows, pos, head * hd : (head + 1) * hd] = value[:, i * hd : (i + 1) * hd]
        else:
            x[rows, pos] = value
        return x

    if pre:
        handle = module.register_forward_pre_hook(lambda m, args: (put(args[0]), *args[1:]))
    else:
        handle = module.register_forward_hook(
            lambda m, args, out: (put(out[0]), *out[1:]) if isinstance(out, tuple) else put(out))
    try:
        with torch.no_grad():
            logits = target.model(input_ids=inputs["input_ids"]).logits
    finally:
        handle.remove()
    return logits[rows, inputs["pos_last"]]


# --- the adapter table: measured, and the path each family takes -------------------------------


def test_layout_is_measured_and_every_family_takes_the_fast_path(target):
    layout = target.layout()
    cfg = target.model.config
    assert target.path == layout.path == "resume"
    assert (layout.layers, layout.width, layout.heads, layout.head_width) == (2, 32, 4, 8)
    assert layout.key_value_heads == cfg.num_key_value_heads  # grouped-query attention, read from k_proj
    assert (layout.blocks, layout.attention, layout.mlp, layout.output_projection) == ("model.layers", "self_attn", "mlp",
                                                                                       "o_proj")
    assert layout.final_norm == "model.norm" and layout.unembedding == "lm_head"
    assert layout.positions.startswith("rotary")
    expected = {"olmo2": "post", "gemma2": "sandwich", "gemma3_text": "sandwich"}.get(cfg.model_type, "pre")
    assert norm_placement(target.blocks[0]) == expected


def test_grouped_query_attention_is_on_where_the_family_has_it():
    for arch, (_, group) in LLAMA_LIKE.items():
        cfg = lm_config(arch, "tiny", vocab_size=V)
        assert cfg.num_attention_heads == 4 and cfg.num_key_value_heads == 4 // group, arch


# --- every site, named and indexed positions, against the model's own forward ------------------


@pytest.mark.parametrize("position", ["last", "s2", "io", 3])
def test_every_site_patches_as_the_models_own_forward(target, inputs, position):
    gen = torch.Generator().manual_seed(1)
    pos = target.token_positions(inputs, position)
    parts = target.parts()
    block = target.blocks[0]
    modules = {"block_output": (block, False, ()), "attention_output": (parts.attention[0], False, ()),
               "mlp_output": (parts.mlp[0], False, ()), "heads:1,3": (parts.projections()[0], True, (1, 3))}
    for component, (module, pre, heads) in modules.items():
        site = Site(1, position, component)
        h = target.hidden(inputs, site)
        assert h.shape == (10, target.width(site))
        v = torch.randn(h.shape, generator=gen)
        want = reference(target, inputs, module, pos, v, pre=pre, heads=heads)
        got = target.patched_logits(inputs, site, v)
        assert (got - want).abs().max() < 1e-5, (component, position)
        # the site's own value changes nothing
        assert (target.patched_logits(inputs, site, h) - target.logits(inputs)).abs().max() < 1e-5, component


def test_the_residual_stream_is_the_sum_of_its_parts_with_the_familys_norms(target, inputs):
    read = {c: target.hidden(inputs, Site(2, "last", c)) for c in ("attention_output", "mlp_output", "block_output")}
    before = target.hidden(inputs, Site(1, "last"))
    block = target.blocks[1]
    attn, mlp = read["attention_output"], read["mlp_output"]
    if norm_placement(block) != "pre":  # OLMo 2 and Gemma normalise the sub-layers' outputs before adding them
        attn, mlp = block.post_attention_layernorm(attn), block.post_feedforward_layernorm(mlp)
    assert torch.allclose(before + attn + mlp, read["block_output"], atol=1e-5)


def test_logits_match_the_models_own_including_soft_capping(target, inputs):
    rows = torch.arange(10)
    with torch.no_grad():
        own = target.model(input_ids=inputs["input_ids"]).logits[rows, inputs["pos_last"]]
    assert (target.logits(inputs) - own).abs().max() < 1e-5


# --- the fast path: logits and gradients against the hooked forward ----------------------------


def test_resume_equals_the_hooked_forward_with_padding_and_mixed_read_positions(target):
    model = target.model
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(0, V, (6, 7), generator=g)
    mask = torch.ones(6, 7, dtype=torch.long)
    mask[0, :2] = 0  # left padding in two rows
    mask[3, :1] = 0
    read = torch.tensor([6, 3, 5, 6, 2, 4])
    weights = torch.randn(6, V, generator=g)
    for layer in range(3):
        stream = residual_stream(model, ids, layer, attention_mask=mask)
        for patched in (read, torch.tensor([0, 3, 2, 6, 1, 4])):
            h0 = torch.randn(6, 32, generator=g)
            out = []
            for fn in (resume_logits, None):
                h = h0.clone().requires_grad_(True)
                logits = (resume_logits(model, layer, stream, patched, h, attention_mask=mask, read_positions=read)
                          if fn else hooked_logits(model, layer, ids, patched, h, attention_mask=mask, read_positions=read))
                (logits * weights).sum().backward()
                out.append((logits.detach(), h.grad))
            assert (out[0][0] - out[1][0]).abs().max() < 1e-5, (layer, patched)
            assert (out[0][1] - out[1][1]).abs().max() < 1e-5, (layer, patched)


def test_the_cached_fast_path_of_a_fitting_step_equals_the_hooked_forward(target, inputs):
    """``resume_cache`` (cached keys/values and per-row stream windows) then ``patched_logits``."""
    for position in ("last", "s2"):
        site = Site(1, position)
        cached = target.resume_cache(inputs, site)
        assert cached.kind == "window" and cached.keys_values
        h0 = target.hidden(inputs, site) + torch.randn(10, 32, generator=torch.Generator().manual_seed(4))
        grads, logits = [], []
        for resume in (cached, None):
            h = h0.clone().requires_grad_(True)
            out = target.patched_logits(inputs, site, h, resume=resume)
            out[:, :20].square().sum().backward()
            grads.append(h.grad)
            logits.append(out.detach())
        assert (logits[0] - logits[1]).abs().max() < 1e-5 and (grads[0] - grads[1]).abs().max() < 1e-5, position


def test_a_sliding_window_shorter_than_the_sentence_falls_back_to_the_hooked_forward(inputs):
    lm = family_lm("mistral", sliding_window=4)
    assert lm.layout().sliding_window == 4
    site = Site(1, "last")
    assert lm.resume_cache(inputs, site) is None  # nothing cached: each step runs the hooked forward
    h = lm.hidden(inputs, site) + 1.0
    block = lm.blocks[0]
    want = reference(lm, inputs, block, inputs["pos_last"], h)
    assert (lm.patched_logits(inputs, site, h) - want).abs().max() < 1e-5
    with pytest.raises(ArchitectureError, match="sliding window of 4 positions.*use hooked_logits"):
        residual_stream(lm.model, inputs["input_ids"], 1)


# --- another family: the hooked forward, and it says so ---------------------------------------


def test_a_family_without_an_adapter_runs_hooked_at_every_site(inputs):
    cfg = transformers.Phi3Config(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64,
                                  pad_token_id=None, bos_token_id=None, eos_token_id=None)
    torch.manual_seed(0)
    lm = LMTarget(transformers.AutoModelForCausalLM.from_config(cfg).eval()).freeze()
    assert lm.path == lm.layout().path == "hooked"
    assert lm.layout().key_value_heads == 2 and lm.layout().head_width == 8
    site = Site(1, "last")
    assert lm.resume_cache(inputs, site) is None
    for component in ("block_output", "attention_output", "mlp_output", "heads:0"):
        h = lm.hidden(inputs, Site(1, 2, component))
        assert (lm.patched_logits(inputs, Site(1, 2, component), h) - lm.logits(inputs)).abs().max() < 1e-5


# --- random models of each family, and from_pretrained ----------------------------------------


@pytest.mark.parametrize("arch", FAMILIES)
def test_random_models_at_pythia_like_sizes_use_the_familys_own_init(arch):
    layers, width, heads, ffn = SIZES["14m"]
    lm = random_lm(V, arch=arch, size="14m", seed=3)
    layout = lm.layout()
    assert (layout.layers, layout.width, layout.heads, layout.head_width) == (layers, width, heads, width // heads)
    assert lm.model.config.intermediate_size == ffn
    again = random_lm(V, arch=arch, size="14m", seed=3)
    assert torch.equal(lm.fingerprint(), again.fingerprint())  # seeded
    # transformers' from_config init: N(0, initializer_range) projections
    std = float(lm.blocks[0].self_attn.q_proj.weight.std())
    assert abs(std - lm.model.config.initializer_range) < 0.2 * lm.model.config.initializer_range


@pytest.mark.parametrize("arch", FAMILIES)
def test_from_pretrained_loads_each_family_with_its_tokenizer(arch, tmp_path, inputs):
    lm = family_lm(arch)
    lm.save(tmp_path / arch)
    loaded = from_pretrained(tmp_path / arch)
    assert loaded.path == "resume" and loaded.tokenizer.padding_side == "right"
    assert loaded.tokenizer("Mary", add_special_tokens=False)["input_ids"] == \
        lm.tokenizer("Mary", add_special_tokens=False)["input_ids"]
    assert (loaded.logits(inputs) - lm.logits(inputs)).abs().max() < 1e-6


def test_target_options_name_each_family_and_refuse_others():
    for arch in FAMILIES:
        assert validate(ExperimentConfig(algorithm="ioi_pattern", position="last", intervention_size=4, target="random",
                                         target_options={"size": "tiny", "arch": arch}))
    with pytest.raises(ConfigFieldError, match="unknown LM architecture 'llama2'; valid: .*llama.*gemma3.*mistral"):
        validate(ExperimentConfig(algorithm="ioi_pattern", position="last", intervention_size=4, target="random",
                                  target_options={"size": "tiny", "arch": "llama2"}))
    with pytest.raises(ConfigError, match="unknown LM architecture 'falcon'; known: gpt_neox, gpt2, llama"):
        lm_config("falcon", "tiny", vocab_size=V)


# --- a fit: bfloat16 target, float32 map (CPU here; the same on CUDA below) --------------------


@pytest.mark.parametrize("arch", FAMILIES)
def test_a_bfloat16_model_resumes_in_its_own_dtype(arch):
    model = family_lm(arch, dtype=torch.bfloat16).model  # OLMo 2's rotary tables stay float32 inside it
    ids = torch.randint(0, V, (4, 7), generator=torch.Generator().manual_seed(0))
    h = torch.randn(4, 32)  # a float32 map's output, cast where it is written
    with torch.no_grad():
        fast = resume_logits(model, 1, residual_stream(model, ids, 1), 3, h)
        ref = hooked_logits(model, 1, ids, 3, h)
    assert fast.dtype == torch.bfloat16 and (fast.float() - ref.float()).abs().max() < 1e-2


def _fit(arch: str, device: str) -> tuple[float, torch.dtype]:
    from algorithms import ioi

    task = ioi.ioi_pattern_task()
    g = torch.Generator().manual_seed(0)
    train_d, val_d = task.counterfactuals(64, g), task.counterfactuals(32, g)
    lm = family_lm(arch, dtype=torch.bfloat16).to(device)
    site = Site(1, "last")
    train = prepare(lm, site, task, train_d, device=device)
    val = prepare(lm, site, task, val_d, device=device)
    assert train.resume.kind == "window" and train.resume.keys_values  # the fast path's cache
    torch.manual_seed(0)
    phi = make_alignment("rotation", 32).to(device)
    before = lm.fingerprint()
    fit = fit_alignment(lm, site, phi, Partition.contiguous(task.variables, 8, 32), task, train, val,
                        FitConfig(epochs=2, batch_size=32, lr=1e-2))
    assert fit.steps > 0 and torch.equal(before, lm.fingerprint())
    return fit.best_val_iia, next(phi.parameters()).dtype


@pytest.mark.parametrize("arch", ["llama", "gemma2", "olmo2"])
def test_a_bfloat16_target_fits_a_float32_map(arch):
    iia, dtype = _fit(arch, "cpu")
    assert 0.0 <= iia <= 1.0 and dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("arch", FAMILIES)
def test_a_bfloat16_target_fits_a_float32_map_on_cuda(arch):
    iia, dtype = _fit(arch, "cuda")
    assert 0.0 <= iia <= 1.0 and dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("arch", FAMILIES)
def test_resume_equals_the_hooked_forward_on_cuda(arch):
    lm = family_lm(arch).to("cuda")
    ids = torch.randint(0, V, (4, 7), generator=torch.Generator().manual_seed(0)).cuda()
    stream = residual_stream(lm.model, ids, 1)
    h = torch.randn(4, 32, device="cuda")
    with torch.no_grad():
        fast = resume_logits(lm.model, 1, stream, 3, h)
        ref = hooked_logits(lm.model, 1, ids, 3, h)
    assert fast.device.type == "cuda" and (fast - ref).abs().max() < 1e-4
