"""Runtime settings: read once (environment, Python argument, command line), checked once, recorded, never hashed."""

import dataclasses

import pytest
import torch

from algorithms import ioi, ioi_models
from algorithms import ioi_data as data
from causalab.cli.main import main
from causalab.errors import ConfigError, RuntimeSettingError
from causalab.experiments.store import load_records
from causalab.fit.fitting import prepare
from causalab.neural.lm import random_lm
from causalab.neural.target import Site
from causalab.runtime import ENV, RuntimeSettings


@pytest.fixture
def clean_env(monkeypatch):
    for name in ENV.values():
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults_environment_and_overrides(clean_env):
    assert RuntimeSettings.from_env() == RuntimeSettings() == RuntimeSettings(4096, "float32", False, 1)
    env = {"CAUSALAB_KV_CACHE_MB": "512", "CAUSALAB_KV_CACHE_DTYPE": "float16", "CAUSALAB_COMPILE": "1",
           "CAUSALAB_THREADS": "3"}
    assert RuntimeSettings.from_env(env) == RuntimeSettings(512.0, "float16", True, 3)
    # an override wins; None is no override (an option not given)
    assert RuntimeSettings.from_env(env, kv_cache_mb=0, compile=False, threads=None) == RuntimeSettings(0.0, "float16", False, 3)
    clean_env.setenv("CAUSALAB_KV_CACHE_DTYPE", "bfloat16")
    settings = RuntimeSettings.from_env()
    assert settings.kv_cache_torch_dtype == torch.bfloat16
    assert settings.to_record() == {"kv_cache_mb": 4096.0, "kv_cache_dtype": "bfloat16", "compile": False}
    with pytest.raises(dataclasses.FrozenInstanceError):  # frozen
        settings.compile = True


@pytest.mark.parametrize("env, match", [
    ({"CAUSALAB_KV_CACHE_MB": "lots"}, "CAUSALAB_KV_CACHE_MB must be a number of MiB, got 'lots'"),
    ({"CAUSALAB_KV_CACHE_MB": "-1"}, r"CAUSALAB_KV_CACHE_MB must be >= 0 \(0 turns the cache off\)"),
    ({"CAUSALAB_KV_CACHE_DTYPE": "int8"}, "CAUSALAB_KV_CACHE_DTYPE must be one of float32, float16, bfloat16, got 'int8'"),
    ({"CAUSALAB_COMPILE": "yes"}, r"CAUSALAB_COMPILE must be 0 .* or 1 .*'yes'"),
    ({"CAUSALAB_THREADS": "two"}, r"\$CAUSALAB_THREADS must be a positive integer"),
])
def test_a_bad_environment_variable_is_named_with_its_valid_values(env, match):
    with pytest.raises(RuntimeSettingError, match=match) as info:
        RuntimeSettings.from_env(env)
    assert isinstance(info.value, ConfigError) and ENV[info.value.setting] in env


@pytest.mark.parametrize("kw, setting", [
    ({"kv_cache_mb": -5}, "kv_cache_mb"), ({"kv_cache_mb": "big"}, "kv_cache_mb"), ({"kv_cache_mb": float("nan")}, "kv_cache_mb"),
    ({"kv_cache_dtype": "float64"}, "kv_cache_dtype"), ({"compile": "1"}, "compile"), ({"threads": 0}, "threads"),
    ({"threads": True}, "threads"),
])
def test_a_bad_argument_is_named_with_its_valid_values(kw, setting):
    with pytest.raises(RuntimeSettingError, match=f"runtime setting {setting} must be") as info:
        RuntimeSettings(**kw)
    assert info.value.setting == setting
    with pytest.raises(RuntimeSettingError, match="unknown runtime setting 'kv_cache_gb'"):
        RuntimeSettings.from_env({}, kv_cache_gb=1)


def test_prepare_takes_the_settings_as_an_argument_over_the_environment(clean_env):
    task = ioi.ioi_pattern_task()
    lm = random_lm(len(data.VOCAB), arch="gpt_neox", size="tiny", seed=0, tokenizer=ioi_models.tokenizer())
    site = Site(1, "last")
    d = task.counterfactuals(16, torch.Generator().manual_seed(0))
    clean_env.setenv("CAUSALAB_KV_CACHE_MB", "0")
    assert prepare(lm, site, task, d).resume.kind == "recompute"  # none given: the environment's
    given = prepare(lm, site, task, d, runtime=RuntimeSettings(kv_cache_dtype="float16", compile=True))
    assert given.resume.kind == "window" and given.resume.compile and given.resume.rows(slice(0, 4)).compile
    assert given.resume.keys_values["keys_0"].dtype == torch.float16
    clean_env.setenv("CAUSALAB_KV_CACHE_MB", "nonsense")  # the settings given are the only ones read
    assert prepare(lm, site, task, d, runtime=RuntimeSettings()).resume.kind == "window"


def test_the_command_line_options_set_the_runtime_and_the_record_keeps_it(tmp_path, clean_env, capsys):
    clean_env.setenv("CAUSALAB_KV_CACHE_DTYPE", "float16")
    args = ["run", "--algorithm", "left_equality_relation", "--target", "oracle", "--alignment", "identity",
            "--n-train", "100", "--n-val", "50", "--n-test", "100", "--epochs", "1"]
    assert main([*args, "--kv-cache-mb", "64", "--compile", "--json", str(tmp_path / "r.jsonl")]) == 0
    (record,) = load_records(tmp_path / "r.jsonl")
    assert record["runtime"] == {"kv_cache_mb": 64.0, "kv_cache_dtype": "float16", "compile": True}
    assert main([*args, "--no-compile", "--json", str(tmp_path / "s.jsonl")]) == 0
    (other,) = load_records(tmp_path / "s.jsonl")
    assert other["runtime"]["compile"] is False and other["hash"] == record["hash"]
    capsys.readouterr()
    assert main([*args, "--kv-cache-dtype", "int8"]) == 2
    assert "runtime setting kv_cache_dtype must be one of float32, float16, bfloat16, got 'int8'" in capsys.readouterr().err
    assert main([*args, "--kv-cache-mb", "-1"]) == 2
    assert "runtime setting kv_cache_mb must be a number of MiB >= 0" in capsys.readouterr().err


def test_the_docstring_examples_run():
    import doctest

    import causalab.runtime

    assert doctest.testmod(causalab.runtime).failed == 0


def test_a_sweep_hands_its_runtime_options_to_its_workers(tmp_path, clean_env):
    for name in ENV.values():  # the command exports them for its workers; put back after the test
        clean_env.setenv(name, "")
    sweep = tmp_path / "tiny.toml"
    sweep.write_text('[base]\nalgorithm = "left_equality_relation"\ntarget = "oracle"\nalignment = "identity"\n'
                     'n_train = 100\nn_val = 50\nn_test = 100\nepochs = 1\n[grid]\nseed = [0, 1]\n')
    results = tmp_path / "r.jsonl"
    assert main(["sweep", str(sweep), "--results", str(results), "--workers", "2", "--kv-cache-mb", "64",
                 "--kv-cache-dtype", "bfloat16"]) == 0
    records = load_records(results)
    assert len(records) == 2
    assert all(r["runtime"] == {"kv_cache_mb": 64.0, "kv_cache_dtype": "bfloat16", "compile": False} for r in records)
    assert main(["sweep", str(sweep), "--results", str(tmp_path / "bad.jsonl"), "--compile", "--threads", "0"]) == 2
