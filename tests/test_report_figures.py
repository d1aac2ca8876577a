"""Report figures stay readable at sweep size: what varies gets panels or a legend entry, never a pooled point."""

import json

import matplotlib
import pytest

import causalab as cl
from causalab.experiments import figures

ALGORITHMS = ("both_equality_relations", "left_equality_relation")
MAPS = ("identity", "rotation", "revnet:blocks=1,hidden=16")


def history(rate: float) -> list[dict]:
    return [{"epoch": e, "steps": 10 * e, "train_iia": 0.5 + rate * e, "val_iia": 0.5 + rate * e / 2,
             "val_loss": 1.0 / (1 + e)} for e in range(4)]


def sweep_records() -> list[dict]:
    """48 runs: 2 algorithms x 2 networks x 2 layers x 3 maps x 2 seeds, as a small sweep writes them."""
    out = []
    for a, alg in enumerate(ALGORITHMS):
        for target in ("trained", "random"):
            for layer in (1, 2):
                for m, spec in enumerate(MAPS):
                    for seed in (0, 1):
                        cfg = cl.ExperimentConfig(algorithm=alg, target=target, layer=layer, alignment=spec, seed=seed,
                                                  target_seed=seed)
                        iia = 0.5 if target == "random" else 0.6 + 0.1 * m + 0.1 * (layer == 1) + 0.01 * seed
                        out.append({"config": cfg.to_dict(), "hash": cfg.hash(), "iia": iia, "num_parameters": 100 * m,
                                    "chance": 0.5 + 0.01 * a, "network_accuracy": 1.0 if target == "trained" else 0.5,
                                    "test": {"overall": {"iia": iia, "n": 500, "ci_low": iia - 0.04, "ci_high": iia + 0.04},
                                             "per_set": {}},
                                    "history": history(0.02 * m)})
    return out


@pytest.fixture
def kept_figure(monkeypatch):
    """The figure a function drew, kept open for inspection (``plt.close`` does nothing meanwhile)."""
    plt = figures.pyplot()
    plt.close("all")
    monkeypatch.setattr(plt, "close", lambda *args: None)
    yield lambda: plt.figure(plt.get_fignums()[-1])
    monkeypatch.undo()
    plt.close("all")


def legend_labels(fig) -> list[str]:
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def test_complexity_figure_has_a_panel_per_algorithm_and_layer_and_no_point_labels(tmp_path, kept_figure):
    files = figures.complexity_figure(sweep_records(), tmp_path / "iia_vs_complexity")
    fig = kept_figure()
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == 4  # algorithms x layers: layers are never pooled
    assert {ax.get_title() for ax in panels} == {f"algorithm={a}, layer={ly}" for a in ALGORITHMS for ly in (1, 2)}
    assert not any(ax.texts for ax in panels)  # maps are told apart by marker, not by text that piles up
    assert legend_labels(fig) == ["network: random", "network: trained", "chance", *(f"map: {m}" for m in MAPS)]
    assert panels[0].get_ylabel() == "test IIA (mean ± std over 2 seeds)"
    chance = [line.get_ydata()[0] for ax in panels for line in ax.lines if line.get_label() == "chance"]
    assert sorted(chance) == pytest.approx([0.5, 0.5, 0.51, 0.51])  # each panel its own runs' chance level
    points = json.loads(files["iia_vs_complexity_json"].read_text())
    assert points["panels"] == ["algorithm", "layer"] and len(points["points"]) == 2 * 2 * 2 * 3
    assert all(p["n"] == 2 for p in points["points"])  # the spread is over the two seeds alone
    layer1 = next(p for p in points["points"] if p["layer"] == 1 and p["target"] == "trained" and p["alignment"] == "rotation")
    assert layer1["iia_mean"] == pytest.approx(0.805) and layer1["iia_std"] == pytest.approx(0.00707, abs=1e-4)


def test_learning_curves_give_one_legend_entry_and_colour_per_configuration(tmp_path, kept_figure):
    records = sweep_records()
    files = figures.learning_curves_figure(records, tmp_path / "learning_curves")
    fig = kept_figure()
    labels = legend_labels(fig)
    configs = [f"{m}, {t}" for m in MAPS for t in ("random", "trained")]
    assert sorted(labels) == sorted([*configs, "chance"])  # 12 configurations, not 48 runs
    iia_panels = fig.axes[0::2]
    assert [ax.get_title() for ax in iia_panels] == [f"algorithm={a}, layer={ly}" for a in ALGORITHMS for ly in (1, 2)]
    colours = {}
    for ax in iia_panels:
        for line in ax.lines:
            if line.get_linestyle() == "-" and line.get_label() != "chance":
                colours.setdefault(matplotlib.colors.to_hex(line.get_color()), 0)
                colours[matplotlib.colors.to_hex(line.get_color())] += 1
    assert len(colours) == len(configs)  # one colour per configuration, shared by its seeds and panels
    assert len(json.loads(files["learning_curves_json"].read_text())["points"]) == len(records) * 4
