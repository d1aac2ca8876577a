"""The dilemma benchmark: its sweep files are valid before any work, and a miniature run reports."""

import json

import pytest

import algorithms  # noqa: F401  (registers the tasks)
import alignments  # noqa: F401  (registers the maps)
from causalab.dilemma import EXPERIMENTS, PROFILES, configs_dir, load_profile, run_dilemma
from causalab.errors import ConfigError, ConfigFieldError
from causalab.experiments.store import load_records


@pytest.mark.parametrize("profile", PROFILES)
def test_profiles_parse_and_validate(profile):
    configs, skipped = load_profile(profile)  # validates every config: names, knobs, layers, partitions
    for name in ("mlp_maps", "progression"):
        assert configs[name], f"{name} has no {profile} runs"
    for name, reason in skipped.items():
        assert name in {e.name for e in EXPERIMENTS if e.optional} or "no " in reason
    if profile == "quick":
        targets = {c.target for c in configs["mlp_maps"]}
        maps = {c.alignment.split(":")[0] for c in configs["mlp_maps"]}
        assert targets == {"trained", "random"} and {"rotation", "revnet"} <= maps
        assert 0 in {c.target_options["checkpoint"] for c in configs["progression"]}
        ioi = configs["ioi_scale"]  # the IOI panel: a trained LM and random LMs, shared and disjoint names
        assert {c.target for c in ioi} == {"trained", "random"}
        assert {c.algorithm for c in ioi} == {"ioi_pattern", "ioi_pattern_disjoint"}
        assert {c.alignment.split(":")[0] for c in ioi} == {"rotation", "revnet"}
    else:
        assert {c.layer for c in configs["mlp_maps"]} == {1, 2, 3}
        assert len({c.seed for c in configs["mlp_maps"]}) == 3
        assert {c.algorithm for c in configs["mlp_maps"]} == {
            "both_equality_relations", "left_equality_relation", "identity_of_first_argument", "and_or_and", "and_or"}
        assert {c.alignment for c in configs["hidden_size"]} == {f"revnet:blocks=1,hidden={h}" for h in range(1, 17)}


def test_every_sweep_file_is_an_experiment():
    files = {p.stem for p in configs_dir().glob("*.toml")}
    assert files == {e.name for e in EXPERIMENTS}


def test_invalid_config_fails_before_work(tmp_path):
    for exp in EXPERIMENTS:
        (tmp_path / f"{exp.name}.toml").write_text((configs_dir() / f"{exp.name}.toml").read_text())
    text = (tmp_path / "mlp_maps.toml").read_text().replace('"revnet:blocks=1,hidden=16"', '"revnet:blocks=1,width=16"', 1)
    (tmp_path / "mlp_maps.toml").write_text(text)
    with pytest.raises(ConfigFieldError) as info:
        load_profile("full", tmp_path)
    assert info.value.field == "alignment"
    with pytest.raises(ConfigError, match="unknown dilemma profile"):
        load_profile("medium")


def test_miniature_run_writes_results_figures_tables_and_resumes(tmp_path):
    out = tmp_path / "dilemma"
    events = []
    summary = run_dilemma("smoke", out, workers=1, progress=lambda name, ev: events.append((name, ev.kind)))
    assert not summary.failed
    assert summary.runs == 19 and summary.recorded == 0
    assert ("mlp_maps", "done") in events
    for name in ("mlp_maps", "progression", "hidden_size", "ioi_scale", "ioi_steps", "ioi_one_pattern", "ioi_regime"):
        records = load_records(summary.results[name])
        assert records and all(0.0 <= r["iia"] <= 1.0 for r in records)
    assert summary.figures["dilemma"].exists() and summary.figures["dilemma"].stat().st_size > 1000
    assert summary.figures["progression/iia_vs_training_layer1"].exists()
    points = json.loads((out / "dilemma.json").read_text())["points"]
    assert {p["panel"] for p in points} == {"maps", "progression", "ioi"}
    ioi = [p for p in points if p["panel"] == "ioi"]  # the regime panel: fixed vs random name roles
    assert {(p["names"], p["alignment"]) for p in ioi} == {
        (f"{roles} roles, shared names", "revnet:blocks=1,hidden=8") for roles in ("fixed", "random")}
    assert "| target" in summary.table and "### progression" in summary.table and "### ioi_scale" in summary.table
    assert (out / "tables.md").read_text() == summary.table
    assert summary.seconds > 0
    # the scores follow the IIA tables; the IOI experiments did not run, and the report says so
    assert "### scores" in summary.table and "selectivity vs control networks" in summary.table
    assert "- ioi_progression: no scores (" in summary.table
    assert "- ioi_scale: no scores (no runs with both a real network and its controls)." in summary.table
    assert summary.figures["scores/scores_figure"].stat().st_size > 1000
    rows = json.loads((out / "scores" / "scores.json").read_text())["rows"]
    assert [r["map"] for r in rows] == ["rotation", "revnet:blocks=1,hidden=4", "constructed"]
    assert rows[0]["selectivity_algorithm"] is not None and rows[0]["ood_gap"] is not None
    measured = (out / "scores" / "measurements.jsonl").read_text()
    again = run_dilemma("smoke", out, workers=1)  # resumes: nothing left to run or measure
    assert again.runs == 0 and again.recorded == 19
    assert (out / "scores" / "measurements.jsonl").read_text() == measured and again.table == summary.table
    assert "### scores" not in run_dilemma("smoke", out, workers=1, scores=False).table


