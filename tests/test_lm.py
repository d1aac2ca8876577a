"""LM targets: sites, hook vs pyvene patching, loading, training, experiments."""

import pytest
import torch
from torch import nn

from algorithms import ioi, ioi_models
from algorithms import ioi_data as data
from alignments.rotation import RotationMap
from causalab.errors import ConfigError, PartitionError, SiteError
from causalab.experiments import ExperimentConfig, run_experiment
from causalab.maps.alignment import AlignmentMap
from causalab.maps.intervene import Partition, interchange
from causalab.maps.pyvene_export import AlignmentIntervention, pyvene_interchange_logits
from causalab.neural.lm import LMTarget, from_pretrained, lm_config, random_lm
from causalab.neural.resume_cache import ResumeCache
from causalab.neural.target import Site
from causalab.registry import make_task

torch.set_num_threads(1)
V = len(data.VOCAB)


class Coupling(AlignmentMap):
    """A small non-linear invertible map (two additive couplings), for when the RevNet family is absent."""

    def __init__(self, width: int) -> None:
        super().__init__(width)
        torch.manual_seed(1)
        self.k = width // 2
        self.f = nn.Sequential(nn.Linear(width - self.k, 16), nn.Tanh(), nn.Linear(16, self.k))
        self.g = nn.Sequential(nn.Linear(self.k, 16), nn.Tanh(), nn.Linear(16, width - self.k))

    def forward(self, h):
        x1, x2 = h[..., : self.k], h[..., self.k :]
        y1 = x1 + self.f(x2)
        return torch.cat([y1, x2 + self.g(y1)], -1)

    def inverse(self, z):
        y1, y2 = z[..., : self.k], z[..., self.k :]
        x2 = y2 - self.g(y1)
        return torch.cat([y1 - self.f(x2), x2], -1)


@pytest.fixture(scope="module", params=["gpt_neox", "gpt2"])
def target(request):
    return random_lm(V, arch=request.param, size="tiny", seed=0, tokenizer=ioi_models.tokenizer())


def batch(n, seed):
    return data.token_ids(data.sample_sentences(n, torch.Generator().manual_seed(seed)))


def maps(width):
    out = [("rotation", RotationMap(width)), ("coupling", Coupling(width))]
    try:
        from alignments.revnet import RevNetMap  # written in parallel; tested when present
    except ImportError:
        return out
    torch.manual_seed(2)
    return out + [("revnet", RevNetMap(width, blocks=2, hidden=16))]


def test_hidden_and_unpatched_logits(target):
    x = batch(6, 0)
    ref = target.model(input_ids=x["input_ids"], output_hidden_states=True)
    rows = torch.arange(6)
    for layer in (1, 2):
        for pos in ("last", "s2", "io", 3):
            p = x[f"pos_{pos}"] if isinstance(pos, str) else torch.full((6,), pos)
            h = target.hidden(x, Site(layer, pos))
            if layer < 2:  # transformers' last hidden state has the final norm applied; the block output has not
                assert torch.equal(h, ref.hidden_states[layer][rows, p])
            assert (target.patched_logits(x, Site(layer, pos), h) - ref.logits[rows, x["pos_last"]]).abs().max() < 1e-6
    # sites() lists "last" per layer: the other named positions are the task's (IOI's s2, io)
    assert target.width(Site(1, "last")) == 32 and target.sites() == [Site(1, "last"), Site(2, "last")]


@pytest.mark.parametrize("layer,pos", [(1, "last"), (2, "s2"), (1, "io")])
def test_pyvene_alignment_intervention_matches_forward_hook(target, layer, pos):
    """pyvene running the whole interchange == our hook patching interchange(phi, h_base, h_source)."""
    site = Site(layer, pos)
    base, src = batch(8, 1), batch(8, 2)
    d = target.width(site)
    for name, phi in maps(d):
        part = Partition.contiguous(["pattern"], 8, d)
        h = interchange(phi, target.hidden(base, site), {"pattern": target.hidden(src, site)}, part)
        hooked = target.patched_logits(base, site, h, engine="hook")
        via_pyvene = pyvene_interchange_logits(target, site, phi, part, base, {"pattern": src})
        assert (hooked - via_pyvene).abs().max() < 1e-6, name
        replaced = target.patched_logits(base, site, h, engine="pyvene")
        assert (hooked - replaced).abs().max() < 1e-6, name
        changed = (hooked - target.logits(base)).abs().max() > 1e-4
        # above the last block only the patched position itself is read
        assert changed == (layer < target.n_layers or pos == "last"), name


