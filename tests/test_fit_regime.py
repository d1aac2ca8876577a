"""The fitting regime's options (warmup, schedule, loss) do what they say; learning curves reach the record."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import causalab as cl
from algorithms.hierarchical_equality import oracle_mlp
from causalab.errors import ConfigError, FitError
from causalab.fit.fitting import pair_loss


def oracle_pairs(n_train: int = 1_000, n_val: int = 300):
    task = cl.make_task("both_equality_relations")
    target, site = oracle_mlp(), cl.Site(1)
    tr, va = task.counterfactuals(n_train + n_val, torch.Generator().manual_seed(0)).split([n_train, n_val])
    return task, target, site, cl.prepare(target, site, task, tr), cl.prepare(target, site, task, va)


def fit(config: cl.FitConfig, pairs=None):
    task, target, site, tr, va = pairs or oracle_pairs()
    torch.manual_seed(0)
    phi = cl.make_alignment("rotation", 16)
    return cl.fit_alignment(target, site, phi, cl.Partition.contiguous(task.variables, 8, 16), task, tr, va, config), phi


def test_warmup_rises_linearly_and_cosine_falls_to_zero():
    c = cl.FitConfig(lr=1e-2, warmup_steps=4, lr_schedule="cosine")
    assert [c.lr_at(s, 20) for s in range(4)] == pytest.approx([2.5e-3, 5e-3, 7.5e-3, 1e-2])
    assert c.lr_at(4, 20) == pytest.approx(1e-2)  # the cosine starts at the full rate after warmup
    assert c.lr_at(12, 20) == pytest.approx(5e-3)  # half-way through the rest
    assert c.lr_at(20, 20) == pytest.approx(0.0, abs=1e-12)
    assert cl.FitConfig(lr=1e-2).lr_at(7, 20) == 1e-2
    assert cl.FitConfig(lr=1e-2, lr_schedule="plateau").lr_at(7, 20, plateau_scale=0.25) == pytest.approx(2.5e-3)


def test_schedules_change_the_fit_and_are_recorded_per_epoch():
    pairs = oracle_pairs()
    base, _ = fit(cl.FitConfig(epochs=3, batch_size=250, lr=5e-2, patience=3), pairs)
    warm, _ = fit(cl.FitConfig(epochs=3, batch_size=250, lr=5e-2, patience=3, warmup_steps=8), pairs)
    cos, _ = fit(cl.FitConfig(epochs=3, batch_size=250, lr=5e-2, patience=3, lr_schedule="cosine"), pairs)
    assert [h["lr"] for h in base.history] == [5e-2] * 4
    # warmup: 4 steps an epoch, so the first epoch ends at step 4 of 8 and the second at the full rate
    assert [h["lr"] for h in warm.history[1:]] == pytest.approx([5e-2 * 4 / 8, 5e-2, 5e-2])
    assert warm.history[1]["train_loss"] > base.history[1]["train_loss"]  # a slower start
    # cosine over 12 steps: the last step of each epoch
    assert [h["lr"] for h in cos.history[1:]] == pytest.approx(
        [5e-2 * 0.5 * (1 + math.cos(math.pi * s / 12)) for s in (3, 7, 11)])
    for h in base.history:  # the learning curves
        assert {"val_iia", "val_loss", "train_iia", "train_eval_loss", "lr"} <= set(h)
    assert base.history[-1]["train_iia"] > base.history[0]["train_iia"]


def test_plateau_halves_the_rate_after_an_epoch_without_improvement():
    # min_delta 1 cannot be beaten: every epoch counts as no improvement
    res, _ = fit(cl.FitConfig(epochs=3, batch_size=500, lr=1e-2, patience=5, min_delta=1.0, lr_schedule="plateau"))
    assert [h["lr"] for h in res.history[1:]] == pytest.approx([1e-2, 5e-3, 2.5e-3])


def test_pair_loss_is_the_two_token_cross_entropy_and_refuses_other_labels():
    logits = torch.randn(5, 11, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([[3, 7], [0, 1], [10, 2], [4, 4], [6, 5]])
    two = torch.stack([logits[torch.arange(5), labels[:, 0]], logits[torch.arange(5), labels[:, 1]]], 1)
    assert pair_loss(logits, labels) == pytest.approx(float(F.cross_entropy(two, torch.zeros(5, dtype=torch.long))))
    # blind to every other token
    shifted = logits.clone()
    shifted[:, 8] += 100.0
    assert pair_loss(shifted, labels) == pytest.approx(float(pair_loss(logits, labels)))
    with pytest.raises(FitError, match="loss 'pair' needs two token ids per row"):
        fit(cl.FitConfig(epochs=1, loss="pair"))  # the MLP task's labels are one class per row


def test_config_fields_enter_the_hash_only_when_set_and_are_checked():
    default = cl.ExperimentConfig()
    assert default.hash() == cl.ExperimentConfig(warmup_steps=0, lr_schedule="constant", loss="task").hash()
    hashes = {default.hash(), cl.ExperimentConfig(warmup_steps=10).hash(),
              cl.ExperimentConfig(lr_schedule="cosine").hash(), cl.ExperimentConfig(loss="pair").hash()}
    assert len(hashes) == 4
    for field, bad in (("lr_schedule", "linear"), ("loss", "mse"), ("warmup_steps", -1)):
        with pytest.raises(ConfigError, match=field):
            cl.ExperimentConfig(**{field: bad})
    with pytest.raises(FitError, match="lr_schedule"):
        cl.FitConfig(lr_schedule="step")


def test_the_record_carries_the_learning_curves():
    config = cl.ExperimentConfig(target="oracle", n_train=600, n_val=200, n_test=200, epochs=2, batch_size=200,
                                 lr=5e-2, warmup_steps=2, lr_schedule="cosine")
    record = cl.run_experiment(config).to_record()
    assert [h["epoch"] for h in record["history"]] == [0, 1, 2]
    assert all({"train_iia", "val_iia", "val_loss", "train_eval_loss", "lr"} <= set(h) for h in record["history"])
    assert record["hash"] == config.hash() != cl.ExperimentConfig(**{**config.to_dict(), "warmup_steps": 0}).hash()


def test_on_ioi_the_pair_loss_reads_the_two_names_below_the_full_vocabulary_loss():
    from algorithms import ioi, ioi_models
    from algorithms import ioi_data as data
    from causalab.neural.lm import random_lm

    task = ioi.ioi_pattern_task()
    lm = random_lm(len(data.VOCAB), size="tiny", seed=0, tokenizer=ioi_models.tokenizer())
    site = cl.Site(1, "last")
    pairs = cl.prepare(lm, site, task, task.counterfactuals(64, torch.Generator().manual_seed(0)))
    phi = cl.make_alignment("rotation", lm.hidden_width)
    part = cl.Partition({"pattern": range(16)}, lm.hidden_width)
    full = cl.evaluate(lm, site, phi, part, task, pairs, with_loss=True).loss
    two = cl.evaluate(lm, site, phi, part, task, pairs, with_loss=True, loss_fn=pair_loss).loss
    assert 0 < two < full and two < 2 * math.log(2)  # a random model is near chance between the two names
