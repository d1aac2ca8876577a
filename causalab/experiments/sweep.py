"""Run many configs: skip what the store already holds, run the rest on processes or a Ray cluster.

:func:`run_sweep` validates every pending config first (so a typo fails before any
work), then hands the runs to an executor and appends each record to the store as
soon as its run finishes. Killing a sweep loses at most the runs in flight; running
it again skips every hash already recorded, so each run is recorded exactly once.
Pool workers end with the process that started them, however it ends (Ctrl-C, ``kill``,
``kill -9``): they ignore SIGINT (the main process stops them), and the kernel (Linux:
``PR_SET_PDEATHSIG``; elsewhere a thread watching the parent) ends them when it is gone.
Library code never prints: pass ``progress`` to follow the sweep.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from causalab.errors import SweepError
from causalab.experiments.config import ExperimentConfig
from causalab.experiments.runner import run_experiment
from causalab.experiments.store import ResultStore
from causalab.experiments.validate import validate_all
from causalab.maps.saved import map_folder
from causalab.registry import import_plugin
from causalab.runtime import RuntimeSettings
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
    elapsed: float = 0.0  # seconds since the runs started (after validation)
    note: str | None = None  # on ``start``: something the user should know (a killed sweep's claim taken over)

    @property
    def remaining(self) -> float | None:
        """Seconds left at the pace so far (runs in flight finish in parallel); None before the first run ends."""
        if self.finished <= 0:
            return None
        return self.elapsed / self.finished * max(self.total - self.finished, 0)


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
    The process computes with ``threads`` torch threads (default ``$CAUSALAB_THREADS``, else 1);
    the other runtime settings are read from its environment once, here.
    """
    runtime = RuntimeSettings.from_env(threads=threads)
    use_threads(runtime.threads)
    for module in plugins:
        import_plugin(module)
    if not isinstance(config, ExperimentConfig):
        config = ExperimentConfig.from_dict(config)
    return run_experiment(config, validated=True, save_map=save_maps, runtime=runtime).to_record()


Outcome = tuple[ExperimentConfig, "dict[str, Any] | BaseException"]


@dataclass(frozen=True)
class WorkerPlan:
    """How many local workers a sweep starts, and the GPU each is pinned to.

    ``pins[i]`` is worker ``i``'s ``CUDA_VISIBLE_DEVICES`` (one device); empty: no pinning.
    """

    workers: int
    pins: tuple[str, ...] = ()


def plan_workers(devices: Sequence[str], workers: int | None, *, gpus: int, cpus: int,
                 visible: str | None = None) -> WorkerPlan:
    """The local workers for runs on ``devices`` (each config's ``device``): one per GPU for CUDA runs.

    - No run on CUDA (or no GPU visible, which validation then reports): ``workers``, default
      one per core (``cpus``), unpinned.
    - Runs on plain ``"cuda"``: ``workers``, default one per GPU (``gpus``), worker ``i`` pinned to
      GPU ``i`` (its ``CUDA_VISIBLE_DEVICES``; the ``i``-th entry of ``visible``, this process's own
      ``CUDA_VISIBLE_DEVICES``, where one is set), so each sees its GPU as ``cuda``. More workers
      than GPUs is a :class:`SweepError`: two runs would share a GPU.
    - Runs naming a GPU (``"cuda:1"``): they keep it; ``workers``, default one per GPU, unpinned.

    One worker runs in the sweep's own process, unpinned (its ``cuda`` is the first visible GPU).
    """
    cuda = [d for d in devices if d.startswith("cuda")]
    if not cuda or gpus < 1:
        return WorkerPlan(workers or cpus or 1)
    if any(d != "cuda" for d in cuda):  # a named GPU: pinning would renumber it
        return WorkerPlan(workers or gpus)
    if workers is not None and workers > gpus:
        raise SweepError(
            f"{workers} workers asked for, but {gpus} GPU(s) are visible: a sweep on device 'cuda' runs one worker "
            f"per GPU, each pinned to its own; give workers <= {gpus} (the default is {gpus}), or name GPUs in the "
            "configs (device 'cuda:1') to place runs yourself"
        )
    count = workers or gpus
    if count <= 1:
        return WorkerPlan(1)
    ids = [v.strip() for v in visible.split(",") if v.strip()] if visible else [str(i) for i in range(gpus)]
    return WorkerPlan(count, tuple(ids[i] if i < len(ids) else str(i) for i in range(count)))


