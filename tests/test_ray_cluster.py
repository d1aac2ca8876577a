"""`causalab sweep --executor ray --address ...` against a head started separately with `ray start --head`.

The head runs in its own home and temp folder (its token in ``HOME/.ray/auth_token``, its
address file under ``RAY_TMPDIR``), on the loopback address and a free port, and is stopped
by the fixture through its own process group: no other Ray on the machine is touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from causalab.experiments import ResultStore
from causalab.experiments.grid import load_sweep

pytest.importorskip("ray", reason="ray is not installed (pip install 'causalab[ray]')")
RAY = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")

RAY_ENV = ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
SWEEP = """
    [base]
    algorithm = "both_equality_relations"
    target = "oracle"
    n_train = 128
    n_val = 64
    n_test = 128
    epochs = 1
    batch_size = 64
    [grid]
    alignment = ["identity", "rotation"]
    [profiles.one]
    grid = { alignment = ["identity"] }
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop(proc: subprocess.Popen) -> None:
    """Stop the head's process group: SIGTERM, then SIGKILL what is left after 2 s (`ray start` would drain for 30 s)."""
    for sig, grace in ((signal.SIGTERM, 2), (signal.SIGKILL, 10)):
        if not _group_alive(proc.pid):
            break
        os.killpg(proc.pid, sig)
        deadline = time.monotonic() + grace
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            proc.poll()  # reap `ray start` itself
            time.sleep(0.2)
    proc.poll()


@pytest.fixture(scope="module")
def head():
    if RAY is None:
        pytest.skip("the `ray` command line is not installed, so no head can be started")
    root = Path(tempfile.mkdtemp(prefix="crh", dir="/tmp"))  # short: Ray's socket paths live under it
    env = {k: v for k, v in os.environ.items() if k not in RAY_ENV}
    env |= {"HOME": str(root / "home"), "RAY_TMPDIR": str(root / "tmp"), "PYTHONUNBUFFERED": "1"}
    for d in ("home", "tmp"):
        (root / d).mkdir()
    # the token a user makes once; `ray start --head` finds it and turns token authentication on
    subprocess.run([RAY, "get-auth-token", "--generate"], env=env, capture_output=True, timeout=60)
    port = _free_port()
    log = (root / "head.log").open("w")
    proc = subprocess.Popen(
        [RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "2",
         "--include-dashboard", "false", "--disable-usage-stats", "--block"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while "Ray runtime started" not in (root / "head.log").read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"`ray start --head` did not come up:\n{(root / 'head.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield {"address": f"127.0.0.1:{port}", "env": env, "root": root}
    finally:
        _stop(proc)
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def _start_sweep(head, tmp_path, address: str, profile: str | None = None, **env) -> tuple[subprocess.Popen, Path]:
    tmp_path.mkdir(exist_ok=True)
    f = tmp_path / "s.toml"
    f.write_text(textwrap.dedent(SWEEP))
    results = tmp_path / f"r-{address.replace(':', '-')}.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "causalab.cli", "sweep", str(f), "--results", str(results),
                             "--executor", "ray", "--address", address] + (["--profile", profile] if profile else []),
                            env=head["env"] | env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, results


def _finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return proc.returncode, out, err


def _sessions(head) -> list[Path]:
    return sorted((head["root"] / "tmp" / "ray").glob("session_2*"))


def test_sweeps_reach_a_head_with_token_authentication_and_a_wrong_token_is_named(head, tmp_path):
    assert "Token authentication is enabled" in (head["root"] / "head.log").read_text()  # the case users hit
    runs = [(head["address"], None), ("auto", "one")]
    started = [_start_sweep(head, tmp_path, address, profile) for address, profile in runs]  # drivers at once
    # a driver with another token; RAY_gcs_server_port_wait_time_s shortens Ray's own retries (20 s)
    wrong, wrong_results = _start_sweep(head, tmp_path / "wrong", head["address"], RAY_AUTH_TOKEN="0" * 32,
                                        RAY_gcs_server_port_wait_time_s="2")
    for (address, profile), (proc, results) in zip(runs, started):
        code, out, err = _finish(proc)
        assert code == 0, f"--address {address}: {err[-3000:]}"
        configs = load_sweep(tmp_path / "s.toml", profile).configs()
        assert sorted(r["hash"] for r in ResultStore(results).records()) == sorted(c.hash() for c in configs)
        assert f"{len(configs)} ran, 0 failed" in out
    assert len(_sessions(head)) == 1  # the drivers joined the head's session; no local instance was started

    code, _, err = _finish(wrong)
    assert code == 2
    error = [line for line in err.splitlines() if line.startswith("causalab: error:")]
    assert error, err[-3000:]
    assert repr(head["address"]) in error[0] and "token authentication" in error[0] and "~/.ray/auth_token" in error[0]
    assert not wrong_results.exists() or ResultStore(wrong_results).records() == []


def test_nothing_listening_fails_in_seconds_naming_the_address(tmp_path):
    from causalab.errors import SweepError
    from causalab.experiments import run_sweep
    from causalab.experiments.sweep import CONNECT_TIMEOUT

    (tmp_path / "s.toml").write_text(textwrap.dedent(SWEEP))
    address = f"127.0.0.1:{_free_port()}"
    start = time.monotonic()
    with pytest.raises(SweepError, match=f"'{address}'.*nothing answers.*GCS port"):
        run_sweep(load_sweep(tmp_path / "s.toml").configs(), executor="ray", address=address)
    assert time.monotonic() - start < CONNECT_TIMEOUT + 5
