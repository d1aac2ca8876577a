"""The dilemma's scores from records: the library's selectivity on the recorded counts, the frontier, missing IOI."""

import pytest

from causalab.dilemma.scores import SOURCES, group_text, record_groups, record_measurement, score_rows, write_scores
from causalab.fit.fitting import FitResult
from causalab.fit.measure import Measurement
from causalab.fit.metrics import IIAResult, Score
from causalab.scores import selectivity

MLP, IOI, IOI_SCALE, IOI_STEPS, IOI_REGIME = SOURCES


def record(target, alignment, iia, n, params, *, seed=0, step=None, algorithm="both_equality_relations"):
    options = {} if step is None else {"step": step}
    return {"config": {"algorithm": algorithm, "layer": 1, "target": target, "target_seed": seed, "seed": seed,
                       "alignment": alignment, "n_train": 100, "target_options": options},
            "test": {"overall": {"iia": iia, "n": n}, "per_set": {"V1": {"iia": iia, "n": n}}},
            "train_iia": 0.5, "num_parameters": params, "hash": f"{target}{alignment}{seed}{step}"}


def measurement(correct, n):
    return Measurement("m", 0, IIAResult(Score(0, 1)), IIAResult(Score(correct, n)), FitResult(0.0, 0, 0, False))


def test_record_selectivity_is_the_library_selectivity_on_the_recorded_counts():
    recs = [record("trained", "rotation", 0.926, 4000, 256), record("random", "rotation", 0.481, 4000, 256),
            record("trained", "revnet", 0.994, 4000, 5600), record("random", "revnet", 0.639, 4000, 5600)]
    (group,) = record_groups(MLP, recs, threshold=0.9)
    for spec, real, control in (("rotation", 3704, 1924), ("revnet", 3976, 2556)):
        ours = group.maps[spec]["selectivity"].difference
        theirs = selectivity(measurement(real, 4000), [measurement(control, 4000)]).difference
        assert ours.estimate == pytest.approx(theirs.estimate) and ours.interval == pytest.approx(theirs.interval)
    assert group.frontier.real_complexity == 256 and group.frontier.control_complexity is None


def test_controls_over_seeds_are_pooled_and_seeds_of_the_real_network_summed():
    recs = [record("trained", "rotation", 0.9, 1000, 256, seed=s) for s in (0, 1)]
    recs += [record("random", "rotation", iia, 1000, 256, seed=s) for s, iia in ((0, 0.5), (1, 0.7))]
    (group,) = record_groups(MLP, recs, threshold=0.9)
    sel = group.maps["rotation"]["selectivity"]
    assert sel.real_score == Score(1800, 2000) and sel.difference.b == Score(1200, 2000)
    assert len(group.frontier.controls) == 2 and group.frontier.control_complexity is None
    assert record_measurement(recs[:2]).test.per_set["V1"] == Score(1800, 2000)


def test_ioi_pairs_the_last_step_with_the_initialisation():
    recs = [record("trained", "rotation", iia, 500, 1024, step=step, algorithm="ioi_pattern")
            for step, iia in ((0, 0.55), (1000, 0.8), (2000, 0.95))]
    (group,) = record_groups(IOI, recs, threshold=0.9)
    sel = group.maps["rotation"]["selectivity"]
    assert sel.real_score.accuracy == pytest.approx(0.95) and sel.difference.b.accuracy == pytest.approx(0.55)
    assert record_groups(IOI, recs[1:], threshold=0.9) == []  # no step 0: no control


def test_ioi_scale_scores_trained_against_random_lms_with_the_disjoint_names_runs_beside():
    recs = [record(target, spec, iia, 1000, 64, algorithm=alg)
            for alg, target, spec, iia in (("ioi_pattern", "trained", "rotation", 0.9),
                                           ("ioi_pattern", "random", "rotation", 0.5),
                                           ("ioi_pattern_disjoint", "trained", "rotation", 0.6),
                                           ("ioi_pattern_disjoint", "random", "rotation", 0.45),
                                           ("ioi_pattern", "trained", "revnet", 0.95),
                                           ("ioi_pattern", "random", "revnet", 0.7))]
    (group,) = record_groups(IOI_SCALE, recs, threshold=0.9)  # the disjoint runs are not a group of their own
    assert group.algorithm == "ioi_pattern" and list(group.maps) == ["rotation", "revnet"]
    rot = group.maps["rotation"]
    assert rot["selectivity"].difference.estimate == pytest.approx(0.4)
    assert rot["disjoint"]["real"].test.overall == Score(600, 1000)
    assert rot["disjoint"]["control"].test.overall == Score(450, 1000)
    assert "disjoint" not in group.maps["revnet"]  # no disjoint-names runs of that map
    rows = {r["map"]: r for r in score_rows(group)}
    assert rows["rotation"]["iia_disjoint_real"] == pytest.approx(0.6)
    assert rows["rotation"]["ood_gap"] == pytest.approx(0.3) and rows["rotation"]["ood_gap_ci_low"] > 0
    assert "iia_disjoint_real" not in rows["revnet"]
    text = group_text(group)
    assert "IIA shared / disjoint names" in text and "0.900 / 0.600 (control 0.450)" in text


