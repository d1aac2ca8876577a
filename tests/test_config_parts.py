"""A config is composed: what to build (BuildSettings), how to measure (MeasureSettings) and how to fit (its FitConfig),
each checked once by the part that defines it, and handed on whole: the builder reads the build part, the measurement
the measure part, the fit the FitConfig itself."""

import dataclasses
import json
import pickle
import sys
from pathlib import Path

import pytest
import torch

import causalab as cl
from causalab.errors import ConfigFieldError, FitSettingError
from causalab.experiments.config import BUILD_FIELDS, HASHED_WHEN_SET
from causalab.fit.measure import FIT_FIELDS, FLAT_ORDER

torch.set_num_threads(1)

SMALL = dict(n_train=64, n_val=32, n_test=64, epochs=1, batch_size=32)


def test_flat_fields_go_to_the_part_that_defines_them():
    config = cl.ExperimentConfig(algorithm="left_equality_relation", layer=2, n_train=100, lr=0.5, seed=4)
    assert isinstance(config.build, cl.BuildSettings) and isinstance(config.measure, cl.MeasureSettings)
    assert (config.build.algorithm, config.build.layer) == ("left_equality_relation", 2)
    assert config.measure.n_train == 100 and config.measure.fit.lr == 0.5 and config.fit is config.measure.fit
    assert config.measure.seed == 4 and config.fit.seed == 4  # the measurement's seed is the fit's
    assert (config.layer, config.n_train, config.lr, config.torch_dtype) == (2, 100, 0.5, torch.float32)  # flat reads
    assert config.n_val == 2_000 and config.epochs == 20  # an experiment's defaults
    assert {"layer", "epochs", "torch_dtype", "build", "replace"} <= set(dir(config)) and "lr" in dir(config.measure)
    assert cl.MeasureSettings().n_val == 500 and cl.MeasureSettings().fit.epochs == 10  # a score's


def test_made_from_parts_or_flat_is_the_same_config_with_the_same_hash():
    flat = cl.ExperimentConfig(algorithm="left_equality_relation", target="random", layer=2, n_train=100, epochs=3, lr=1)
    parts = cl.ExperimentConfig(build=cl.BuildSettings(algorithm="left_equality_relation", target="random", layer=2),
                                measure=cl.MeasureSettings(n_train=100, n_val=2_000, n_test=5_000,
                                                           fit=cl.FitConfig(epochs=3, lr=1.0)))
    assert flat == parts and flat.hash() == parts.hash() and flat.to_dict() == parts.to_dict()
    assert cl.ExperimentConfig.from_dict(json.loads(json.dumps(flat.to_dict()))) == flat  # a record's config reads back


@pytest.mark.parametrize("change, part, error", [
    ({"layer": "two"}, "build", ConfigFieldError),
    ({"target": "borrowed"}, "build", ConfigFieldError),
    ({"n_train": 0}, "measure", ConfigFieldError),
    ({"dtype": "float16"}, "measure", ConfigFieldError),
    ({"lr": -1.0}, "fit", FitSettingError),
    ({"lr_schedule": "linear"}, "fit", FitSettingError),
    ({"max_steps": 0}, "fit", FitSettingError),
])
def test_each_part_checks_its_own_fields_with_its_own_error(change, part, error, monkeypatch):
    checked = []
    for name, cls in (("build", cl.BuildSettings), ("measure", cl.MeasureSettings), ("fit", cl.FitConfig)):
        check = "_check" if name == "measure" else "__post_init__"
        real = getattr(cls, check)

        def spy(self, real=real, name=name):
            checked.append(name)
            return real(self)

        monkeypatch.setattr(cls, check, spy)
    with pytest.raises(error) as info:
        cl.ExperimentConfig(**change)
    field = next(iter(change))
    assert info.value.field == field and checked[-1] == part
    assert checked.count(part) == 1  # checked once, by the part that defines it
    if part != "fit":
        assert not isinstance(info.value, FitSettingError)


def test_a_valid_config_checks_each_part_once(monkeypatch):
    checked = []
    for name, cls, check in (("build", cl.BuildSettings, "__post_init__"), ("measure", cl.MeasureSettings, "_check"),
                             ("fit", cl.FitConfig, "__post_init__")):
        real = getattr(cls, check)
        monkeypatch.setattr(cls, check, lambda self, real=real, name=name: (checked.append(name), real(self))[1])
    cl.ExperimentConfig(algorithm="left_equality_relation", epochs=3)
    assert sorted(checked) == ["build", "fit", "measure"]


def test_the_runner_hands_each_part_on_whole(monkeypatch):
    seen = {}
    real_measure_run = cl.fit.measure.measure_run
    real_fit = cl.fit.fitting.fit_alignment

    def measure_run(run, settings, **kw):
        seen["settings"], seen["run_config"] = settings, run.config
        return real_measure_run(run, settings, **kw)

    def fit_alignment(*args, **kw):
        seen["fit"] = args[7]
        return real_fit(*args, **kw)

    monkeypatch.setattr("causalab.experiments.runner.measure_run", measure_run)
    monkeypatch.setattr("causalab.fit.measure.fit_alignment", fit_alignment)
    config = cl.ExperimentConfig(algorithm="both_equality_relations", target="random", alignment="rotation", **SMALL)
    result = cl.run_experiment(config)
    assert seen["settings"] is config.measure and seen["fit"] is config.measure.fit and seen["run_config"] is config
    assert result.config is config and result.spec == "rotation" and result.to_record()["hash"] == config.hash()


