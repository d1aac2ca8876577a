"""A config passes once: built once by the runner, each site checked once, failures named by field, not by text."""

import dataclasses

import pytest
import torch

import causalab as cl
from causalab.errors import ConfigFieldError, SiteError
from causalab.experiments import build as build_module
from causalab.experiments.validate import validate

torch.set_num_threads(1)

SMALL = dict(n_train=64, n_val=32, n_test=64, epochs=1, batch_size=32)
LM = dict(algorithm="ioi_pattern", target="random", target_options={"size": "tiny"}, layer=1, position="last",
          alignment="rotation", intervention_size=4, **SMALL)


def _count_builds(monkeypatch) -> list[bool]:
    calls: list[bool] = []
    real = build_module.build_run

    def counting(config, *, dry=False, targets=None):
        calls.append(dry)
        return real(config, dry=dry, targets=targets)

    monkeypatch.setattr("causalab.experiments.runner.build_run", counting)
    return calls


def test_the_runner_builds_a_random_target_run_once(monkeypatch):
    calls = _count_builds(monkeypatch)
    cl.run_experiment(cl.ExperimentConfig(algorithm="both_equality_relations", target="random", alignment="rotation",
                                          **SMALL))
    assert calls == [False]


def test_a_trained_target_is_checked_dry_before_it_is_trained(monkeypatch):
    calls = _count_builds(monkeypatch)
    with pytest.raises(ConfigFieldError) as info:
        cl.run_experiment(cl.ExperimentConfig(algorithm="both_equality_relations", target="trained", layer=7,
                                              alignment="rotation", **SMALL))
    assert calls == [True] and info.value.field == "layer"  # failed dry: nothing was trained


@pytest.mark.parametrize("field, change", [
    ("layer", {"layer": 9}),
    ("position", {"position": "nowhere"}),
    ("component", {"component": "heads:99"}),
    ("component", {"component": "tail"}),
])
def test_a_bad_site_names_its_field_from_the_error_not_its_text(field, change):
    with pytest.raises(ConfigFieldError) as info:
        validate(cl.ExperimentConfig(**{**LM, **change}))
    assert info.value.field == field and isinstance(info.value, SiteError)


def test_an_mlp_position_is_named_as_the_position():
    with pytest.raises(ConfigFieldError) as info:
        validate(cl.ExperimentConfig(algorithm="both_equality_relations", target="random", position="last", **SMALL))
    assert info.value.field == "position"


def test_an_lm_checks_each_site_once(monkeypatch):
    task = cl.make_task("ioi_pattern")
    lm = cl.build_target(task, "random", 0, size="tiny")
    site = cl.Site(1, "last", "heads:0")
    assert lm.check_site(site) == site
    monkeypatch.setattr(type(lm), "parts", lambda self: pytest.fail("a checked site was checked again"))
    assert lm.check_site(site) == site and lm.check_site(dataclasses.replace(site)) == site
    with pytest.raises(SiteError) as info:
        lm.check_site(cl.Site(1, "last", "heads:1,1"))  # a new site is still checked
    assert info.value.part == "component"


def _failing_builder(kind, seed, *, dtype=torch.float32, dry=False, width: int = 8):
    raise TypeError("an error inside the builder")


def test_a_type_error_inside_a_task_builder_is_not_called_a_bad_option():
    task = dataclasses.replace(cl.make_task("both_equality_relations"), build_target=_failing_builder)
    with pytest.raises(TypeError, match="an error inside the builder"):
        cl.build_target(task, "random", 0, width=4)
    with pytest.raises(ConfigFieldError, match=r"'target_options'.*'colour'.*options it takes: width") as info:
        cl.build_target(task, "random", 0, colour="blue")
    assert info.value.field == "target_options"


@pytest.mark.parametrize("field, value", [("monitor", "accuracy"), ("lr_schedule", "step"), ("loss", "mse"),
                                          ("epochs", 0), ("lr", -1.0), ("plateau_factor", 1.5), ("val_every", -1)])
def test_a_fitting_setting_is_checked_once_with_one_error_wherever_it_comes_from(field, value):
    from causalab.errors import FitError, FitSettingError

    errors = []
    for make in (lambda: cl.FitConfig(**{field: value}), lambda: cl.MeasureSettings(**{field: value}),
                 lambda: cl.ExperimentConfig(**{field: value})):
        with pytest.raises(FitSettingError) as info:
            make()
        errors.append(info.value)
    assert all(isinstance(e, ConfigFieldError) and isinstance(e, FitError) and e.field == field for e in errors)
    assert len({str(e) for e in errors}) == 1  # the same message: one check