def test_ioi_steps_scores_the_trained_lm_against_its_step_0_leaving_random_lms_out():
    recs = [record("trained", "revnet", 0.62, 1000, 64, algorithm="ioi_pattern"),
            record("trained", "revnet", 0.50, 1000, 64, step=0, algorithm="ioi_pattern"),
            record("random", "revnet", 0.90, 1000, 64, algorithm="ioi_pattern")]
    (group,) = record_groups(IOI_STEPS, recs, threshold=0.9)
    sel = group.maps["revnet"]["selectivity"]
    assert sel.real_score == Score(620, 1000) and sel.difference.b == Score(500, 1000)
    assert record_groups(IOI_STEPS, [recs[0], recs[2]], threshold=0.9) == []  # no step 0: no control
    final = record("trained", "revnet", 0.62, 1000, 64, step="final", algorithm="ioi_pattern")
    (named,) = record_groups(IOI_STEPS, [final, recs[1]], threshold=0.9)  # step "final" is the trained LM too
    assert named.maps["revnet"]["selectivity"].real_score == Score(620, 1000)


def test_ioi_regime_scores_the_trained_lm_against_its_step_0_without_extra_fits(tmp_path):
    from causalab.dilemma.scores import ScorePlan, measure_extras
    from causalab.experiments.store import ResultStore

    recs = [record("trained", "revnet", 0.62, 1000, 64, algorithm="ioi_pattern"),
            record("trained", "revnet", 0.55, 1000, 64, step=0, algorithm="ioi_pattern"),
            record("random", "revnet", 0.95, 1000, 64, algorithm="ioi_pattern")]
    (group,) = record_groups(IOI_REGIME, recs, threshold=0.9)
    assert group.maps["revnet"]["selectivity"].difference.estimate == pytest.approx(0.07)
    # its controls are benchmarks/ioi_controls.py's on the saved maps: nothing is fitted here
    measure_extras(group, ScorePlan({}, None, ()), ResultStore(tmp_path / "m.jsonl"))
    assert group.extras == {}


def test_missing_ioi_is_reported_not_raised(tmp_path):
    report = write_scores({}, {"ioi_progression": "cannot be built here (ImportError: no LM)"}, "smoke", tmp_path)
    assert "- mlp_maps: no scores (not run)." in report.text
    assert "- ioi_progression: no scores (cannot be built here (ImportError: no LM))." in report.text
    assert not report.figures and (tmp_path / "scores.md").read_text() == report.text


def test_the_scores_build_through_the_run_builder_with_the_runs_own_options(monkeypatch):
    import causalab as cl
    from causalab.dilemma import scores as dilemma_scores

    seen = []
    real_build = dilemma_scores.build_run

    def recording(config, **kw):
        seen.append(config)
        return real_build(config, **kw)

    monkeypatch.setattr(dilemma_scores, "build_run", recording)
    config = cl.ExperimentConfig(algorithm="ioi_pattern", task_options={"roles": "fixed", "names": 21}, target="random",
                                 target_options={"size": "tiny"}, layer=1, position="last", intervention_size=4)
    probe = {"intervention_size": 4, "seed": 0, "n_train": 32, "n_val": 16, "n_test": 32, "epochs": 1, "batch_size": 16}
    points = dilemma_scores._measure("efficiency", "rotation", {"probe": probe, "sizes": [16]}, config, {})
    assert points and seen[0].task_options == {"roles": "fixed", "names": 21}
    assert seen[0].target_options == {"size": "tiny"}
    # the cache key carries the task options where a run has them, and is unchanged where it has none
    from types import SimpleNamespace

    assert dilemma_scores._key("ood", SimpleNamespace(config=config), "rotation", {})["task_options"] == config.task_options
    assert "task_options" not in dilemma_scores._key("ood", SimpleNamespace(config=cl.ExperimentConfig()), "rotation", {})
