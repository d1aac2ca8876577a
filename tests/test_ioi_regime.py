"""IOI's data-regime options produce what they claim: fixed roles, sentence pools, name splits, templates, controls."""

from __future__ import annotations

import json

import pytest
import torch

import causalab as cl
from algorithms import ioi, ioi_regime
from algorithms import ioi_data as data
from causalab.errors import ConfigError, ConfigFieldError, RegistryError


def draw(sizes=(4000, 500, 500), **options):
    task = cl.make_task("ioi_pattern", **options)
    return task, task.splits(list(sizes), torch.Generator().manual_seed(0))


def sentences(d):
    return [d.base, *d.sources.values()]


def roles(values):
    return data.indirect_object(values), values["s2"]


def test_fixed_roles_draw_indirect_objects_and_subjects_from_disjoint_sets():
    task, splits = draw(roles="fixed", names=21)
    ios, subjects = set(), set()
    for d in splits:
        for v in sentences(d):
            io, s = roles(v)
            ios |= set(io.tolist())
            subjects |= set(s.tolist())
    assert len(ios) == 10 and len(subjects) == 11 and not ios & subjects
    io, s = roles(splits[0].base)
    # 10 x 11 name pairs x 2 patterns x 18 templates: 4,000 fitting bases give ~1 sentence per combination;
    # every combination is reachable and the patterns are balanced
    assert 0.45 < float((splits[0].base["s2"] == splits[0].base["name_b"]).float().mean()) < 0.55
    assert task.regime.sides()[0].combinations() == 110 * 2 * 18 * 20 * 20


def test_random_roles_let_every_name_play_both_roles():
    _, splits = draw(roles="random", names=11)
    io, s = roles(splits[0].base)
    assert set(io.tolist()) == set(s.tolist()) and len(set(io.tolist())) == 11


def test_sentences_per_combination_follow_the_pair_count():
    """As the issue's arithmetic: 50k pairs over 10 x 11 fixed-role names give ~25 sentences per (IO, S, template,
    pattern) combination; random roles over all names give far fewer."""
    def per_combination(**options):
        _, (train, _, _) = draw((50_000, 10, 10), **options)
        values = {k: torch.cat([train.base[k], train.sources["pattern"][k]]) for k in train.base}
        io, s = roles(values)
        abba = (values["s2"] == values["name_b"]).long()
        key = ((io * 200 + s) * 2 + abba) * 64 + values["template"]
        return len(key) / len(torch.unique(key))

    assert 23 < per_combination(roles="fixed", names=21) < 27
    assert per_combination() < 1.5


def test_the_pool_split_is_disjoint_by_sentence_and_pairs_stay_within_their_split():
    task, splits = draw((4000, 500, 500), roles="fixed", names=21, split="pool", pool=5000)
    keys = [torch.unique(torch.cat([ioi_regime.sentence_keys(v) for v in sentences(d)])) for d in splits]
    assert all(len(set(a.tolist()) & set(b.tolist())) == 0 for i, a in enumerate(keys) for b in keys[i + 1:])
    assert len(keys[0]) <= 4000 and len(keys[1]) <= 500 and len(keys[2]) <= 500  # 80/10/10 of 5,000 sentences
    with pytest.raises(ConfigError, match="distinct sentences"):
        draw((10, 10, 10), roles="fixed", names=4, split="pool", pool=10**7)


def test_the_names_split_cuts_names_60_20_20():
    for options in (dict(roles="random", split="names"), dict(roles="fixed", names=35, split="names")):
        _, splits = draw(**options)
        names = [set(torch.cat([v[k] for v in sentences(d) for k in ("name_a", "name_b")]).tolist()) for d in splits]
        assert not names[0] & names[2] and not names[1] & names[2] and not names[0] & names[1]
        if options["roles"] == "random":
            assert [len(n) for n in names] == [67, 22, 22]


def test_the_ioi_paper_templates_encode_names_where_the_template_puts_them():
    task, (train, _, _) = draw((200, 10, 10), templates="ioi_paper", roles="fixed", names=20)
    enc = task.encode(train.base)
    rows = torch.arange(200)
    ids = enc["input_ids"]
    assert torch.equal(ids[rows, enc["pos_s2"]], data.NAME_TOKENS[train.base["s2"]])
    assert torch.equal(ids[rows, enc["pos_io"]], data.NAME_TOKENS[data.indirect_object(train.base)])
    assert int(train.base["template"].max()) < len(data.PAPER_TEMPLATES)
    text = data.render({k: v[:1] for k, v in train.base.items()}, templates=task.encoder.templates)[0]
    assert text.split()[-1] == "to" and data.NAMES[int(train.base["s2"][0])] in text
    assert int(ids.max()) < len(data.PAPER_VOCAB)


def test_paper_templates_build_random_models_with_their_words_and_refuse_the_trained_model():
    task = cl.make_task("ioi_pattern", templates="ioi_paper")
    target = task.build_target("random", 0, size="tiny")
    assert target.model.get_input_embeddings().weight.shape[0] == len(data.PAPER_VOCAB)
    with pytest.raises(ConfigError, match="never saw"):
        task.build_target("trained", 0)


