"""Runs, sweeps and the command line save the fitted maps; the record names the file, and the hash ignores it."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch

import causalab as cl
from causalab.errors import SavedAlignmentError
from causalab.experiments import ExperimentConfig, ResultStore, expand_grid, run_experiment, run_sweep
from causalab.fit.measure import draw_pairs

TINY = {"n_train": 128, "n_val": 64, "n_test": 128, "epochs": 1, "batch_size": 64}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CAUSALAB_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(1)


def test_run_experiment_saves_the_fitted_map(tmp_path):
    config = ExperimentConfig(algorithm="both_equality_relations", alignment="rotation:rank=12", target="oracle",
                              intervention_size=6, **TINY)
    record = run_experiment(config, save_map=tmp_path / "maps").to_record()
    assert record["hash"] == config.hash()
    assert record["map_file"] == str((tmp_path / "maps" / f"{config.hash()}.safetensors").absolute())
    saved = cl.load_alignment(record["map_file"], width=record["width"])
    assert saved.config_hash == config.hash() and saved.spec == "rotation:rank=12"
    assert saved.partition.blocks == {"V1": tuple(range(6)), "V2": tuple(range(6, 12))}
    assert saved.map.num_parameters == record["num_parameters"]
    # the file holds the fitted map, not a fresh one: it scores the record's test IIA on the run's test pairs
    task = cl.make_task(config.algorithm)
    test = draw_pairs(task, config.measure)[2]
    target, site = cl.build_target(task, "oracle", 0), cl.Site(config.layer)
    iia = cl.evaluate(target, site, saved.map, saved.partition, task, cl.prepare(target, site, task, test)).iia
    assert iia == record["iia"]
    assert "map_file" not in run_experiment(config).to_record()  # nothing saved, no field


def test_a_sweep_saves_every_map_and_its_records_name_them(tmp_path):
    configs = expand_grid({"algorithm": "both_equality_relations", "target": "oracle", **TINY},
                          {"alignment": ["identity", "revnet:blocks=1,hidden=8"]})
    store = tmp_path / "r.jsonl"
    summary = run_sweep(configs, store, workers=1, save_maps=tmp_path / "maps")
    records = ResultStore(store).records()
    assert len(records) == 2 and not summary.failed
    for config, record in zip(configs, records):
        assert record["hash"] == config.hash()  # the map's file enters no hash
        assert record["map_file"].endswith(f"maps/{config.hash()}.safetensors")
        assert cl.load_alignment(record["map_file"]).config_hash == config.hash()
    assert run_sweep(configs, store, workers=1, save_maps=tmp_path / "maps").skipped == 2  # resumes as before
    (tmp_path / "a_file").write_text("")
    with pytest.raises(SavedAlignmentError, match="is a file; give a folder"):
        run_sweep(configs, tmp_path / "other.jsonl", workers=1, save_maps=tmp_path / "a_file")


def test_command_line_saves_maps(tmp_path, capsys):
    from causalab.cli.main import main

    fields = "\n".join(f"{k} = {v}" for k, v in TINY.items())
    one = tmp_path / "one.toml"
    one.write_text(f'alignment = "rotation"\ntarget = "oracle"\n{fields}\n')
    out = tmp_path / "run.jsonl"
    assert main(["run", "--config", str(one), "--save-maps", str(tmp_path / "run-maps"), "--json", str(out)]) == 0
    assert "fitted maps saved in" in capsys.readouterr().out
    record = json.loads(out.read_text())
    assert cl.load_alignment(record["map_file"]).config_hash == record["hash"]

    sweep = tmp_path / "s.toml"
    sweep.write_text(textwrap.dedent(f"""
        save_maps = "sweep-maps"
        [base]
        algorithm = "both_equality_relations"
        target = "oracle"
        {fields.replace(chr(10), chr(10) + '        ')}
        [grid]
        alignment = ["identity", "rotation"]
    """))
    results = tmp_path / "s.jsonl"
    assert main(["sweep", str(sweep), "--results", str(results), "--workers", "1"]) == 0  # the file's key
    assert "fitted maps in" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "sweep-maps").iterdir()) == sorted(
        f"{r['hash']}.safetensors" for r in ResultStore(results).records())
    results2 = tmp_path / "s2.jsonl"
    assert main(["sweep", str(sweep), "--results", str(results2), "--workers", "1", "--save-maps", str(tmp_path / "cli-maps")]) == 0
    assert all(r["map_file"].startswith(str(tmp_path / "cli-maps")) for r in ResultStore(results2).records())
    (tmp_path / "a_file").write_text("")
    assert main(["run", "--config", str(one), "--save-maps", str(tmp_path / "a_file")]) == 2
    assert "is a file; give a folder" in capsys.readouterr().err
