"""Experiments infrastructure: TOML configs, validation before work, the results store, sweeps, reports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from causalab.errors import ConfigError, ConfigFieldError, StoreError
from causalab.experiments import sweep as sweep_module
from causalab.experiments.config import ExperimentConfig
from causalab.experiments.grid import expand_grid, load_configs, load_sweep
from causalab.experiments.report import layer_table, summarize, summary_table, write_report
from causalab.experiments.runner import run_experiment
from causalab.experiments.store import ResultStore
from causalab.experiments.sweep import run_sweep
from causalab.experiments.validate import validate
from causalab.runtime import RuntimeSettings

TINY = {"n_train": 128, "n_val": 64, "n_test": 128, "epochs": 1, "batch_size": 64}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CAUSALAB_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(1)


def tiny_configs(n_seeds: int = 2) -> list[ExperimentConfig]:
    return expand_grid(
        {"algorithm": "both_equality_relations", **TINY},
        {"alignment": ["identity", "rotation"], "target": ["oracle", "random"], "seed,target_seed": [[s, s] for s in range(n_seeds)]},
    )


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


# --- TOML configs and grids --------------------------------------------------------------
def test_single_run_toml_round_trips(tmp_path):
    f = write(tmp_path / "one.toml", """
        algorithm = "left_equality_relation"
        alignment = "rotation:rank=4"
        target = "random"
        lr = 1
        partition = { V1 = [0, 1, 2] }
        target_options = { depth = 2 }
    """)
    cfg = ExperimentConfig.from_toml(f)
    assert cfg.alignment == "rotation:rank=4" and cfg.partition == {"V1": [0, 1, 2]} and cfg.lr == 1.0
    assert cfg.hash() == ExperimentConfig.from_dict(cfg.to_dict()).hash()
    assert cfg.hash() == ExperimentConfig(**{**cfg.to_dict(), "lr": 1.0}).hash()  # 1 and 1.0: one run
    assert [c.hash() for c in load_configs(f)] == [cfg.hash()]


def test_sweep_file_grid_linked_axes_nested_keys_and_profiles(tmp_path):
    f = write(tmp_path / "s.toml", """
        name = "demo"
        results = "out/demo.jsonl"
        [base]
        algorithm = "both_equality_relations"
        target = "random"
        n_train = 256
        [grid]
        alignment = ["identity", "rotation"]
        layer = [1, 2, 3]
        target_options.depth = [3]
        "seed,target_seed" = [[0, 0], [1, 1]]
        [profiles.quick]
        base = { n_train = 64 }
        grid = { layer = [1, 1] }
    """)
    spec = load_sweep(f)
    configs = spec.configs()
    assert len(configs) == 2 * 3 * 2 and spec.name == "demo" and spec.results == tmp_path / "out" / "demo.jsonl"
    assert {(c.seed, c.target_seed) for c in configs} == {(0, 0), (1, 1)}
    assert all(c.target_options == {"depth": 3} and c.n_train == 256 for c in configs)
    quick = load_sweep(f, "quick").configs()
    assert len(quick) == 2 * 2  # duplicate layer values give one run each
    assert all(c.n_train == 64 and c.layer == 1 for c in quick)
    with pytest.raises(ConfigError, match="no profile 'slow'"):
        load_sweep(f, "slow")


# --- validation fails before any work, naming the field ----------------------------------
BAD = [
    ({"algorithm": "no_such_task"}, "algorithm"),
    ({"alignment": "no_such_family"}, "alignment"),
    ({"alignment": "rotation:no_such_knob=2"}, "alignment"),
    ({"layer": 9}, "layer"),
    ({"intervention_size": 9}, "intervention_size"),  # 2 variables x 9 > width 16
    ({"partition": {"V1": list(range(10)), "V2": list(range(10, 17))}}, "partition"),
    ({"alignment": "rotation:rank=4", "intervention_size": 4}, "intervention_size"),  # blocks past the rank
    ({"target_options": {"no_such_option": 1}}, "target_options.no_such_option"),
    ({"colour": "blue"}, "colour"),
]


@pytest.mark.parametrize("bad, field", BAD, ids=[f for _, f in BAD])
def test_malformed_configs_fail_before_any_work(tmp_path, monkeypatch, bad, field):
    started = []
    monkeypatch.setattr(sweep_module, "execute", lambda *a, **k: started.append(a))
    f = tmp_path / "bad.toml"
    lines = "\n".join(f"{k} = {json.dumps(v)}" if not isinstance(v, dict) else
                      f"{k} = {{ {', '.join(f'{kk} = {json.dumps(vv)}' for kk, vv in v.items())} }}" for k, v in bad.items())
    write(f, f"[base]\ntarget = \"trained\"\n{lines}\n[grid]\nseed = [0, 1]\n")
    store = tmp_path / "results.jsonl"
    with pytest.raises(ConfigFieldError) as info:
        run_sweep(load_configs(f), store, workers=1)
    assert info.value.field == field and repr(field) in str(info.value)
    if field == "layer":  # still the specific error class, and picklable for worker processes
        import pickle

        from causalab.errors import SiteError

        again = pickle.loads(pickle.dumps(info.value))
        assert isinstance(again, SiteError) and again.field == "layer" and str(again) == str(info.value)
    assert started == [] and not store.exists()
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())  # nothing was trained


def test_validate_trained_target_reads_the_architecture_without_training(tmp_path):
    cfg = ExperimentConfig(target="trained", target_options={"hidden": 8, "samples": 1000}, intervention_size=4, **TINY)
    validate(cfg)
    with pytest.raises(ConfigFieldError, match="hidden width is 8") as info:
        validate(ExperimentConfig(**{**cfg.to_dict(), "intervention_size": 5}))
    assert info.value.field == "intervention_size"
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


# --- determinism -------------------------------------------------------------------------
def test_same_config_and_seed_give_the_same_iia(tmp_path):
    cfg = ExperimentConfig(alignment="rotation", target="trained", target_options={"samples": 20_000, "epoch_size": 10_000},
                           **{**TINY, "epochs": 2})
    a, b = run_experiment(cfg).to_record(), run_experiment(cfg).to_record()
    assert a["test"] == b["test"] and a["train_iia"] == b["train_iia"]
    other = run_experiment(ExperimentConfig(**{**cfg.to_dict(), "seed": 1})).to_record()
    assert other["hash"] != a["hash"]
    assert len(list((tmp_path / "cache").iterdir())) == 1  # trained once, cached


def test_record_names_the_runtime_settings_that_can_change_its_numbers(monkeypatch):
    cfg = ExperimentConfig(alignment="rotation", target="oracle", **{**TINY, "epochs": 1})
    monkeypatch.delenv("CAUSALAB_KV_CACHE_DTYPE", raising=False)
    monkeypatch.delenv("CAUSALAB_KV_CACHE_MB", raising=False)
    monkeypatch.delenv("CAUSALAB_COMPILE", raising=False)
    plain = run_experiment(cfg).to_record()
    assert plain["runtime"] == {"kv_cache_mb": 4096.0, "kv_cache_dtype": "float32", "compile": False}  # the defaults
    monkeypatch.setenv("CAUSALAB_KV_CACHE_DTYPE", "float16")  # from the environment, read once per run
    half = run_experiment(cfg).to_record()
    assert half["runtime"]["kv_cache_dtype"] == "float16"
    given = run_experiment(cfg, runtime=RuntimeSettings(kv_cache_mb=64)).to_record()  # from Python: the argument wins
    assert given["runtime"] == {"kv_cache_mb": 64.0, "kv_cache_dtype": "float32", "compile": False}
    assert half["hash"] == plain["hash"] == given["hash"]  # a setting, not a config field: old files keep their hashes


# --- the results store -------------------------------------------------------------------
def test_a_second_sweep_on_a_results_file_in_use_stops_before_running_anything(tmp_path):
    path = tmp_path / "r.jsonl"
    cfg = ExperimentConfig(alignment="identity", target="oracle", **TINY)
    held = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from causalab.experiments.store import ResultStore
        with ResultStore({str(path)!r}).claim():
            print("held", flush=True)
            time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert held.stdout.readline().strip() == "held"
        with pytest.raises(StoreError, match=f"another sweep \\(pid {held.pid}\\) is writing to .*r.jsonl"):
            sweep_module.run_sweep([cfg], path, workers=1)
        assert not path.exists() or ResultStore(path).records() == []  # nothing ran
    finally:
        held.kill()
        held.wait()
    summary = sweep_module.run_sweep([cfg], path, workers=1)  # the claim died with its process
    assert len(summary.records) == 1 and len(ResultStore(path).records()) == 1
    with ResultStore(path).claim():  # and a finished sweep has let go of it
        pass


def test_store_drops_a_truncated_last_line_and_repairs_it_on_append(tmp_path):
    store = ResultStore(tmp_path / "r.jsonl")
    assert store.records() == []
    assert store.append({"hash": "a", "iia": 0.5}) and store.append({"hash": "b", "iia": 0.6})
    assert not store.append({"hash": "a", "iia": 0.9})  # a recorded hash is never written twice
    with open(store.path, "ab") as f:
        f.write(b'{"hash": "c", "ii')  # a kill in the middle of a write
    assert [r["hash"] for r in store.records()] == ["a", "b"] and store.dropped_partial_line
    assert ResultStore(store.path).append({"hash": "c", "iia": 0.7})
    lines = store.path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and [json.loads(x)["hash"] for x in lines[:-1]] == ["a", "b", "c"]
    store.path.write_bytes(b'{"hash": "a"}\nnot json\n{"hash": "b"}\n')
    with pytest.raises(StoreError, match="line 2"):
        store.records()


# --- sweeps resume -----------------------------------------------------------------------
class Interrupted(Exception):
    pass


def test_interrupted_sweep_resumes_and_records_each_run_once(tmp_path):
    configs = tiny_configs()
    store = ResultStore(tmp_path / "r.jsonl")

    def stop_after(k):
        def progress(event):
            if event.kind == "done" and event.finished >= k:
                raise Interrupted
        return progress

    with pytest.raises(Interrupted):
        run_sweep(configs, store, workers=1, progress=stop_after(3))
    assert len(store.records()) == 3
    summary = run_sweep(configs, store, workers=1)
    assert summary.skipped == 3 and len(summary.records) == len(configs) - 3 and not summary.failed
    hashes = [r["hash"] for r in store.records()]
    assert sorted(hashes) == sorted(c.hash() for c in configs)  # each run exactly once
    again = run_sweep(configs, store, workers=1)
    assert again.skipped == len(configs) and again.records == []


def test_killed_sweep_process_resumes_without_loss_or_duplicates(tmp_path):
    f = write(tmp_path / "s.toml", """
        [base]
        algorithm = "both_equality_relations"
        alignment = "rotation"
        target = "random"
        n_train = 1024
        n_val = 128
        n_test = 128
        epochs = 2
        batch_size = 32
        [grid]
        "seed,target_seed" = [[0, 0], [1, 1], [2, 2], [3, 3], [4, 4], [5, 5]]
    """)
    results = tmp_path / "r.jsonl"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "causalab.cli", "sweep", str(f), "--results", str(results), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if results.exists() and results.read_bytes().count(b"\n") >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    recorded = len(ResultStore(results).records())
    configs = load_configs(f)
    assert 2 <= recorded < len(configs)  # killed mid-sweep
    summary = run_sweep(configs, results, workers=1)
    hashes = [r["hash"] for r in ResultStore(results).records()]
    assert len(hashes) == len(set(hashes)) == len(configs) and summary.skipped == recorded


# --- executors agree ---------------------------------------------------------------------
def _iia(records):
    return {r["hash"]: r["test"] for r in records}


def test_local_process_pool_records_the_same_results_as_in_process(tmp_path):
    configs = tiny_configs(1)[1:3]
    serial = run_sweep(configs, tmp_path / "a.jsonl", workers=1)
    pooled = run_sweep(configs, tmp_path / "b.jsonl", workers=2)
    assert _iia(serial.records) == _iia(pooled.records) and len(pooled.records) == 2


def test_ray_executor_records_the_same_results_as_local(tmp_path):
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'causalab[ray]')")
    configs = [c for c in tiny_configs() if c.alignment == "rotation" and c.target == "random"]
    assert len(configs) == 2
    local = run_sweep(configs, tmp_path / "local.jsonl", workers=1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    try:
        remote = run_sweep(configs, tmp_path / "ray.jsonl", executor="ray")
    finally:
        ray.shutdown()
    assert not remote.failed and _iia(remote.records) == _iia(local.records)
    assert sorted(r["hash"] for r in ResultStore(tmp_path / "ray.jsonl").records()) == sorted(c.hash() for c in configs)


# --- reports -----------------------------------------------------------------------------
def fake_record(iia: float, **config) -> dict:
    cfg = ExperimentConfig(**config)
    return {"config": cfg.to_dict(), "hash": cfg.hash(), "iia": iia, "num_parameters": 256 if "rotation" in cfg.alignment else 0,
            "test": {"overall": {"iia": iia, "n": 100, "ci_low": iia - 0.05, "ci_high": iia + 0.05},
                     "per_set": {"V1": {"iia": iia, "n": 50, "ci_low": 0, "ci_high": 1}}}}


def test_report_tables_and_figures_with_their_numbers(tmp_path):
    records = [
        fake_record(0.5 + 0.1 * s + 0.01 * layer + (0.2 if al == "rotation" else 0), alignment=al, target=tg, layer=layer,
                    seed=s, target_seed=s, target_options={"samples": samples} if tg == "trained" else {})
        for al in ("identity", "rotation") for tg in ("trained", "random") for layer in (1, 2) for s in (0, 1)
        for samples in ((1000, 10_000) if tg == "trained" else (None,))
    ]
    summary = summarize(records, by=["alignment", "target", "layer"])
    row = next(s for s in summary if s.key == {"alignment": "identity", "target": "random", "layer": 1})
    assert row.n == 2 and row.stats["iia"]["mean"] == pytest.approx(0.56) and row.stats["iia"]["std"] == pytest.approx(0.0707, abs=1e-4)
    assert "| alignment |" in summary_table(records, by=["alignment"]) and "layer 2" in layer_table(records)
    files = write_report(records, tmp_path / "report")
    for name in ("summary", "summary_csv", "runs_csv", "layers", "iia_vs_complexity", "iia_vs_complexity_csv",
                 "iia_vs_training", "iia_vs_training_json"):
        assert files[name].exists() and files[name].stat().st_size > 0, name
    points = json.loads(files["iia_vs_training_json"].read_text())
    assert points["x"] == "target_options.samples" and {p["target_options.samples"] for p in points["points"]} == {1000, 10_000}
    assert files["iia_vs_complexity"].read_bytes()[:4] == b"\x89PNG"


def test_learning_curves_from_the_records_history(tmp_path):
    from causalab.experiments.figures import learning_curves_figure

    def history(rate):
        return [{"epoch": 0, "train_iia": 0.5, "val_iia": 0.5, "val_loss": 1.0}] + [
            {"epoch": e, "steps": 10 * e, "train_iia": 0.5 + rate * e, "val_iia": 0.5 + rate * e / 2, "val_loss": 1.0 / (1 + e)}
            for e in (1, 2, 3)]

    records = [{**fake_record(0.6, alignment=al, seed=s, target_seed=s), "history": history(rate)}
               for al, rate in (("identity", 0.01), ("rotation", 0.1)) for s in (0, 1)]
    files = learning_curves_figure(records, tmp_path / "curves")
    assert files["curves"].read_bytes()[:4] == b"\x89PNG"
    points = json.loads(files["curves_json"].read_text())["points"]
    assert len(points) == 4 * 4 and [p["steps"] for p in points[:4]] == [0, 10, 20, 30]
    # runs are told apart by what differs between them, seeds included (target_seed repeats seed here)
    assert {p["run"] for p in points} == {f"alignment={al}, seed={s}" for al in ("identity", "rotation") for s in (0, 1)}
    last = next(p for p in points if p["run"] == "alignment=rotation, seed=1" and p["steps"] == 30)
    assert last["val_iia"] == pytest.approx(0.65) and last["train_iia"] == pytest.approx(0.8) and last["val_loss"] == 0.25
    apart = [{**r, "config": {**r["config"], "target_seed": 7}} if i == 0 else r for i, r in enumerate(records)]
    runs = {p["run"] for p in json.loads(learning_curves_figure(apart, tmp_path / "apart")["apart_json"].read_text())["points"]}
    assert "alignment=identity, seed=0, target_seed=7" in runs  # kept once it no longer repeats seed
    # a single evaluation, or none, is no curve
    assert learning_curves_figure([{**records[0], "history": history(0.1)[:1]}, fake_record(0.5)], tmp_path / "none") == {}
    assert "learning_curves" in write_report(records, tmp_path / "report")


# --- the command line --------------------------------------------------------------------
def test_cli_sweep_resume_report_and_run_config(tmp_path, capsys):
    from causalab.cli.main import main

    f = write(tmp_path / "s.toml", f"""
        [base]
        algorithm = "both_equality_relations"
        target = "oracle"
        {chr(10).join(f"{k} = {v}" for k, v in TINY.items())}
        [grid]
        alignment = ["identity", "rotation"]
    """)
    results = tmp_path / "r.jsonl"
    assert main(["sweep", str(f), "--results", str(results), "--workers", "1"]) == 0
    assert main(["sweep", str(f), "--results", str(results), "--workers", "1"]) == 0
    assert "2 already recorded, 0 ran" in capsys.readouterr().out
    assert main(["report", str(results), "--out", str(tmp_path / "rep"), "--format", "plain"]) == 0
    assert "identity" in capsys.readouterr().out and (tmp_path / "rep" / "summary.txt").exists()
    one = write(tmp_path / "one.toml", 'alignment = "identity"\ntarget = "oracle"\n' + "\n".join(f"{k} = {v}" for k, v in TINY.items()))
    assert main(["run", "--config", str(one), "--n-test", "200"]) == 0
    assert "test pairs per run: 200" in capsys.readouterr().out
    bad = write(tmp_path / "bad.toml", "[base]\nalignment = \"nope\"\n")
    assert main(["sweep", str(bad), "--results", str(tmp_path / "x.jsonl")]) == 2
    assert "config field 'alignment'" in capsys.readouterr().err


def test_fields_added_later_keep_old_hashes_until_set():
    # the default config's hash from before `monitor` existed: stored results stay valid
    assert ExperimentConfig().hash() == "f94f5b71532225d9"
    assert ExperimentConfig(monitor="loss").hash() != ExperimentConfig().hash()
    with pytest.raises(ConfigFieldError, match="'monitor'"):
        ExperimentConfig(monitor="accuracy")