def visible_gpus(devices: Sequence[str]) -> int:
    """GPUs torch sees, asked only when a run is on CUDA (so CPU sweeps never touch CUDA)."""
    if not any(d.startswith("cuda") for d in devices):
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


PR_SET_PDEATHSIG = 1  # prctl(2): the signal this process gets when its parent ends


def _end_with_parent(parent: int) -> None:
    """End this worker when ``parent`` (the sweep's main process) ends, however it ends.

    On Linux the kernel sends SIGTERM (``PR_SET_PDEATHSIG``); elsewhere a daemon thread
    polls the parent pid once a second. Without this, a main process killed by a signal
    leaves its workers running, re-parented to init.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            asked = libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) == 0
        except (OSError, AttributeError):
            asked = False
        if asked:
            if os.getppid() != parent:  # it ended before the request was made
                os._exit(1)
            return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="causalab-parent-watch", daemon=True).start()


def _init_worker(plugins: Sequence[str], parent: int | None = None, pins: Any = None) -> None:
    # A pinned worker takes its GPU first, before anything can initialise CUDA in it: ``pins`` is a queue
    # holding one CUDA_VISIBLE_DEVICES value per worker, and each worker process takes one.
    if pins is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = pins.get(timeout=60)
    # Ctrl-C reaches the whole process group: the main process stops the pool, so a worker ignores it.
    # Handlers the main process installed (the CLI turns SIGTERM into an exception) are not a worker's:
    # SIGTERM, from the pool's terminate() or the kernel, ends it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
    if parent is not None:
        _end_with_parent(parent)
    use_threads()
    for module in plugins:
        import_plugin(module)


def worker_pool(workers: int, plugins: Sequence[str] = (), start_method: str | None = None,
                pins: Sequence[str] = ()) -> ProcessPoolExecutor:
    """A pool of ``workers`` sweep worker processes; with ``pins``, worker ``i`` sees only GPU ``pins[i]``.

    An unpinned pool forks where the platform can (fast; algorithms registered by the calling
    script are inherited, and it needs no ``if __name__ == "__main__"`` guard), else spawns. A
    pinned pool spawns: CUDA cannot be used in a process forked from one that initialised it
    (validating a CUDA config does), and a fresh process reads ``CUDA_VISIBLE_DEVICES`` when it
    first uses CUDA. Its workers import the ``plugins`` themselves, so algorithms a script
    registers must live in a module passed as a plugin.
    """
    if pins and len(pins) < workers:
        raise SweepError(f"{workers} workers but only {len(pins)} GPU pins: {list(pins)}")
    if start_method is None:
        start_method = "spawn" if pins or "fork" not in multiprocessing.get_all_start_methods() else "fork"
    ctx = multiprocessing.get_context(start_method)
    queue = None
    if pins:
        queue = ctx.Queue()
        for pin in pins[:workers]:
            queue.put(pin)
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(tuple(plugins), os.getpid(), queue))


def run_local(
    configs: Sequence[ExperimentConfig],
    workers: int,
    plugins: Sequence[str] = (),
    start_method: str | None = None,
    save_maps: str | None = None,
    pins: Sequence[str] = (),
) -> Iterator[Outcome]:
    """Runs on this machine: in this process when ``workers == 1``, else on a pool of ``workers`` processes
    (:func:`worker_pool`; with ``pins``, one per GPU, each pinned to its own: :func:`plan_workers`).
    """
    if workers <= 1:
        for cfg in configs:
            try:
                yield cfg, execute(cfg, plugins, save_maps=save_maps)
            except Exception as exc:  # a failed run is reported, the sweep goes on
                exc.add_note(traceback.format_exc(limit=-3))
                yield cfg, exc
        return
    pool = worker_pool(min(workers, len(configs)) or 1, plugins, start_method, pins)
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


CONNECT_TIMEOUT = 5.0  # seconds to wait for a TCP answer from an explicitly given Ray address


def _host_port(address: str) -> tuple[str, int] | None:
    """``HOST:PORT`` or ``ray://HOST:PORT`` -> (host, port); None for ``auto`` or anything else Ray resolves itself."""
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]") or "127.0.0.1", int(port)