def test_pyvene_path_carries_gradients_to_the_map(target):
    phi = RotationMap(32)
    part = Partition.contiguous(["pattern"], 4, 32)
    pyvene_interchange_logits(target, Site(1, "last"), phi, part, batch(4, 3), {"pattern": batch(4, 4)}).sum().backward()
    assert phi.layer.parametrizations.weight.original.grad.abs().sum() > 0
    assert all(p.grad is None for p in target.model.parameters())


def test_two_variables_through_pyvene(target):
    phi = Coupling(32)
    part = Partition({"a": range(0, 6), "b": range(10, 16)}, 32)
    site, base, s1, s2 = Site(1, "last"), batch(5, 5), batch(5, 6), batch(5, 7)
    h = interchange(phi, target.hidden(base, site), {"a": target.hidden(s1, site), "b": target.hidden(s2, site)}, part)
    hooked = target.patched_logits(base, site, h)
    assert (hooked - pyvene_interchange_logits(target, site, phi, part, base, {"a": s1, "b": s2})).abs().max() < 1e-5


def test_site_validation(target):
    x = batch(2, 0)
    with pytest.raises(SiteError, match="layers 1..2"):
        target.check_site(Site(3, "last"))
    with pytest.raises(SiteError, match="out of range"):
        target.hidden(x, Site(0, "last"))
    # a named position is the inputs' to mark: the LM takes the name, the inputs (or the task) refuse it
    assert target.check_site(Site(1, "verb")) == Site(1, "verb")
    with pytest.raises(SiteError, match=r"no positions for 'verb' \(expected a key 'pos_verb'\); they mark: last, s2, io") \
            as info:
        target.hidden(x, Site(1, "verb"))
    assert info.value.part == "position"
    with pytest.raises(SiteError, match="'ioi_pattern' marks no token position 'verb'"):
        make_task("ioi_pattern").check_position("verb")
    with pytest.raises(SiteError, match="neither a name"):
        target.check_site(Site(1, "the verb"))
    with pytest.raises(SiteError, match="names no token position"):
        target.check_site(Site(1))
    with pytest.raises(SiteError, match="negative"):
        target.check_site(Site(1, -1))
    with pytest.raises(SiteError, match="beyond the sequence length"):
        target.hidden(x, Site(1, 99))
    with pytest.raises(SiteError, match="component"):
        target.check_site(Site(1, "last", component="attention_out"))
    with pytest.raises(SiteError, match="pos_s2"):
        target.hidden(x["input_ids"], Site(1, "s2"))  # bare token ids carry no named positions
    with pytest.raises(PartitionError, match="nope"):
        AlignmentIntervention(RotationMap(32), Partition.contiguous(["pattern"], 4, 32), "nope")


def test_configs_and_errors():
    for size, (layers, width) in {"14m": (6, 128), "70m": (6, 512), "160m": (12, 768)}.items():
        c = lm_config("gpt_neox", size, vocab_size=V)
        assert (c.num_hidden_layers, c.hidden_size) == (layers, width)
        g = lm_config("gpt2", size, vocab_size=V)
        assert (g.n_layer, g.n_embd) == (layers, width)
    with pytest.raises(ConfigError, match="unknown LM size"):
        lm_config("gpt_neox", "7b", vocab_size=V)
    with pytest.raises(ConfigError, match="unknown LM architecture"):
        lm_config("mamba", "14m", vocab_size=V)
    with pytest.raises(ConfigError, match="engine"):
        random_lm(V, size="tiny", engine="nnsight")


def test_hub_path_round_trip(tmp_path, target):
    target.save(tmp_path / "m")
    loaded = from_pretrained(tmp_path / "m", revision=None)
    x = batch(4, 9)
    assert isinstance(loaded, LMTarget) and loaded.tokenizer is not None
    assert torch.equal(loaded.logits(x), target.logits(x))
    text = data.render(data.sample_sentences(3, torch.Generator().manual_seed(1)))
    assert loaded.tokenizer(text)["input_ids"] == target.tokenizer(text)["input_ids"]
    with pytest.raises(ConfigError, match="cannot load"):
        from_pretrained(tmp_path / "missing")