def test_the_measurement_does_not_build_or_check_the_map_again(monkeypatch):
    built, checked = [], []
    real_build, real_check = cl.experiments.build.build_map, cl.Partition.check_fits

    def build_map(*args, **kw):
        built.append(args[0])
        return real_build(*args, **kw)

    def check_fits(self, phi):
        checked.append(Path(sys._getframe(1).f_code.co_filename).name)  # who checks
        return real_check(self, phi)

    monkeypatch.setattr("causalab.experiments.build.build_map", build_map)
    monkeypatch.setattr("causalab.fit.measure.build_map", build_map)
    monkeypatch.setattr(cl.Partition, "check_fits", check_fits)
    result = cl.run_experiment(cl.ExperimentConfig(algorithm="both_equality_relations", target="random", **SMALL))
    # built and checked by the builder (and the fit's own entry guards its partition); measure_run takes them as built
    assert built == ["rotation"] and checked == ["build.py", "fitting.py"] and result.phi is not None
    cl.measure(*_pieces(), "rotation", cl.MeasureSettings(**SMALL))  # measure, given loose pieces, checks them itself
    assert built == ["rotation", "rotation"] and checked[2:] == ["measure.py", "fitting.py"]


def _pieces():
    task = cl.make_task("both_equality_relations")
    return cl.build_target(task, "random", 0), cl.Site(1), task


def test_configs_are_frozen_and_change_by_replace():
    config = cl.ExperimentConfig(**SMALL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.build = cl.BuildSettings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.measure.seed = 3
    other = config.replace(seed=3, layer=2, lr=0.1)
    assert (other.seed, other.fit.seed, other.layer, other.lr) == (3, 3, 2, 0.1) and config.seed == 0
    assert dataclasses.replace(config, seed=3) == config.replace(seed=3)  # flat fields beside a part change it
    assert cl.ExperimentConfig(measure=config.measure, epochs=5).fit.epochs == 5
    settings = cl.MeasureSettings(fit=cl.FitConfig(seed=9, epochs=2), seed=1)
    assert settings.fit.seed == 1 and settings.replace(epochs=4).fit.epochs == 4


def test_an_unknown_field_names_the_valid_ones_and_the_likely_one():
    with pytest.raises(ConfigFieldError, match=r"did you mean 'epochs'\?.*valid fields:.*algorithm.*max_steps"):
        cl.ExperimentConfig(epoch=3)
    with pytest.raises(ConfigFieldError, match=r"MeasureSettings has no field 'algorithm'"):
        cl.MeasureSettings(algorithm="ioi_pattern")
    with pytest.raises(ConfigFieldError, match=r"must be a MeasureSettings"):
        cl.ExperimentConfig(measure={"n_train": 3})


def test_the_flat_form_lists_every_field_of_every_part_once():
    names = cl.ExperimentConfig.field_names()
    assert len(names) == len(set(names)) and set(names) == set(FLAT_ORDER) | set(BUILD_FIELDS)
    assert set(FIT_FIELDS) <= set(names) and "seed" in names and "fit" not in names
    assert list(cl.ExperimentConfig().to_dict()) == names


def test_max_steps_is_a_field_hashed_only_when_set():
    plain = cl.ExperimentConfig(**SMALL)
    assert HASHED_WHEN_SET["max_steps"] is None and "max_steps" in plain.to_dict()
    assert plain.replace(max_steps=None).hash() == plain.hash() != plain.replace(max_steps=5).hash()
    assert plain.replace(max_steps=5).fit.max_steps == 5


def test_a_config_pickles_for_worker_processes():
    config = cl.ExperimentConfig(algorithm="ioi_pattern", target_options={"size": "tiny"}, epochs=2)
    back = pickle.loads(pickle.dumps(config))
    assert back == config and back.hash() == config.hash() and back.fit.epochs == 2


def test_a_whole_config_given_as_measurement_settings_says_to_pass_its_measure_part():
    task = cl.make_task("both_equality_relations")
    target = cl.build_target(task, "random", 0)
    with pytest.raises(cl.errors.ConfigError, match=r"pass config\.measure"):
        cl.measure(target, cl.Site(1), task, "rotation", cl.ExperimentConfig(**SMALL))


def test_a_config_prints_as_the_call_that_makes_it():
    config = cl.ExperimentConfig(algorithm="ioi_pattern", layer=2, epochs=5, target_options={"size": "tiny"})
    assert repr(config) == "ExperimentConfig(epochs=5, algorithm='ioi_pattern', layer=2, target_options={'size': 'tiny'})"
    assert eval(repr(config), {"ExperimentConfig": cl.ExperimentConfig}) == config
    assert repr(cl.ExperimentConfig()) == "ExperimentConfig()"
