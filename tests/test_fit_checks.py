"""PyTorch's ReduceLROnPlateau as a schedule, and validation every N steps with patience in checks."""

from __future__ import annotations

import copy

import pytest
import torch

import causalab as cl
from causalab.errors import ConfigFieldError, FitError
from causalab.fit.schedule import ReduceOnPlateau
from tests.test_fit_regime import fit, oracle_pairs


def torch_rates(losses, lr, factor, patience):
    """The rate torch's ReduceLROnPlateau sets after each loss of ``losses``."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=factor, patience=patience)
    out = []
    for v in losses:
        sched.step(v)
        out.append(opt.param_groups[0]["lr"])
    return out


def test_reduce_on_plateau_matches_torch_on_a_loss_sequence():
    losses = [1.0, 0.9, 0.9, 0.91, 0.9, 0.8999, 0.5, 0.5, 0.5, 0.5, 0.49999, 0.4, 0.4, 0.4]
    ours = ReduceOnPlateau(factor=0.3, patience=2)
    assert [0.1 * ours.step(v) for v in losses] == pytest.approx(torch_rates(losses, 0.1, 0.3, 2))
    assert ours.reductions == 2


def test_reduce_on_plateau_in_a_fit_matches_torch_fed_the_same_training_losses():
    res, _ = fit(cl.FitConfig(epochs=10, batch_size=250, lr=0.5, patience=10, lr_schedule="reduce_on_plateau",
                              plateau_factor=0.5, plateau_patience=0))
    epochs = res.history[1:]
    expected = torch_rates([h["train_loss"] for h in epochs], 0.5, 0.5, 0)
    # an epoch's steps use the rate set after the previous epoch's loss
    assert [h["lr"] for h in epochs[1:]] == pytest.approx(expected[:-1])
    assert epochs[0]["lr"] == 0.5
    assert min(h["lr"] for h in epochs) < 0.5  # at this rate the toy fit's loss rises once, so the rate falls


def test_reduce_on_plateau_on_the_validation_loss_and_with_warmup():
    res, _ = fit(cl.FitConfig(epochs=6, batch_size=250, lr=5e-2, patience=6, lr_schedule="reduce_on_plateau",
                              plateau_patience=0, plateau_on="val_loss", warmup_steps=2))
    epochs = res.history[1:]
    expected = torch_rates([h["val_loss"] for h in epochs], 5e-2, 0.5, 0)
    assert [h["lr"] for h in epochs[1:]] == pytest.approx(expected[:-1])


def test_checks_every_n_steps_enter_the_history_with_their_step():
    res, _ = fit(cl.FitConfig(epochs=2, batch_size=100, lr=5e-2, patience=50, val_every=3))
    steps = [h["steps"] for h in res.history]
    assert steps == [0, 3, 6, 9, 12, 15, 18, 20]  # 10 steps an epoch; the last, unchecked steps count too
    assert res.steps == 20 and all("train_loss" in h for h in res.history[1:])


def test_patience_counts_checks_and_the_best_map_is_restored():
    pairs = oracle_pairs()
    task, target, site, tr, va = pairs
    states = {}

    def keep(record):
        states[record["steps"]] = copy.deepcopy(phi_ref[0].state_dict())

    # min_delta 1 cannot be beaten: patience 3 ends the fit after 3 checks, however good they are
    torch.manual_seed(0)
    phi = cl.make_alignment("rotation", 16)
    phi_ref = [phi]
    part = cl.Partition.contiguous(task.variables, 8, 16)
    res = cl.fit_alignment(target, site, phi, part, task, tr, va,
                           cl.FitConfig(epochs=5, batch_size=100, lr=5e-2, patience=3, val_every=2, min_delta=1.0),
                           progress=keep)
    assert res.stopped_early and res.steps == 6 and len(res.history) == 4
    # the paper's rule: the best map is kept on any gain, even one below min_delta
    best = max(res.history, key=lambda h: h["val_iia"])
    assert best["steps"] > 0 and res.best_val_iia == best["val_iia"]
    for k, v in phi.state_dict().items():
        assert torch.equal(v, states[best["steps"]][k])
    assert cl.evaluate(target, site, phi, part, task, va).iia == pytest.approx(best["val_iia"])


def test_bad_check_and_schedule_settings_are_named():
    for kw, name in ((dict(val_every=-1), "val_every"), (dict(plateau_factor=1.0), "plateau_factor"),
                     (dict(plateau_on="test"), "plateau_on"), (dict(min_delta=-1), "min_delta"),
                     (dict(lr_schedule="reduce"), "lr_schedule")):
        with pytest.raises(ConfigFieldError, match=name):
            cl.ExperimentConfig(**kw)
    with pytest.raises(FitError, match="plateau_patience"):
        cl.FitConfig(plateau_patience=-1)


def test_new_fit_settings_enter_the_hash_only_when_set():
    base = cl.ExperimentConfig()
    assert cl.ExperimentConfig(val_every=0, min_delta=1e-4, plateau_factor=0.5, plateau_patience=10,
                               plateau_on="train_loss", task_options={}).hash() == base.hash()
    hashes = {cl.ExperimentConfig(**kw).hash() for kw in (dict(val_every=100), dict(min_delta=0.0),
                                                           dict(lr_schedule="reduce_on_plateau"),
                                                           dict(plateau_patience=3), dict(task_options={"roles": "fixed"}))}
    assert len(hashes) == 5 and base.hash() not in hashes