def _given(address: str) -> str:
    env = os.environ.get("RAY_ADDRESS")
    return f"{address!r}" + (f" (RAY_ADDRESS={env!r} is set and Ray uses it instead)" if env and env != address else "")


def _check_reachable(address: str) -> None:
    """Fail in seconds, naming the address, when nothing listens there (Ray itself retries for over a minute)."""
    target = _host_port(os.environ.get("RAY_ADDRESS") or address)
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=CONNECT_TIMEOUT):
            pass
    except OSError as exc:
        raise SweepError(
            f"cannot reach a Ray cluster at {_given(address)}: nothing answers on {target[0]} port {target[1]} "
            f"({exc.strerror or exc}). Check that a head runs there (`ray start --head` prints its address; "
            f"`ray status --address {target[0]}:{target[1]}` checks it) and that the port is the head's GCS port "
            f"(6379 unless --port was given), not the dashboard's (8265) or Ray Client's (10001, for ray://)"
        ) from None


def _send_token_if_available() -> None:
    """Use the local Ray token (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``) on any address.

    A head started with ``ray start --head`` turns token authentication on when it finds a
    token, but Ray's driver only sends one to an explicit ``HOST:PORT`` when ``RAY_AUTH_MODE=token``
    is set, so it is refused. Ray does this for ``auto``; an explicit ``RAY_AUTH_MODE`` is left alone.
    Sending a token to a cluster without authentication is harmless.
    """
    if "RAY_AUTH_MODE" in os.environ:
        return
    try:  # Ray >= 2.59; earlier releases need RAY_AUTH_MODE=token set by the user
        from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available
    except ImportError:
        return
    quiet = logging.getLogger("ray._private.authentication.authentication_token_setup")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # its warning speaks to someone starting a cluster, not a driver
    try:
        maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    finally:
        quiet.setLevel(level)


def _connection_error(address: str, exc: BaseException) -> SweepError:
    """Ray's failure to connect, said in terms of the address given and what to check."""
    chain, cause = [], exc
    while cause is not None and len(chain) < 5:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    text = " ".join(f"{type(c).__name__}: {c}" for c in chain)
    mode = os.environ.get("RAY_AUTH_MODE", "unset")
    if "AuthenticationError" in text or "InvalidAuthToken" in text or "auth token" in text.lower():
        return SweepError(
            f"the Ray cluster at {_given(address)} refused this driver: it runs with token authentication and this "
            f"process sent no token or a different one (RAY_AUTH_MODE is {mode}). Give this process the head's token: copy it "
            "(`ray get-auth-token` on the head) to ~/.ray/auth_token, or point RAY_AUTH_TOKEN_PATH at a file "
            "holding it, or set RAY_AUTH_TOKEN"
        )
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return SweepError(
        f"cannot connect to the Ray cluster at {_given(address)} (Ray says: {first}). Check that the head is running "
        "(`ray status` on it), that this driver runs the same Ray and Python versions as the cluster, "
        "and for `auto` that a head was started on this machine"
    )


