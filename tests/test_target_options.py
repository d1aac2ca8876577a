"""Every target option is checked by name and value, for every family, before anything is built."""

from __future__ import annotations

import pytest

from causalab.errors import ConfigFieldError
from causalab.experiments.config import ExperimentConfig
from causalab.experiments.validate import validate

pytest.importorskip("transformers")

LM = {"algorithm": "ioi_pattern", "position": "last", "intervention_size": 4}

BAD = [  # (target, options, the field named, what the message must say)
    ("random", {"sise": "14m"}, "target_options.sise", "it takes: vocab_size, arch, size, engine, max_positions, init"),
    ("random", {"size": "15m"}, "target_options.size", "unknown LM size '15m'; valid: tiny, small"),
    ("random", {"size": "tiny", "arch": "gpt3"}, "target_options.arch", "valid: gpt_neox, gpt2"),
    ("random", {"size": "tiny", "init": "xavier"}, "target_options.init", "valid: transformers, family, pythia"),
    ("random", {"size": "tiny", "engine": "nnsight"}, "target_options.engine", "valid: hook, pyvene"),
    ("random", {"size": "tiny", "max_positions": 0}, "target_options.max_positions", "must be a positive integer"),
    ("random", {"size": "tiny", "tokenizer": "gpt2"}, "target_options.tokenizer", "takes no option(s) ['tokenizer']"),
    ("random", {"size": "tiny", "hidden_size": 64}, "target_options.hidden_size", "takes no option(s)"),
    ("trained", {"stpe": 0}, "target_options.stpe", "it takes: cache, size, step, engine"),
    ("trained", {"size": "7b"}, "target_options.size", "unknown LM size '7b'"),
    ("trained", {"size": "tiny", "step": -1}, "target_options.step", "a non-negative integer) or 'final'"),
    ("pretrained", {"path": "EleutherAI/pythia-14m", "revison": "step0"}, "target_options.revison",
     "it takes: revision, engine, positions, path"),
    ("pretrained", {"path": ""}, "target_options.path", "a local folder or a hub name"),
]


@pytest.mark.parametrize("target, options, field, says", BAD, ids=[f"{t}-{f}" for t, _, f, _ in BAD])
def test_a_bad_language_model_option_is_refused_naming_it(target, options, field, says):
    with pytest.raises(ConfigFieldError) as info:
        validate(ExperimentConfig(**LM, target=target, target_options=options))
    assert info.value.field == field and says in str(info.value), str(info.value)


def test_good_language_model_options_still_build():
    assert validate(ExperimentConfig(**LM, target="random", target_options={"size": "tiny", "arch": "gpt2",
                                                                            "init": "transformers", "vocab_size": 300}))
    assert validate(ExperimentConfig(**LM, target="trained", target_options={"size": "tiny", "step": 0}))


def test_the_command_line_names_a_misspelt_option_before_any_work(capsys, tmp_path, monkeypatch):
    from causalab.cli.main import main

    monkeypatch.setenv("CAUSALAB_CACHE", str(tmp_path / "cache"))
    code = main(["run", "--algorithm", "ioi_pattern", "--target", "random", "--target-option", "sise=14m",
                 "--alignment", "rotation", "--position", "last", "--intervention-size", "4"])
    err = capsys.readouterr().err
    assert code == 2 and "config field 'target_options.sise'" in err and "size" in err.split("it takes:")[1]


def test_mlp_options_go_through_the_same_check():
    with pytest.raises(ConfigFieldError, match="'target_options.hiden'.*it takes: hidden, depth"):
        validate(ExperimentConfig(target="random", target_options={"hiden": 8}))
