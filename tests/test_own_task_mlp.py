"""target="trained" trains an MLP for a user's own task (README "Write your own algorithm"); train_mlp's example runs."""

import dataclasses
import doctest
import os
from pathlib import Path

import causalab as cl
from causalab.neural import mlp
from causalab.registry import ALGORITHMS


def test_train_mlp_docstring_example_runs():
    runner = doctest.DocTestRunner()
    for test in doctest.DocTestFinder().find(mlp.train_mlp, "train_mlp", globs={}):
        runner.run(test)
    assert runner.summarize(verbose=False) == doctest.TestResults(failed=0, attempted=4)


def test_a_users_own_task_gets_its_own_trained_mlp_cached_under_its_family(monkeypatch):
    ALGORITHMS.names()
    monkeypatch.setattr(ALGORITHMS, "_items", dict(ALGORITHMS._items))

    @cl.register_algorithm("my_own_equality")
    def my_task() -> cl.Task:  # the left equality relation under a family of its own: no built-in network fits it
        return dataclasses.replace(cl.make_task("left_equality_relation"), name="my_own_equality", family="my_own")

    options = {"samples": 4096, "epoch_size": 2048, "n_test": 500}
    result = cl.run_experiment(cl.ExperimentConfig(algorithm="my_own_equality", target="trained", alignment="identity",
                                                   target_options=options, n_train=100, n_val=50, n_test=200, epochs=1))
    assert 0.0 <= result.network_accuracy <= 1.0 and result.width == 16
    cached = sorted(p.name for p in Path(os.environ["CAUSALAB_CACHE"]).glob("mlp-my_own-seed0-*.safetensors"))
    assert len(cached) == 1  # trained once for the family, seed and options; the next build loads it
