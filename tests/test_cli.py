"""The command line: run prints a table, list shows the registries, bad names are clear errors."""

import re

from causalab.cli.main import main
from causalab.maps.spec import AlignmentSpec


def test_run_prints_a_table(capsys):
    code = main(["run", "--algorithm", "left_equality_relation", "--target", "oracle", "--alignment", "identity",
                 "--n-train", "500", "--n-val", "200", "--n-test", "500"])
    out = capsys.readouterr().out
    assert code == 0
    assert "left_equality_relation" in out and "1.000" in out and "95% CI" in out


def test_list(capsys):
    assert main(["list", "alignments"]) == 0
    out = capsys.readouterr().out
    assert "identity" in out and "rotation" in out and "rank" in out
    assert main(["list", "algorithms"]) == 0
    out = capsys.readouterr().out
    assert "both_equality_relations" in out and "identity_of_first_argument" in out


def test_unknown_names_are_reported_without_a_traceback(capsys):
    assert main(["run", "--alignment", "spin"]) == 2
    assert "unknown alignment 'spin'" in capsys.readouterr().err
    assert main(["run", "--algorithm", "nope"]) == 2
    assert "unknown algorithm 'nope'" in capsys.readouterr().err


def test_spec_splitting_keeps_knob_lists_together():
    assert AlignmentSpec.split("identity,rotation:rank=4") == ["identity", "rotation:rank=4"]
    assert AlignmentSpec.split("revnet:blocks=2,hidden=8;rotation") == ["revnet:blocks=2,hidden=8", "rotation"]


def test_dilemma_command_runs_a_profile_and_says_where_it_wrote(tmp_path, capsys):
    code = main(["dilemma", "--profile", "smoke", "--out", str(tmp_path), "--experiment", "mlp_maps"])
    out, err = capsys.readouterr()
    # stderr is not a terminal here: one progress line per finished run, with elapsed time (and time left)
    lines = re.findall(r"^mlp_maps: (\d+)/(\d+) runs \(\d+%\) in \d+:\d\d(, ~\d+:\d\d left)?; last: ", err, re.M)
    assert [int(done) for done, _, _ in lines] == list(range(1, int(lines[0][1]) + 1))
    assert all(left for _, _, left in lines[:-1]) and not lines[-1][2]
    assert code == 0
    assert "mlp_maps" in out and str(tmp_path) in out
    assert (tmp_path / "mlp_maps" / "results.jsonl").exists()
    assert any(tmp_path.rglob("*.png"))


def test_dilemma_rejects_an_unknown_profile(capsys):
    assert main(["dilemma", "--profile", "huge"]) == 2
    assert "unknown dilemma profile 'huge'" in capsys.readouterr().err


def test_run_json_appends_records_through_the_results_store(tmp_path, capsys):
    from causalab.experiments.store import load_records

    args = ["run", "--algorithm", "left_equality_relation", "--target", "oracle", "--alignment", "identity;rotation",
            "--n-train", "200", "--n-val", "100", "--n-test", "200", "--epochs", "1", "--json", str(tmp_path / "r.jsonl")]
    assert main(args) == 0
    assert "2 records appended" in capsys.readouterr().out
    first = load_records(tmp_path / "r.jsonl")
    assert [r["config"]["alignment"] for r in first] == ["identity", "rotation"]
    assert main(args) == 0  # the same runs again: recorded once
    assert "0 records appended to" in capsys.readouterr().out
    assert [r["hash"] for r in load_records(tmp_path / "r.jsonl")] == [r["hash"] for r in first]


def test_a_plugin_module_in_the_working_folder_is_found_without_pythonpath(tmp_path, monkeypatch, capsys):
    """``causalab --plugin mymodule`` from the folder holding mymodule.py, as ``python -m`` would find it."""
    import os
    import sys

    from causalab.registry import ALGORITHMS

    (tmp_path / "my_cwd_plugin.py").write_text(
        "import dataclasses\nimport causalab as cl\n\n"
        "@cl.register_algorithm('cwd_plugin_equality')\n"
        "def task() -> cl.Task:\n"
        "    return dataclasses.replace(cl.make_task('left_equality_relation'), name='cwd_plugin_equality')\n")
    ALGORITHMS.names()  # the built-ins loaded, so that the copy below holds them
    monkeypatch.setattr(ALGORITHMS, "_items", dict(ALGORITHMS._items))
    monkeypatch.setattr(sys, "path", [p for p in sys.path if os.path.abspath(p or os.curdir) != str(tmp_path)])
    monkeypatch.delitem(sys.modules, "my_cwd_plugin", raising=False)
    monkeypatch.chdir(tmp_path)
    try:
        assert main(["--plugin", "my_cwd_plugin", "list", "algorithms"]) == 0
    finally:
        sys.modules.pop("my_cwd_plugin", None)
    assert "cwd_plugin_equality" in capsys.readouterr().out


def test_every_scalar_config_field_has_an_option_of_its_own():
    import causalab as cl
    from causalab.cli.main import NOT_SCALAR, SCALAR_OPTIONS, _field, build_parser

    flags = {_field(flag) for flag, _ in SCALAR_OPTIONS}
    assert flags | set(NOT_SCALAR) == set(cl.ExperimentConfig.field_names())
    args = build_parser().parse_args(["run", "--max-steps", "7", "--plateau-factor", "0.25", "--validate-on", "train"])
    assert (args.max_steps, args.plateau_factor, args.validate_on) == (7, 0.25, "train")
