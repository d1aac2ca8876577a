"""Run many configs: skip what the store already holds, run the rest on processes or a Ray cluster.

:func:`run_sweep` validates every pending config first (so a typo fails before any
work), then hands the runs to an executor and appends each record to the store as
soon as its run finishes. Killing a sweep loses at most the runs in flight; running
it again skips every hash already recorded, so each run is recorded exactly once.
Library code never prints: pass ``progress`` to follow the sweep.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from causalab.errors import SweepError
from causalab.experiments.config import ExperimentConfig
from causalab.experiments.runner import run_experiment
from causalab.experiments.store import ResultStore
from causalab.experiments.validate import validate_all
from causalab.registry import import_plugin
from causalab.saved_alignment import map_folder
from causalab.threads import use_threads

EXECUTORS = ("local", "ray")


@dataclass
class SweepEvent:
    """What a progress callback receives: ``kind`` is ``start``, ``done`` or ``failed``."""

    kind: str
    total: int  # runs to execute this time (recorded ones excluded)
    finished: int  # of those, finished so far (done or failed)
    skipped: int  # already in the store
    config: ExperimentConfig | None = None
    record: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class SweepSummary:
    total: int
    skipped: int
    records: list[dict[str, Any]] = field(default_factory=list)
    failed: list[tuple[ExperimentConfig, str]] = field(default_factory=list)
    seconds: float = 0.0


def execute(
    config: dict[str, Any] | ExperimentConfig,
    plugins: Sequence[str] = (),
    threads: int | None = None,
    save_maps: str | None = None,
) -> dict[str, Any]:
    """Run one config in this process and return its record (the unit of work every executor ships).

    ``run_sweep`` validates every config before it ships any, so the run skips its own check.
    The process computes with ``threads`` torch threads (default ``$CAUSALAB_THREADS``, else 1).
    """
    use_threads(threads)
    for module in plugins:
        import_plugin(module)
    if not isinstance(config, ExperimentConfig):
        config = ExperimentConfig.from_dict(config)
    return run_experiment(config, validated=True, save_map=save_maps).to_record()


Outcome = tuple[ExperimentConfig, "dict[str, Any] | BaseException"]


def _init_worker(plugins: Sequence[str]) -> None:
    use_threads()
    for module in plugins:
        import_plugin(module)


def run_local(
    configs: Sequence[ExperimentConfig],
    workers: int,
    plugins: Sequence[str] = (),
    start_method: str | None = None,
    save_maps: str | None = None,
) -> Iterator[Outcome]:
    """Runs on this machine: in this process when ``workers == 1``, else on a pool of ``workers`` processes.

    The pool forks where the platform can (fast; algorithms registered by the calling
    script are inherited, and it needs no ``if __name__ == "__main__"`` guard), else spawns.
    """
    if workers <= 1:
        for cfg in configs:
            try:
                yield cfg, execute(cfg, plugins, save_maps=save_maps)
            except Exception as exc:  # a failed run is reported, the sweep goes on
                exc.add_note(traceback.format_exc(limit=-3))
                yield cfg, exc
        return
    if start_method is None:
        start_method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(start_method)
    pool = ProcessPoolExecutor(max_workers=min(workers, len(configs)) or 1, mp_context=ctx,
                               initializer=_init_worker, initargs=(tuple(plugins),))
    finished = False
    try:
        pending = {pool.submit(execute, cfg.to_dict(), tuple(plugins), None, save_maps): cfg for cfg in configs}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                cfg = pending.pop(fut)
                exc = fut.exception()
                yield cfg, (exc if exc is not None else fut.result())
        finished = True
    finally:
        if finished:
            pool.shutdown(wait=True)
        else:  # left early (an error, a callback that stopped the sweep, Ctrl-C): stop the runs in flight
            processes = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in processes:
                if proc.is_alive():
                    proc.terminate()
            for proc in processes:
                proc.join(timeout=5)


def run_ray(
    configs: Sequence[ExperimentConfig],
    workers: int | None,
    plugins: Sequence[str] = (),
    address: str | None = None,
    init_kwargs: dict[str, Any] | None = None,
    save_maps: str | None = None,
) -> Iterator[Outcome]:
    """Runs as Ray tasks (one CPU each) on the cluster at ``address``, or on a local instance when None.

    An already-initialised Ray (``ray.init`` by the caller) is used as is and left running.
    """
    try:
        import ray
    except ImportError:
        raise SweepError("the Ray executor needs ray: pip install 'causalab[ray]'") from None
    started = False
    if not ray.is_initialized():
        kwargs = {"include_dashboard": False, "log_to_driver": False, "logging_level": "WARNING"}
        if address is None:
            kwargs["num_cpus"] = workers or os.cpu_count() or 1
        kwargs.update(init_kwargs or {})
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise SweepError(f"cannot start or reach Ray (address {address!r}): {exc}") from None
        started = True
    remote = ray.remote(num_cpus=1, max_retries=0)(execute)
    refs = {remote.remote(cfg.to_dict(), tuple(plugins), None, save_maps): cfg for cfg in configs}
    try:
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            for ref in done:
                cfg = refs.pop(ref)
                try:
                    yield cfg, ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    yield cfg, (exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else exc)
                except ray.exceptions.RayError as exc:  # a lost worker or node
                    yield cfg, exc
    finally:
        for ref in refs:
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()


def run_sweep(
    configs: Sequence[ExperimentConfig],
    store: ResultStore | str | os.PathLike | None = None,
    *,
    executor: str = "local",
    workers: int | None = None,
    address: str | None = None,
    progress: Callable[[SweepEvent], None] | None = None,
    plugins: Sequence[str] = (),
    stop_on_error: bool = False,
    ray_init: dict[str, Any] | None = None,
    save_maps: str | os.PathLike | None = None,
) -> SweepSummary:
    """Run every config whose hash the store does not hold yet; append each record as it finishes.

    ``executor`` is ``local`` (``workers`` processes, default one per core; 1 runs in
    this process) or ``ray`` (``address`` of a running cluster, or None to start a
    local instance). Failed runs are not recorded (a rerun retries them); they are
    listed in the summary, or raised as :class:`SweepError` with ``stop_on_error``.
    ``save_maps`` (a folder) saves each run's fitted map there as ``<hash>.safetensors``
    and names it in the record (``map_file``); on Ray the folder must be one every node sees.
    """
    start = time.perf_counter()
    if executor not in EXECUTORS:
        raise SweepError(f"unknown executor {executor!r}; valid: {', '.join(EXECUTORS)}")
    if workers is not None and workers < 1:
        raise SweepError(f"workers must be a positive integer, got {workers!r}")
    if isinstance(store, (str, os.PathLike)):
        store = ResultStore(Path(store))
    for module in plugins:
        import_plugin(module)
    maps = None if save_maps is None else str(map_folder(save_maps))  # absolute: workers agree on it

    unique: dict[str, ExperimentConfig] = {}
    for cfg in configs:
        unique.setdefault(cfg.hash(), cfg)
    recorded = store.hashes() if store is not None else set()
    todo = [cfg for h, cfg in unique.items() if h not in recorded]
    summary = SweepSummary(total=len(unique), skipped=len(unique) - len(todo))
    validate_all(todo)  # every name, site and block checked before any work starts

    def emit(kind: str, **kw: Any) -> None:
        if progress is not None:
            finished = len(summary.records) + len(summary.failed)
            progress(SweepEvent(kind, len(todo), finished, summary.skipped, **kw))

    emit("start")
    if todo:
        if executor == "local":
            outcomes = run_local(todo, workers or os.cpu_count() or 1, plugins, save_maps=maps)
        else:
            outcomes = run_ray(todo, workers, plugins, address, ray_init, save_maps=maps)
        try:
            for cfg, result in outcomes:
                if isinstance(result, BaseException):
                    message = f"{type(result).__name__}: {result}"
                    summary.failed.append((cfg, message))
                    emit("failed", config=cfg, error=message)
                    if stop_on_error:
                        raise SweepError(f"run {cfg.hash()} failed: {message}") from result
                    continue
                if store is not None:
                    store.append(result)
                summary.records.append(result)
                emit("done", config=cfg, record=result)
        finally:
            outcomes.close()  # stops the pool or cancels Ray tasks when the loop is left early
    summary.seconds = time.perf_counter() - start
    return summary
