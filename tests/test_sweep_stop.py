"""A sweep stopped by a signal to its main process leaves no worker behind, lets go of its
results file, and resumes with every run recorded once."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from causalab.experiments.grid import load_configs
from causalab.experiments.store import ResultStore
from causalab.experiments.sweep import run_sweep

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")

# runs of about a second each, so that the sweep is still running when it is signalled
SWEEP = """
    [base]
    algorithm = "both_equality_relations"
    alignment = "rotation"
    target = "random"
    n_train = 4096
    n_val = 128
    n_test = 128
    epochs = 30
    batch_size = 64
    patience = 100
    [grid]
    "seed,target_seed" = [[0, 0], [1, 1], [2, 2], [3, 3], [4, 4], [5, 5], [6, 6], [7, 7]]
"""


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()  # state, ppid, ...


def children(pid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit() and (stat := _stat(int(name))) is not None and int(stat[1]) == pid:
            out.append(int(name))
    return out


def alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")  # an unreaped zombie has ended


def wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.fixture
def sweep_file(tmp_path, monkeypatch):
    monkeypatch.setenv("CAUSALAB_CACHE", str(tmp_path / "cache"))
    f = tmp_path / "s.toml"
    f.write_text(textwrap.dedent(SWEEP))
    return f


def default_signals() -> None:
    """In the child: the signals' default dispositions, even when this test runs in a background job (which
    starts with SIGINT ignored) or under nohup (SIGHUP ignored): the case the test is about."""
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def start(sweep_file: Path, results: Path) -> tuple[subprocess.Popen, list[int]]:
    """A two-worker sweep as its own process, once both workers run; and the workers' pids."""
    proc = subprocess.Popen([sys.executable, "-m", "causalab.cli", "sweep", str(sweep_file), "--results", str(results),
                             "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=default_signals)
    assert wait_until(lambda: len(children(proc.pid)) == 2 or proc.poll() is not None, 30), "no workers started"
    workers = children(proc.pid)
    assert len(workers) == 2 and proc.poll() is None, proc.communicate()
    return proc, workers


def test_a_signal_to_the_main_process_ends_its_workers_and_the_sweep_resumes(sweep_file, tmp_path):
    results = tmp_path / "r.jsonl"
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGKILL):
        before = len(ResultStore(results).records())
        proc, workers = start(sweep_file, results)
        if sig == signal.SIGTERM:  # records already written stay
            assert wait_until(lambda: lines(results) > before or proc.poll() is not None, 30)
        proc.send_signal(sig)  # the main process only, not its process group
        out, err = proc.communicate(timeout=30)
        try:
            assert wait_until(lambda: not any(alive(w) for w in workers), 10), f"{sig.name}: a worker outlived its sweep"
        finally:
            for w in workers:  # leave nothing running when the check fails
                if alive(w):
                    os.kill(w, signal.SIGKILL)
        recorded = ResultStore(results).records()
        assert len(recorded) >= before and len({r["hash"] for r in recorded}) == len(recorded)
        if sig == signal.SIGKILL:
            assert proc.returncode == -signal.SIGKILL
            continue
        assert proc.returncode == 128 + sig, (sig.name, err)
        assert "Traceback" not in err, err
        last = err.strip().splitlines()[-1]
        assert last == (f"causalab: stopped by {sig.name}; {len(recorded)} of 8 runs are recorded in {results}; "
                        "run the same command again to resume (recorded runs are skipped)"), err
    assert 1 <= len(recorded) < 8
    notes = []
    summary = run_sweep(load_configs(sweep_file), results, workers=2,
                        progress=lambda e: notes.append(e.note) if e.kind == "start" else None)
    # the claim of the sweep killed with -9 is taken over, with a note naming its pid
    assert notes[0] is not None and f"(pid {proc.pid}) was killed before it finished" in notes[0]
    hashes = [r["hash"] for r in ResultStore(results).records()]
    assert summary.skipped == len(recorded) and not summary.failed
    assert len(hashes) == len(set(hashes)) == 8  # each run exactly once


def _hold_forever(ready) -> None:
    ready.set()
    time.sleep(60)


def test_a_process_forked_during_a_claim_does_not_hold_it(tmp_path):
    store = ResultStore(tmp_path / "r.jsonl")
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    with store.claim() as stale:
        assert stale is None
        child = ctx.Process(target=_hold_forever, args=(ready,))
        child.start()
        ready.wait(10)
        with pytest.raises(Exception, match="already running a sweep into"):  # not twice in one process either
            with store.claim():
                pass
    try:
        assert child.is_alive()
        probe = subprocess.run([sys.executable, "-c", f"from causalab.experiments.store import ResultStore\n"
                                f"with ResultStore({str(store.path)!r}).claim() as stale: print(stale)"],
                               capture_output=True, text=True, timeout=60)
        assert probe.returncode == 0 and probe.stdout.strip() == "None", probe.stderr  # let go of cleanly
    finally:
        child.kill()
        child.join()


def test_a_signal_the_process_was_started_ignoring_stays_ignored():
    from causalab.cli.main import Stopped, _stop_on_signals

    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as nohup starts it
    term = signal.getsignal(signal.SIGTERM)
    try:
        with _stop_on_signals():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN  # a sweep under nohup survives a hangup
            with pytest.raises(Stopped, match="SIGTERM"):
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(1)
        assert signal.getsignal(signal.SIGTERM) is term  # the command's handlers are gone when it returns
    finally:
        signal.signal(signal.SIGHUP, before)