def test_controls_draw_what_they_name():
    task = cl.make_task("ioi_pattern", roles="fixed", names=21, hold_out=True)
    side = task.regime.sides()[0]
    g = torch.Generator().manual_seed(1)
    swapped = ioi.control_pairs(task, "swapped_roles", 300, g)
    io, s = roles(swapped.base)
    assert set(io.tolist()) <= set(side.subject.tolist()) and set(s.tolist()) <= set(side.io.tolist())
    unseen = ioi.control_pairs(task, "unseen_names", 300, g)
    assert not set(unseen.base["name_a"].tolist()) & (set(side.io.tolist()) | set(side.subject.tolist()))
    fillers = ioi.control_pairs(task, "unseen_fillers", 300, g)
    assert not set(fillers.base["place"].tolist()) & set(side.places.tolist())
    templates = ioi.control_pairs(task, "unseen_templates", 300, g)
    assert not set(templates.base["template"].tolist()) & set(side.templates.tolist())
    for kind, same in (("same_pattern", True), ("different_pattern", False)):
        d = ioi.control_pairs(task, kind, 200, g)
        src = d.sources["pattern"]
        assert len(d) == 200
        assert bool(((d.base["s2"] == d.base["name_a"]) == (src["s2"] == src["name_a"])).all()) == same
    fitting = cl.make_task("ioi_pattern", roles="fixed", names=21)
    with pytest.raises(ConfigError, match="hold_out"):
        ioi.control_pairs(fitting, "unseen_fillers", 10, g)
    with pytest.raises(ConfigError, match="valid"):
        ioi.control_pairs(fitting, "nonsense", 10, g)


def test_bad_options_are_named_with_what_is_valid():
    with pytest.raises(RegistryError, match="roles, names"):
        cl.make_task("ioi_pattern", role="fixed")
    for options, word in ((dict(roles="fix"), "roles"), (dict(names=3, roles="fixed"), "names"),
                          (dict(split="sentences"), "split"), (dict(templates="gpt"), "templates")):
        with pytest.raises(ConfigError, match=word):
            cl.make_task("ioi_pattern", **options)
    with pytest.raises(ConfigFieldError, match="task_options"):
        cl.experiments.build_run(cl.ExperimentConfig(algorithm="ioi_pattern", target="random",
                                                     task_options={"roles": "sometimes"}), dry=True)


def test_the_default_task_is_unchanged():
    plain = cl.make_task("ioi_pattern")
    assert plain.regime is None and plain.counterfactual_splits is None
    a = plain.splits([50, 5, 5], torch.Generator().manual_seed(3))[0]
    b = cl.make_task("ioi_pattern").counterfactuals(60, torch.Generator().manual_seed(3)).split([50, 5, 5])[0]
    assert torch.equal(a.base["name_a"], b.base["name_a"])


def test_the_regime_sweep_and_the_controls_script_run_at_smoke_size(tmp_path):
    from conftest import load_benchmark

    from causalab.dilemma.run import configs_dir
    from causalab.experiments import load_sweep, run_sweep

    spec = load_sweep(configs_dir() / "ioi_regime.toml", "smoke")
    results, maps = tmp_path / "r.jsonl", tmp_path / "maps"
    run_sweep(spec.configs(), results, workers=1, save_maps=str(maps))
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert [r["config"]["task_options"]["roles"] for r in records] == ["fixed", "random"]
    assert all(h["steps"] % 2 == 0 for r in records for h in r["history"])  # checked every 2 steps
    out = tmp_path / "controls.jsonl"
    assert load_benchmark("ioi_controls").main([str(results), "--maps", str(maps), "--out", str(out), "--n", "64"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    kinds = {(r["task_options"]["roles"], r["control"]) for r in rows}
    assert ("fixed", "swapped_roles") in kinds and ("random", "swapped_roles") not in kinds
    assert all(0 <= r["iia"] <= 1 and r["n"] == 64 for r in rows)
    assert load_benchmark("ioi_controls").main([str(results), "--maps", str(maps), "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == len(rows)  # scored runs are skipped


def test_the_regime_figure_draws_the_committed_fits(tmp_path):
    from conftest import load_benchmark

    script = load_benchmark("ioi_regime_figure")
    assert script.main(["--out", str(tmp_path / "curves")]) == 0
    rows = json.loads((tmp_path / "curves.json").read_text())["points"]
    assert len({r["hash"] for r in rows}) >= 8  # the core profile's 14m fits, one line each
    assert max(r["val_iia"] for r in rows) > 0.9  # the jump is in the committed curves
    assert script.main(["--size", "1.4b", "--out", str(tmp_path / "none")]) == 1


def test_the_regime_tables_print_every_committed_fit_and_control(capsys):
    from conftest import load_benchmark

    assert load_benchmark("ioi_regime_tables").main([]) == 0
    fits, controls = capsys.readouterr().out.strip().split("\n\n")
    assert "fixed roles, 21 names" in fits and "| - |" in fits  # a fit that never jumped has no jump step
    assert len(controls.splitlines()) >= 10 and "swapped roles" in controls.splitlines()[0]
