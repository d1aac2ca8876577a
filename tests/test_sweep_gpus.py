"""Local sweeps on GPUs: one worker per GPU, each pinned to its own (CUDA_VISIBLE_DEVICES).

The plan is a pure function of the runs' devices and the GPU count, checked here without a GPU;
the pinning itself is checked on CPU worker processes (the variable is set in each worker before
anything can use CUDA), and the sweep's own choice by mocking ``torch.cuda.device_count``. The
last test runs a sweep on real GPUs and skips without one.
"""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest
import torch

from causalab.errors import SweepError
from causalab.experiments import ExperimentConfig, run_sweep
from causalab.experiments import sweep as sweep_module
from causalab.experiments.sweep import WorkerPlan, plan_workers, worker_pool

CPU, CUDA = "cpu", "cuda"


def test_cpu_runs_take_one_worker_per_core_unpinned():
    assert plan_workers([CPU, CPU], None, gpus=4, cpus=8) == WorkerPlan(8)
    assert plan_workers([CPU], 3, gpus=4, cpus=8) == WorkerPlan(3)


def test_cuda_runs_take_one_worker_per_gpu_each_pinned_to_its_own():
    assert plan_workers([CUDA] * 5, None, gpus=4, cpus=16) == WorkerPlan(4, ("0", "1", "2", "3"))
    assert plan_workers([CUDA, CPU], 2, gpus=4, cpus=16) == WorkerPlan(2, ("0", "1"))
    # this process already sees a subset: worker i gets the i-th of those
    assert plan_workers([CUDA] * 3, None, gpus=2, cpus=16, visible="4, 6") == WorkerPlan(2, ("4", "6"))
    # one GPU, or one worker asked for: the sweep's own process, unpinned
    assert plan_workers([CUDA] * 3, None, gpus=1, cpus=16) == WorkerPlan(1)
    assert plan_workers([CUDA] * 3, 1, gpus=4, cpus=16) == WorkerPlan(1)


def test_more_workers_than_gpus_is_refused_naming_both():
    with pytest.raises(SweepError, match="5 workers asked for, but 4 GPU.*workers <= 4"):
        plan_workers([CUDA], 5, gpus=4, cpus=16)


def test_runs_naming_a_gpu_keep_it_unpinned_and_no_gpu_leaves_the_cpu_plan():
    assert plan_workers(["cuda:1", CUDA], None, gpus=2, cpus=16) == WorkerPlan(2)
    assert plan_workers(["cuda:1"], 6, gpus=2, cpus=16) == WorkerPlan(6)
    assert plan_workers([CUDA], None, gpus=0, cpus=16) == WorkerPlan(16)  # validation names the device field


BARRIER = None  # set before the pool forks: each probe waits for the other, so both workers answer


def _probe() -> tuple[int, str | None]:
    BARRIER.wait(timeout=60)
    return os.getpid(), os.environ.get("CUDA_VISIBLE_DEVICES")


def test_each_pinned_worker_sees_only_its_own_gpu():
    global BARRIER
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("the probe shares a barrier through fork; the pool itself spawns when pinned")
    BARRIER = multiprocessing.get_context("fork").Barrier(2)
    pool = worker_pool(2, start_method="fork", pins=("3", "5"))
    try:
        seen = [f.result(timeout=120) for f in [pool.submit(_probe) for _ in range(2)]]
    finally:
        pool.shutdown(wait=True)
    assert len({pid for pid, _ in seen}) == 2 and sorted(pin for _, pin in seen) == ["3", "5"]
    assert os.environ.get("CUDA_VISIBLE_DEVICES") != "3"  # the sweep's own process is left alone


def test_a_pinned_pool_spawns_its_workers_and_runs_them(monkeypatch):
    pool = worker_pool(1, pins=("7",))
    try:
        assert pool._mp_context.get_start_method() == "spawn"
        assert pool.submit(os.getenv, "CUDA_VISIBLE_DEVICES").result(timeout=120) == "7"
    finally:
        pool.shutdown(wait=True)
    with pytest.raises(SweepError, match="2 workers but only 1 GPU pins"):
        worker_pool(2, pins=("0",))


def test_a_cuda_sweep_starts_one_pinned_worker_per_gpu(monkeypatch, tmp_path):
    """The sweep asks torch for the GPUs (mocked: 3) and hands the runner one pinned worker per GPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(sweep_module, "validate_all", lambda configs: None)  # no GPU here to build on
    asked = {}

    def run_local(configs, workers, plugins=(), start_method=None, save_maps=None, pins=()):
        asked.update(workers=workers, pins=pins)
        yield from ()

    monkeypatch.setattr(sweep_module, "run_local", run_local)
    configs = [ExperimentConfig(algorithm="left_equality_relation", target="random", layer=1, seed=s, device="cuda")
               for s in range(5)]
    run_sweep(configs, tmp_path / "r.jsonl")
    assert asked == {"workers": 3, "pins": ("0", "1", "2")}
    with pytest.raises(SweepError, match="4 workers asked for, but 3 GPU"):
        run_sweep(configs, tmp_path / "r.jsonl", workers=4)
    run_sweep([ExperimentConfig(algorithm="left_equality_relation", target="random", layer=1)] * 2,
              tmp_path / "c.jsonl", workers=2)
    assert asked == {"workers": 2, "pins": ()}  # CPU runs: unpinned, as before


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="needs a CUDA device; the per-GPU plan and pinning are checked above without one")
def test_a_sweep_on_real_gpus_runs_each_worker_on_its_own(tmp_path):
    gpus = torch.cuda.device_count()
    configs = [ExperimentConfig(algorithm="left_equality_relation", target="random", layer=1, seed=s, device="cuda",
                                n_train=256, n_val=64, n_test=64, epochs=1, batch_size=64) for s in range(2 * gpus)]
    start = time.perf_counter()
    summary = run_sweep(configs, tmp_path / "gpu.jsonl")
    assert not summary.failed and len(summary.records) == 2 * gpus, summary.failed
    assert time.perf_counter() - start < 600
    pool = worker_pool(gpus, pins=tuple(str(i) for i in range(gpus)))  # each worker sees one GPU, as cuda:0
    try:
        assert [pool.submit(torch.cuda.device_count).result(timeout=300) for _ in range(gpus)] == [1] * gpus
    finally:
        pool.shutdown(wait=True)