def test_committed_records_keep_their_hashes_and_belong_to_their_sweep():
    from pathlib import Path

    from causalab.experiments.config import ExperimentConfig, read_toml
    from causalab.experiments.grid import load_sweep

    results = Path(__file__).resolve().parent.parent / "benchmarks" / "dilemma" / "results"
    sweep_of = {"one_variable_stopping": "one_variable_seeds"}  # a profile of another file, its own records
    # benchmarks/ioi_pattern_probe.py --out (ioi_pattern_probe, ioi_regime_probe) and benchmarks/ioi_controls.py --out:
    # records of their own, no config
    not_sweeps = {"ioi_pattern_probe", "ioi_controls", "ioi_regime_probe"}
    files = sorted(results.glob("*.jsonl"))
    assert {"mlp_seeds", "ioi_scale", "ioi_steps", "progression_seeds"} <= {f.stem for f in files}
    for path in files:
        if path.stem in not_sweeps:
            continue
        sweep = configs_dir() / f"{sweep_of.get(path.stem, path.stem)}.toml"
        assert sweep.exists(), f"{path.name} has no sweep file"
        hashes = {c.hash() for profile in read_toml(sweep)["profiles"] for c in load_sweep(sweep, profile).configs()}
        records = load_records(path)
        assert records
        for r in records:
            assert ExperimentConfig.from_dict(r["config"]).hash() == r["hash"], f"{path.name}: {r['hash']}"
        assert {r["hash"] for r in records} <= hashes, f"{path.name} holds runs no profile of {sweep.name} lists"


def _ioi_record(hash_, width, n_train, seed=0, algorithm="ioi_pattern", alignment="revnet:blocks=8,hidden=64", iia=0.5):
    history = [{"epoch": e, "steps": 100 * e, "val_iia": 0.5 + 0.01 * e, "train_iia": 0.5} for e in range(3)]
    return {"hash": hash_, "width": width, "iia": iia, "train_iia": 0.6, "steps": 200, "history": history,
            "test": {"overall": {"iia": iia, "ci_low": iia - 0.01, "ci_high": iia + 0.01}},
            "config": {"algorithm": algorithm, "target": "random", "alignment": alignment, "n_train": n_train,
                       "seed": seed, "intervention_size": width // 2, "loss": "task"}}


def test_ioi_scaling_figure_plots_the_shared_names_fits_beside_the_read_out(tmp_path):
    from causalab.dilemma.figures import ioi_scaling_figure

    records = [_ioi_record("a", 128, 20_000), _ioi_record("b", 128, 100_000), _ioi_record("c", 128, 100_000, seed=1),
               _ioi_record("d", 256, 100_000, iia=0.52),
               _ioi_record("x", 128, 100_000, algorithm="ioi_pattern_disjoint"),  # other names split: not a point
               _ioi_record("y", 128, 100_000, alignment="rotation")]  # other map: not a point
    probes = [{"width": 128, "sentences": n, "probe_test_accuracy": acc} for n, acc in ((40_000, 0.7), (200_000, 0.85))]
    probes.append({"width": 256, "sentences": 200_000, "probe_test_accuracy": 0.8})
    files = ioi_scaling_figure(records, probes, tmp_path / "scaling")
    assert files["scaling"].stat().st_size > 0
    points = json.loads(files["scaling_json"].read_text())["points"]
    fits = [p for p in points if p.get("series") != "probe"]
    assert {p["hash"] for p in fits} == {"a", "b", "c", "d"}
    assert sorted(p["sentences"] for p in fits if p["panel"] == "(a)") == [40_000, 200_000, 200_000]  # two per pair
    assert sorted(p["width"] for p in fits if p["panel"] == "(b)") == [128, 128, 256]  # 100k pairs only
    read_out = {(p["panel"], p["width"], p["sentences"]): p["probe_test_accuracy"] for p in points if p.get("series") == "probe"}
    assert read_out == {("(a)", 128, 40_000): 0.7, ("(a)", 128, 200_000): 0.85,  # panel (a): its width only
                        ("(b)", 128, 200_000): 0.85, ("(b)", 256, 200_000): 0.8}  # panel (b): as many sentences as fitted
    assert next(p for p in fits if p["hash"] == "d")["test_iia"] == 0.52
    assert ioi_scaling_figure(records[4:], probes, tmp_path / "none") == {}  # nothing qualifies: no figure
    with pytest.raises(ConfigError, match="probe record 1 lacks probe_test_accuracy"):  # a sweep record is no probe
        ioi_scaling_figure(records, [probes[0], {"width": 128, "sentences": 10}], tmp_path / "bad")


def test_ioi_scaling_script_draws_the_committed_records(tmp_path):
    from conftest import load_benchmark

    script = load_benchmark("ioi_scaling")
    assert script.main(["--out", str(tmp_path / "fig" / "scaling")]) == 0
    points = json.loads((tmp_path / "fig" / "scaling.json").read_text())["points"]
    assert {p["width"] for p in points if p["panel"] == "(b)"} >= {128, 256, 512}  # the committed width axis
    other = tmp_path / "rotation.jsonl"
    other.write_text(json.dumps(_ioi_record("r", 128, 100_000, alignment="rotation")) + "\n")
    assert script.main(["--records", str(other), "--out", str(tmp_path / "x")]) == 1  # no qualifying fit: said, exit 1
    with pytest.raises(SystemExit):  # a missing results file: a usage error naming it
        script.main(["--records", str(tmp_path / "missing.jsonl")])