def test_experiment_on_pretrained_folder_and_engines_agree(tmp_path):
    random_lm(V, size="tiny", seed=3, tokenizer=ioi_models.tokenizer()).save(tmp_path / "m")
    results = []
    for engine in ("hook", "pyvene"):
        cfg = ExperimentConfig(
            algorithm="ioi_pattern", alignment="rotation", target="pretrained", layer=1, position="last",
            intervention_size=4, n_train=64, n_val=32, n_test=64, epochs=1, batch_size=32,
            target_options={"path": str(tmp_path / "m"), "engine": engine},
        )
        results.append(run_experiment(cfg))
    assert results[0].test.iia == results[1].test.iia
    assert results[0].train_iia == results[1].train_iia


def test_tiny_lm_learns_ioi_quickly(tmp_path):
    """A short run of the training recipe: checkpoints saved and loadable, accuracy far above step 0."""
    report = ioi_models.train_ioi_lm(0, cache=tmp_path, steps=800, checkpoints=(0, 200), eval_every=100,
                              target_accuracy=0.95)  # stops at the first evaluation past 95%
    folder = ioi_models.trained_lm_dir(0, tmp_path)
    assert report["checkpoints"] == [0, 200] and (folder / "final" / "model.safetensors").exists()
    step0 = ioi_models.build_target("trained", 0, step=0, cache=tmp_path)
    final = ioi_models.build_target("trained", 0, cache=tmp_path)
    assert report["accuracy"] >= 0.95 and report["steps"] < 800
    assert ioi_models.ioi_accuracy(final, n=500) >= 0.9 > ioi_models.ioi_accuracy(step0, n=500) + 0.2
    with pytest.raises(ConfigError, match="available"):
        ioi_models.build_target("trained", 0, step=7, cache=tmp_path)


@pytest.mark.parametrize("arch", ["gpt_neox", "gpt2"])
def test_resume_from_the_cached_stream_matches_the_full_forward(arch):
    """prepare() caches the residual stream; patched logits and IIA equal the hooked full forward."""
    from causalab.fit.fitting import evaluate, prepare

    task = ioi.ioi_pattern_task()
    lm = random_lm(len(data.VOCAB), arch=arch, size="tiny", seed=0, tokenizer=ioi_models.tokenizer())
    site = Site(1, "last")
    pairs = prepare(lm, site, task, task.counterfactuals(96, torch.Generator().manual_seed(0)))
    cache = pairs.resume
    assert cache.kind == "window" and cache.layer == site.layer and cache.keys_values
    assert not any(k.startswith(("stream", "kv")) for k in pairs.base_inputs)  # the inputs stay the task's encoding
    stream_only = ResumeCache(cache.layer, cache.stream, cache.starts)
    # the base hidden states read from the cached stream equal a forward pass's
    assert torch.equal(pairs.h_base, lm.hidden(pairs.base_inputs, site))
    torch.manual_seed(0)
    phi = RotationMap(lm.width(site))
    part = Partition({"pattern": range(8)}, lm.width(site))
    h = interchange(phi, pairs.h_base, pairs.h_sources, part)
    with torch.no_grad():
        fast, slow = lm.patched_logits(pairs.base_inputs, site, h, resume=cache), lm.patched_logits(pairs.base_inputs, site, h)
        no_kv = lm.patched_logits(pairs.base_inputs, site, h, resume=stream_only)
        other_layer = lm.patched_logits(pairs.base_inputs, Site(2, "last"), h, resume=cache)  # not this cache's site
    assert torch.allclose(fast, slow, atol=1e-5)
    assert torch.allclose(fast, no_kv, atol=1e-5)
    assert torch.allclose(other_layer, lm.patched_logits(pairs.base_inputs, Site(2, "last"), h), atol=0, rtol=0)
    resumed = evaluate(lm, site, phi, part, task, pairs)
    pairs.resume = None
    assert evaluate(lm, site, phi, part, task, pairs).overall.correct == resumed.overall.correct


