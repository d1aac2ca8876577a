"""IIA is shown beside what it is read against: its chance level and the network's own accuracy."""

import dataclasses
import json

import pytest
import torch

import causalab as cl
from causalab.cli.main import main
from causalab.dilemma.run import DilemmaSummary, Experiment, _report
from causalab.experiments.report import CHANCE_NOTE, layer_table, summary_table, write_report
from causalab.fit.measure import MeasureSettings, chance_level, draw_pairs, measure

torch.set_num_threads(1)
SETTINGS = MeasureSettings(n_train=100, n_val=50, n_test=400, epochs=1)


def test_network_accuracy_is_the_plain_networks_accuracy_on_the_test_bases():
    task, site = cl.make_task("both_equality_relations"), cl.Site(layer=1)
    assert measure(cl.build_target(task, "oracle", 0), site, task, "identity", SETTINGS).network_accuracy == 1.0
    random = cl.build_target(task, "random", 0)
    m = measure(random, site, task, "identity", SETTINGS)
    _, _, test = draw_pairs(task, SETTINGS)  # the measurement's own test pairs
    with torch.no_grad():
        plain = random.logits(task.encode(test.base)).argmax(-1) == task.label_outputs(test.base_outputs)
    assert m.network_accuracy == pytest.approx(plain.float().mean().item())
    assert 0.2 < m.network_accuracy < 0.8  # a random network: near chance, not 1
    assert m.chance == chance_level(task.labels(test)) and 0.4 < m.chance < 0.7


def test_network_accuracy_on_an_lm_scores_the_bases_own_answer_against_its_other_name():
    from algorithms import ioi_models

    target = ioi_models.build_target("random", 0, size="tiny")
    task = cl.make_task("ioi_pattern").for_target(target)
    settings, site = MeasureSettings(n_train=32, n_val=16, n_test=128, epochs=1), cl.Site(layer=1, position="last")
    m = measure(target, site, task, "rotation", settings)
    _, _, test = draw_pairs(task, settings)
    own = task.labels(dataclasses.replace(test, counterfactual_outputs=test.base_outputs))
    assert torch.equal(own[:, 0], task.label_outputs(test.base_outputs))  # expected: the base's own answer
    with torch.no_grad():
        full = target.logits(task.encode(test.base))  # a full forward, where measure resumed from the site
    assert m.network_accuracy == pytest.approx(task.correct(full, own).float().mean().item())
    record = dataclasses.replace(m, config=cl.ExperimentConfig(algorithm="ioi_pattern")).to_record()
    # two-way labels: chance is the better of always keeping the base's answer and always switching
    changed = (test.counterfactual_outputs["output"] != test.base_outputs["output"]).float().mean().item()
    assert record["chance"] == pytest.approx(max(changed, 1 - changed)) and 0.4 < record["chance"] < 0.7
    assert record["network_accuracy"] == m.network_accuracy


def test_the_record_and_the_cli_table_carry_both(tmp_path, capsys):
    results = tmp_path / "runs.jsonl"
    code = main(["run", "--algorithm", "both_equality_relations", "--target", "random,oracle", "--alignment", "identity",
                 "--n-train", "100", "--n-val", "50", "--n-test", "400", "--epochs", "1", "--json", str(results)])
    assert code == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header[header.index("IIA") + 1:header.index("IIA") + 5] == ["95%", "CI", "chance", "network"]
    records = {r["config"]["target"]: r for r in map(json.loads, results.read_text().splitlines())}
    assert records["oracle"]["network_accuracy"] == 1.0 and 0 < records["random"]["network_accuracy"] < 1
    for target, record in records.items():
        assert record["hash"] == cl.ExperimentConfig.from_dict(record["config"]).hash()  # new keys, same hash
        row = next(line for line in out.splitlines() if f" {target} " in line)
        assert f"{record['chance']:.3f}" in row and f"{record['network_accuracy']:.3f}" in row
    # the random network's identity map sits at chance, and the table says so
    random_row = next(line for line in out.splitlines() if " random " in line)
    lo, hi = records["random"]["test"]["overall"]["ci_low"], records["random"]["test"]["overall"]["ci_high"]
    assert lo <= records["random"]["chance"] <= hi and f"{records['random']['iia']:.3f} ~" in random_row
    assert " ~" not in next(line for line in out.splitlines() if " oracle " in line)
    assert CHANCE_NOTE in out


def record(iia: float, chance: float | None = 0.5, accuracy: float | None = 0.9, **config) -> dict:
    cfg = cl.ExperimentConfig(**config)
    rec = {"config": cfg.to_dict(), "hash": cfg.hash(), "iia": iia, "num_parameters": 0,
           "test": {"overall": {"iia": iia, "n": 400, "ci_low": iia - 0.05, "ci_high": iia + 0.05}, "per_set": {}}}
    if chance is not None:
        rec.update(chance=chance, network_accuracy=accuracy)
    return rec


def test_report_tables_show_chance_and_network_accuracy_and_mark_iia_at_chance(tmp_path):
    records = [record(0.52, target="random", seed=s, target_seed=s, layer=ly) for s in (0, 1) for ly in (1, 2)]
    records += [record(0.95, accuracy=1.0, target="trained", seed=s, target_seed=s, layer=ly) for s in (0, 1) for ly in (1, 2)]
    records += [record(0.52 if s == 0 else 0.7, target="oracle", seed=s, target_seed=s, layer=1) for s in (0, 1)]
    table = summary_table(records, by=["target"])
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in table.splitlines()[2:]
            if line.startswith("| ")}
    header = [c.strip() for c in table.splitlines()[0].split("|")[1:-1]]
    assert header[header.index("max") + 1:header.index("max") + 3] == ["chance", "network acc"]
    assert rows["random"][1] == "0.520 ~" and rows["trained"][1] == "0.950" and rows["oracle"][1] == "0.610 ~1/2"
    assert rows["trained"][header.index("network acc") - 1] == "1.000"
    assert CHANCE_NOTE in table
    layers = layer_table(records)
    assert "0.520 ± 0.000 ~" in layers and "| chance | network acc |" in layers
    assert "chance" not in summary_table([record(0.9, chance=None, target="random")], by=["target"])  # older records
    files = write_report(records, tmp_path / "report")
    assert CHANCE_NOTE in files["summary"].read_text() and "| chance | network acc |" in files["layers"].read_text()
    # the dilemma's report marks them too
    text = _report(Experiment("mlp_maps", ("layer", "target")), records, tmp_path / "mlp_maps", DilemmaSummary("quick", tmp_path))
    assert "0.520 ~" in text and "| chance |" in text and CHANCE_NOTE in text
