"""End to end on hierarchical equality: the oracle network, trained and random MLPs, fitting guards."""

import pytest
import torch

import causalab as cl
from algorithms.hierarchical_equality import oracle_mlp
from causalab.errors import ConfigError, FitError, SiteError


def oracle_pairs(n_train, n_val):
    """The oracle network at layer 1, with prepared fitting and validation pairs."""
    task = cl.make_task("both_equality_relations")
    target, site = oracle_mlp(), cl.Site(1)
    data = task.counterfactuals(n_train + n_val, torch.Generator().manual_seed(0))
    tr, va = data.split([n_train, n_val])
    return task, target, site, cl.prepare(target, site, task, tr), cl.prepare(target, site, task, va)


def small(**kw):
    base = dict(n_train=6_000, n_val=1_000, n_test=2_000, epochs=12)
    base.update(kw)
    return cl.ExperimentConfig(**base)


def test_oracle_computes_the_task():
    task = cl.make_task("both_equality_relations")
    x, y = task.factual(50_000, torch.Generator().manual_seed(0))
    assert (oracle_mlp().logits(x).argmax(-1) == y).float().mean().item() == 1.0


def test_oracle_identity_on_the_right_blocks_scores_one():
    res = cl.run_experiment(small(alignment="identity", target="oracle"))
    assert res.test.iia == 1.0
    assert set(res.test.per_set) == {"V1", "V2", "V1+V2"}
    assert all(s.accuracy == 1.0 for s in res.test.per_set.values())


def test_oracle_identity_on_the_wrong_blocks_does_not():
    wrong = {"V1": list(range(4, 12)), "V2": list(range(12, 16)) + list(range(0, 4))}
    res = cl.run_experiment(small(alignment="identity", target="oracle", partition=wrong))
    assert res.test.iia < 0.8


def test_rotation_fitted_on_the_oracle_reaches_095():
    res = cl.run_experiment(small(alignment="rotation", target="oracle"))
    assert res.test.iia >= 0.95, res.fit.history


def test_trained_mlp_reaches_099_and_round_trips_through_safetensors(tmp_path):
    task = cl.make_task("both_equality_relations")
    model, report = cl.train_mlp(task, seed=0)
    assert report["test_accuracy"] >= 0.99
    model.save(tmp_path / "m.safetensors")
    loaded = cl.MLPTarget.load(tmp_path / "m.safetensors")
    x, _ = task.factual(100, torch.Generator().manual_seed(1))
    assert torch.equal(loaded.logits(x), model.logits(x))
    assert not any(p.requires_grad for p in loaded.parameters())


def test_rotation_beats_chance_on_trained_but_not_on_random():
    trained = cl.run_experiment(small(alignment="rotation", target="trained"))
    random = cl.run_experiment(small(alignment="rotation", target="random"))
    assert trained.test.iia > 0.85
    assert random.test.iia < 0.65


def test_same_config_and_seed_give_the_same_iia():
    a = cl.run_experiment(small(alignment="rotation", target="oracle", epochs=2, seed=3))
    b = cl.run_experiment(small(alignment="rotation", target="oracle", epochs=2, seed=3))
    assert a.test.iia == b.test.iia and a.train_iia == b.train_iia


def test_network_is_frozen_and_checked():
    task, target, site, tr, va = oracle_pairs(500, 100)
    phi = cl.make_alignment("rotation", 16)
    part = cl.Partition.contiguous(task.variables, 8, 16)
    before = [p.clone() for p in target.parameters()]
    cl.fit_alignment(target, site, phi, part, task, tr, va, cl.FitConfig(epochs=2))
    assert all(torch.equal(a, b) for a, b in zip(before, target.parameters()))

    class Sneaky(type(phi)):
        def orthonormal_columns(self):  # changes the network mid-fit
            with torch.no_grad():
                target.net[-1].bias.add_(1.0)
            return super().orthonormal_columns()

    sneaky = Sneaky(16)
    with pytest.raises(FitError, match="weights changed"):
        cl.fit_alignment(target, site, sneaky, part, task, tr, va, cl.FitConfig(epochs=1))


def test_non_finite_loss_stops_with_a_clear_error():
    task, target, site, tr, va = oracle_pairs(200, 100)

    class Exploding(cl.AlignmentMap):
        def __init__(self, width):
            super().__init__(width)
            self.w = torch.nn.Parameter(torch.ones(1))

        def forward(self, h):
            return h * self.w

        def inverse(self, z):
            return z / (self.w - 1.0)  # division by zero: inf/nan

    with pytest.raises(FitError, match="non-finite"):
        cl.fit_alignment(target, site, Exploding(16), cl.Partition({"V1": [0], "V2": [1]}, 16), task, tr, va, cl.FitConfig(epochs=1))


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="target"):
        cl.ExperimentConfig(target="pretend")
    with pytest.raises(ConfigError, match="n_train"):
        cl.ExperimentConfig(n_train=0)
    with pytest.raises(SiteError, match="layer 7"):
        cl.run_experiment(small(target="oracle", layer=7))
    with pytest.raises(ConfigError, match="need 32 coordinates"):
        cl.run_experiment(small(target="oracle", intervention_size=16))


def test_early_stopping_on_validation_loss_restores_the_lowest_loss_map():
    task, target, site, tr, va = oracle_pairs(2_000, 1_000)
    torch.manual_seed(0)
    phi = cl.make_alignment("revnet:blocks=2,hidden=8", 16)
    part = cl.Partition.contiguous(task.variables, 8, 16)
    fit = cl.fit_alignment(target, site, phi, part, task, tr, va,
                           cl.FitConfig(epochs=5, batch_size=500, lr=1e-2, patience=2, min_delta=0.0, monitor="loss"))
    losses = [h["val_loss"] for h in fit.history]
    assert len(losses) == fit.epochs_run + 1 and losses[-1] < losses[0]
    best = min(range(len(losses)), key=losses.__getitem__)
    assert best > 0 and fit.best_val_iia == fit.history[best]["val_iia"]
    # the map left in place is the lowest-loss one
    assert cl.evaluate(target, site, phi, part, task, va, with_loss=True).loss == pytest.approx(losses[best], rel=1e-5)
    with pytest.raises(FitError, match="monitor"):
        cl.FitConfig(monitor="accuracy")