def test_trained_model_sizes_keep_separate_folders(tmp_path):
    """A trained model of another size gets its own folder; target_options size selects it; unknown sizes fail."""
    report = ioi_models.train_ioi_lm(0, cache=tmp_path, size="tiny", steps=6, checkpoints=(0, 3), eval_every=3)
    assert report["checkpoints"] == [0, 3]
    tiny, default = ioi_models.trained_lm_dir(0, tmp_path, "tiny"), ioi_models.trained_lm_dir(0, tmp_path)
    assert tiny != default and "tiny" in tiny.name and (tiny / "step3").exists() and not default.exists()
    lm = ioi_models.build_target("trained", 0, size="tiny", step=3, cache=tmp_path)
    assert lm.hidden_width == 32 and lm.n_layers == 2
    with pytest.raises(ConfigError, match="unknown LM size '7b'"):
        ioi_models.build_target("trained", 0, size="7b", cache=tmp_path)
    assert ioi_models.TRAIN_RECIPE["size"] == "small" and "4x128" in ioi_models.TRAIN_RECIPES


def test_key_value_cache_respects_its_budget(monkeypatch):
    """CAUSALAB_KV_CACHE_MB bounds the per-dataset key/value cache; 0 turns it off; nonsense is refused."""
    from causalab.fit.fitting import prepare

    task = ioi.ioi_pattern_task()
    lm = random_lm(len(data.VOCAB), arch="gpt_neox", size="tiny", seed=0, tokenizer=ioi_models.tokenizer())
    site = Site(1, "last")
    d = task.counterfactuals(32, torch.Generator().manual_seed(0))
    pairs = prepare(lm, site, task, d)
    kv = pairs.resume.keys_values
    last = pairs.base_inputs["pos_last"]
    # every row's own prefix: up to the latest last token of the dataset, a one-position window after it
    assert set(kv) == {"keys_0", "values_0"}  # one tensor per upper block and kind
    assert kv["keys_0"].shape == (32, 4, int(last.max()), lm.hidden_width // 4)
    assert pairs.resume.stream.shape == (32, 1, lm.hidden_width)
    assert torch.equal(pairs.resume.starts, last)
    in_parts = lm.resume_cache(pairs.base_inputs, site, batch_size=5)  # the per-row tier in uneven parts: the same
    assert torch.allclose(in_parts.stream, pairs.resume.stream, atol=1e-6, rtol=0)
    assert all(torch.allclose(in_parts.keys_values[k], kv[k], atol=1e-6, rtol=0) for k in kv)
    stream_mb = pairs.base_inputs["input_ids"].numel() * lm.hidden_width * 4 / 2**20
    monkeypatch.setenv("CAUSALAB_KV_CACHE_MB", str(stream_mb * 1.01))  # the whole stream fits, the row cache does not
    uncached = prepare(lm, site, task, d).resume
    assert uncached.kind == "stream" and not uncached.keys_values and uncached.starts is None
    assert uncached.stream.shape == (*pairs.base_inputs["input_ids"].shape, lm.hidden_width)  # the whole stream
    # filled in place a few rows at a time (uneven last part): the stream itself, every row
    from causalab.neural.resume import residual_stream

    in_parts = lm.resume_cache(pairs.base_inputs, site, batch_size=5)
    with torch.no_grad():
        whole = residual_stream(lm.model, pairs.base_inputs["input_ids"], 1)
    assert torch.allclose(in_parts.stream, whole, atol=1e-6, rtol=0)
    monkeypatch.setenv("CAUSALAB_KV_CACHE_MB", "0")  # nothing fits: the stream is recomputed each step
    bare = prepare(lm, site, task, d)
    assert bare.resume.kind == "recompute" and bare.resume.stream is None and not bare.resume.keys_values
    h = torch.randn(32, lm.hidden_width, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(bare.base_logits(lm, site, slice(None), h), pairs.base_logits(lm, site, slice(None), h),
                              atol=1e-5, rtol=0)
    monkeypatch.setenv("CAUSALAB_KV_CACHE_MB", "lots")
    with pytest.raises(ConfigError, match="CAUSALAB_KV_CACHE_MB must be a number"):
        prepare(lm, site, task, d)
    # the top layer has no block above it: nothing to cache
    monkeypatch.delenv("CAUSALAB_KV_CACHE_MB")
    top = prepare(lm, Site(2, "last"), task, d).resume
    assert top.layer == 2 and not top.keys_values


def test_left_padded_inputs_are_refused_by_name():
    """LM targets read the last real token and run without the mask: padding must be on the right."""
    lm = random_lm(len(data.VOCAB), arch="gpt_neox", size="tiny", seed=0)
    ids = torch.randint(1, len(data.VOCAB), (3, 6), generator=torch.Generator().manual_seed(0))
    right = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] * 5 + [0]])
    site = Site(1, "last")
    assert lm.token_positions({"input_ids": ids, "attention_mask": right}, "last").tolist() == [5, 3, 4]
    assert lm.hidden({"input_ids": ids, "attention_mask": right}, site).shape == (3, lm.hidden_width)
    left = right.flip(1)
    for call in (lambda x: lm.hidden(x, site), lm.logits, lambda x: lm.resume_cache(x, site)):
        with pytest.raises(ConfigError, match="row 1 of the attention mask has padding before a real token"):
            call({"input_ids": ids, "attention_mask": left})


