"""A fitted causalab map, exported to pyvene, scores the same IIA in the user's own IntervenableModel."""

import pytest
import torch

import causalab as cl
from causalab.errors import ArchitectureError, PartitionError, SiteError
from causalab.fit.metrics import iia_from_correct
from causalab.neural.pyvene_engine import pv

torch.set_num_threads(1)


def pyvene_run(target, site, task, data, phi, partition):
    """IIA and logits of ``data``'s interchanges run by pyvene itself: one exported intervention per variable."""
    variables = list(data.sources)
    representations = [cl.pyvene_representation(target, site, cl.to_pyvene(phi, partition, v)) for v in variables]
    model = pv.IntervenableModel(pv.IntervenableConfig(representations=representations), model=cl.pyvene_module(target))
    base = task.encode(data.base)
    sources = [task.encode(data.sources[v]) for v in variables]
    if isinstance(base, dict):  # a language model: token ids in, logits at every position out
        ids = {"input_ids": base["input_ids"]}, [{"input_ids": s["input_ids"]} for s in sources]
    else:  # an MLP target takes {"inputs": x}
        ids = {"inputs": base}, [{"inputs": s} for s in sources]
    with torch.no_grad():
        _, out = model(ids[0], sources=ids[1], unit_locations=cl.pyvene_unit_locations(target, site, base, sources))
    logits = getattr(out, "logits", out)
    if logits.dim() == 3:
        last = target.token_positions(base, "last")
        logits = logits[torch.arange(len(last)), last]
    correct = task.correct(logits, task.labels(data))
    return iia_from_correct(correct, data.set_index, data.intervention_sets), logits


def causalab_logits(target, site, task, data, phi, partition):
    pairs = cl.prepare(target, site, task, data)
    with torch.no_grad():
        h = cl.interchange(phi, pairs.h_base, pairs.h_sources, partition, pairs.intervened())
        return pairs.base_logits(target, site, slice(None), h), pairs


def check_same_iia(target, site, task, data, phi, partition, atol):
    logits, pairs = causalab_logits(target, site, task, data, phi, partition)
    ours = cl.evaluate(target, site, phi, partition, task, pairs)
    theirs, pv_logits = pyvene_run(target, site, task, data, phi, partition)
    assert (pv_logits - logits).abs().max() <= atol * max(1.0, float(logits.abs().max()))  # float32, relative to scale
    assert theirs.iia == ours.iia
    assert theirs.to_dict()["per_set"] == ours.to_dict()["per_set"]
    unpatched = target.logits(task.encode(data.base))
    assert (logits - unpatched).abs().max() > 1e-3  # the interchange did change the network's output
    return ours.iia


@pytest.fixture(scope="module")
def equality():
    task = cl.make_task("both_equality_relations")
    data = task.counterfactuals(1500, torch.Generator().manual_seed(0))
    return task, data.split([1000, 500])


@pytest.mark.parametrize("spec", ["rotation", "revnet:blocks=2,hidden=16"])
def test_mlp_pyvene_iia_equals_causalab(equality, spec):
    task, (train_d, test_d) = equality
    target, site = cl.build_target(task, "oracle", 0), cl.Site(1)
    torch.manual_seed(0)
    phi = cl.make_alignment(spec, 16)
    partition = cl.Partition.contiguous(task.variables, 8, 16)
    train = cl.prepare(target, site, task, train_d)
    cl.fit_alignment(target, site, phi, partition, task, train, train, cl.FitConfig(epochs=2, batch_size=100))
    iia = check_same_iia(target, site, task, test_d, phi, partition, atol=1e-5)
    assert 0.55 < iia  # a fitted map, away from chance: rows of both outcomes are compared


@pytest.mark.parametrize("spec,position,arch", [
    ("rotation", "s2", "gpt_neox"), ("revnet:blocks=2,hidden=16", "last", "gpt_neox"), ("rotation", "io", "gpt2"),
])
def test_lm_pyvene_iia_equals_causalab(spec, position, arch):
    task = cl.make_task("ioi_pattern")
    target = cl.build_target(task, "random", 0, size="tiny", arch=arch)
    site = cl.Site(1, position)
    data = task.counterfactuals(48, torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    phi = cl.make_alignment(spec, target.width(site))
    partition = cl.Partition.contiguous(task.variables, 8, target.width(site))
    check_same_iia(target, site, task, data, phi, partition, atol=1e-5)


def test_a_reloaded_map_exports_the_same_intervention(tmp_path, equality):
    task, (_, test_d) = equality
    target, site = cl.build_target(task, "oracle", 0), cl.Site(1)
    torch.manual_seed(3)
    phi = cl.make_alignment("glow:layers=2,hidden=8", 16)
    partition = cl.Partition.contiguous(task.variables, 8, 16)
    loaded = cl.load_alignment(cl.save_alignment(phi, tmp_path / "glow.safetensors", partition=partition))
    a, la = pyvene_run(target, site, task, test_d, phi, partition)
    b, lb = pyvene_run(target, site, task, test_d, loaded.map, loaded.partition)
    assert torch.equal(la, lb) and a.iia == b.iia


def test_export_errors_name_the_problem():
    task = cl.make_task("both_equality_relations")
    target = cl.build_target(task, "oracle", 0)
    phi = cl.make_alignment("rotation:rank=4", 16)
    with pytest.raises(PartitionError, match="no block for variable 'V3'"):
        cl.to_pyvene(phi, cl.Partition.contiguous(["V1", "V2"], 2, 16), "V3")
    with pytest.raises(PartitionError, match="only learns coordinates 0..3"):
        cl.to_pyvene(phi, cl.Partition.contiguous(["V1", "V2"], 4, 16), "V2")
    with pytest.raises(cl.CausalabError, match="MLP has hidden layers 1..3"):
        cl.pyvene_representation(target, cl.Site(4), None)
    with pytest.raises(ArchitectureError, match="takes a causalab Target"):
        cl.pyvene_module(torch.nn.Linear(2, 2))
    lm = cl.build_target(cl.make_task("ioi_pattern"), "random", 0, size="tiny")
    with pytest.raises(SiteError, match="block outputs.*'attention_output' run on causalab's hook engine"):
        cl.pyvene_representation(lm, cl.Site(1, "last", "attention_output"), None)