def connect_ray(address: str | None, workers: int | None = None, init_kwargs: dict[str, Any] | None = None) -> bool:
    """Connect to the Ray cluster at ``address`` (``HOST:PORT``, ``auto``, ``ray://HOST:PORT``) or start a local one.

    Returns True when this call initialised Ray (the caller then shuts it down), False
    when Ray was already initialised. Raises :class:`SweepError` naming ``address`` and
    what to check when the cluster cannot be reached or refuses the driver.
    """
    try:
        import ray
    except ImportError:
        raise SweepError("the Ray executor needs ray: pip install 'causalab[ray]'") from None
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "WARNING"}
    if address is None:
        kwargs["num_cpus"] = workers or os.cpu_count() or 1
    else:
        _check_reachable(address)
        _send_token_if_available()
    kwargs.update(init_kwargs or {})
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as exc:
        if address is None:
            raise SweepError(f"cannot start a local Ray instance: {exc}") from None
        raise _connection_error(address, exc) from None
    return True


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
    started = connect_ray(address, workers, init_kwargs)  # names ray when it is missing
    import ray

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
    this process; runs on device ``cuda``: one worker per GPU, each pinned to its own,
    :func:`plan_workers`) or ``ray`` (``address`` of a running cluster, or None to start a
    local instance). Failed runs are not recorded (a rerun retries them); they are
    listed in the summary, or raised as :class:`SweepError` with ``stop_on_error``.
    ``save_maps`` (a folder) saves each run's fitted map there as ``<hash>.safetensors``
    and names it in the record (``map_file``); on Ray the folder must be one every node sees.
    A ``KeyboardInterrupt`` (Ctrl-C; the CLI raises one for SIGTERM and SIGHUP too) stops the
    runs in flight and lets go of the store before it propagates; the ``start`` event's
    ``note`` says when the store was taken over from a sweep that was killed.
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
    with store.claim() if store is not None else contextlib.nullcontext() as stale:  # one sweep per file at a time
        note = None if stale is None else (
            f"the last sweep on {store.path} (pid {stale}) was killed before it finished; this one takes over "
            "the file: its recorded runs are kept and skipped")
        return _run_claimed(configs, store, start, executor=executor, workers=workers, address=address,
                            progress=progress, plugins=plugins, stop_on_error=stop_on_error, ray_init=ray_init,
                            maps=maps, note=note)


def _run_claimed(
    configs: Sequence[ExperimentConfig],
    store: ResultStore | None,
    start: float,
    *,
    executor: str,
    workers: int | None,
    address: str | None,
    progress: Callable[[SweepEvent], None] | None,
    plugins: Sequence[str],
    stop_on_error: bool,
    ray_init: dict[str, Any] | None,
    maps: str | None,
    note: str | None = None,
) -> SweepSummary:
    """:func:`run_sweep`'s work once its results file is claimed."""
    unique: dict[str, ExperimentConfig] = {}
    for cfg in configs:
        unique.setdefault(cfg.hash(), cfg)
    recorded = store.hashes() if store is not None else set()
    todo = [cfg for h, cfg in unique.items() if h not in recorded]
    summary = SweepSummary(total=len(unique), skipped=len(unique) - len(todo))
    if executor == "local":  # a worker count the GPUs cannot take fails before anything is built
        devices = [cfg.device for cfg in todo]
        plan = plan_workers(devices, workers, gpus=visible_gpus(devices), cpus=os.cpu_count() or 1,
                            visible=os.environ.get("CUDA_VISIBLE_DEVICES"))
    validate_all(todo)  # every name, site and block checked before any work starts

    began = time.perf_counter()

    def emit(kind: str, **kw: Any) -> None:
        if progress is not None:
            finished = len(summary.records) + len(summary.failed)
            progress(SweepEvent(kind, len(todo), finished, summary.skipped, elapsed=time.perf_counter() - began, **kw))

    emit("start", note=note)
    if todo:
        if executor == "local":
            outcomes = run_local(todo, plan.workers, plugins, save_maps=maps, pins=plan.pins)
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