def test_pythia_initialisation_matches_the_gpt_neox_library():
    from causalab.neural.pythia_init import small_init_std, wang_init_std

    lm = random_lm(V, size="31m", seed=0, init="pythia")
    params = dict(lm.model.named_parameters())
    d, layers = 256, 6
    for name, std in (("gpt_neox.layers.0.attention.query_key_value.weight", small_init_std(d)),
                      ("gpt_neox.layers.3.mlp.dense_h_to_4h.weight", small_init_std(d)),
                      ("gpt_neox.embed_in.weight", small_init_std(d)),
                      ("gpt_neox.layers.0.attention.dense.weight", wang_init_std(d, layers)),
                      ("gpt_neox.layers.5.mlp.dense_4h_to_h.weight", wang_init_std(d, layers))):
        assert abs(params[name].std().item() - std) < 0.03 * std, name
    assert not params["gpt_neox.layers.0.attention.dense.bias"].any()
    assert torch.equal(params["gpt_neox.layers.0.input_layernorm.weight"], torch.ones(d))
    again = random_lm(V, size="31m", seed=0, init="pythia")
    assert all(torch.equal(p, q) for p, q in zip(lm.model.parameters(), again.model.parameters()))
    hf = random_lm(V, size="31m", seed=0)
    assert abs(dict(hf.model.named_parameters())["gpt_neox.layers.0.attention.dense.weight"].std().item() - 0.02) < 1e-3
    with pytest.raises(ConfigError, match="unknown init 'xavier'"):
        random_lm(V, size="tiny", init="xavier")


def test_compiled_resume_runs_the_same_experiment_and_is_recorded(tmp_path, monkeypatch):
    """CAUSALAB_COMPILE=1 end to end: the same test IIA as the eager blocks, the same hash, and the setting recorded;
    the compiled blocks are the target's own."""
    random_lm(V, size="tiny", seed=4, tokenizer=ioi_models.tokenizer()).save(tmp_path / "m")
    cfg = ExperimentConfig(
        algorithm="ioi_pattern", alignment="revnet:blocks=1,hidden=8", target="pretrained", layer=1, position="last",
        intervention_size=4, n_train=64, n_val=32, n_test=64, epochs=2, batch_size=32,
        target_options={"path": str(tmp_path / "m")},
    )
    monkeypatch.delenv("CAUSALAB_COMPILE", raising=False)
    eager = run_experiment(cfg).to_record()
    monkeypatch.setenv("CAUSALAB_COMPILE", "1")
    compiled = run_experiment(cfg).to_record()
    assert compiled["runtime"]["compile"] is True and eager["runtime"]["compile"] is False
    assert compiled["hash"] == eager["hash"]
    assert compiled["iia"] == pytest.approx(eager["iia"], abs=2 / 64)  # float32 rounding may flip a row
    assert compiled["history"][-1]["val_loss"] == pytest.approx(eager["history"][-1]["val_loss"], abs=1e-4)
