"""The dilemma's own figures: the headline picture (IIA against map parameters, trained vs random network;
IIA across training) and the scores (selectivity and OOD gap per map, the sample-efficiency curve),
each written with the numbers it plots."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from causalab.errors import ConfigError
from causalab.experiments.figures import pyplot, write_numbers
from causalab.experiments.summary import flatten, summarize, write_csv


def headline_numbers(stem: Path) -> dict[str, Path]:
    return {"dilemma_csv": stem.with_suffix(".csv"), "dilemma_json": stem.with_suffix(".json")}


def headline_figure(maps: Sequence[dict[str, Any]], progression: Sequence[dict[str, Any]], stem: Path,
                    ioi: Sequence[dict[str, Any]] = ()) -> dict[str, Path]:
    """One picture of the dilemma at the first algorithm and layer: (a) IIA against map parameters,
    trained vs random network; (b) IIA across training, one line per map; (c) IOI: test IIA per map
    on each LM, with shared and with disjoint names. Numbers beside it."""
    panels = [(title, recs) for title, recs in (("maps", maps), ("progression", progression), ("ioi", ioi)) if recs]
    if not panels:
        return {}
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.0), squeeze=False)
    points: list[dict[str, Any]] = []
    for ax, (kind, recs) in zip(axes[0], panels):
        if kind == "ioi":  # both name conditions side by side
            points += [{"panel": kind, **r} for r in _ioi_panel(ax, recs)]
            continue
        first = flatten(recs[0])
        alg, layer = first["algorithm"], first["layer"]
        recs = [r for r in recs if flatten(r)["algorithm"] == alg and flatten(r)["layer"] == layer]
        if kind == "maps":
            rows = [s.to_dict() for s in summarize(recs, by=["target", "alignment"], metrics=["iia", "num_parameters"])]
            for target in dict.fromkeys(r["target"] for r in rows):
                pts = sorted((r for r in rows if r["target"] == target), key=lambda r: r["num_parameters_mean"])
                ax.errorbar([r["num_parameters_mean"] for r in pts], [r["iia_mean"] for r in pts],
                            yerr=[r["iia_std"] for r in pts], marker="o", capsize=3, label=f"{target} MLP")
                for r in pts:
                    ax.annotate(_short(r["alignment"]), (r["num_parameters_mean"], r["iia_mean"]), fontsize=7,
                                textcoords="offset points", xytext=(4, -10))
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(plt.NullFormatter())
            ax.set_xlabel("alignment-map parameters")
            ax.set_title(f"(a) {alg}, layer {layer}: trained vs random network", fontsize=9)
            ax.legend(fontsize=8)
        else:
            key = "target_options.checkpoint"
            rows = [s.to_dict() for s in summarize(recs, by=["alignment", key], metrics=["iia"])]
            for al in dict.fromkeys(r["alignment"] for r in rows):
                pts = sorted((r for r in rows if r["alignment"] == al), key=lambda r: r[key])
                ax.errorbar([r[key] for r in pts], [r["iia_mean"] for r in pts], yerr=[r["iia_std"] for r in pts],
                            marker="o", capsize=3, label=_short(al))
            ax.set_xscale("symlog", linthresh=100_000)
            ax.set_xlabel("MLP training samples seen (0 = random initialisation)")
            ax.set_title(f"(b) {alg}, layer {layer}: across training", fontsize=9)
            ax.legend(fontsize=8, title="alignment map", title_fontsize=8)
        ax.axhline(_chance(recs), color="grey", lw=0.8, ls=":")  # the runs' chance level
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("test IIA")
        ax.grid(alpha=0.3)
        points += [{"panel": kind, "algorithm": alg, "layer": layer, **r} for r in rows]
    fig.tight_layout()
    png = stem.with_suffix(".png")
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=120)
    plt.close(fig)
    numbers = headline_numbers(stem)
    write_csv(numbers["dilemma_csv"], points)
    numbers["dilemma_json"].write_text(json.dumps({"points": points}, indent=1, default=str))
    return {"dilemma": png}


def names_condition(config: dict[str, Any]) -> str:
    """How an IOI run's names relate fitting to test: its data regime's roles and split, or the task's name split."""
    options = config.get("task_options") or {}
    if options:
        roles = f"{options.get('roles', 'random')} roles"
        return f"{roles}, disjoint names" if options.get("split") == "names" else f"{roles}, shared names"
    return "disjoint names" if str(config.get("algorithm", "")).endswith("disjoint") else "shared names"


def _ioi_panel(ax, recs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Grouped bars: per map, test IIA on each (network, names) cell, with the spread over seeds."""
    recs = [{**r, "config": {**r["config"], "names": names_condition(r["config"])}} for r in recs]
    rows = [s.to_dict() for s in summarize(recs, by=["target", "target_options.size", "names", "alignment"],
                                           metrics=["iia", "num_parameters"])]
    specs = list(dict.fromkeys(r["alignment"] for r in rows))
    cells = list(dict.fromkeys((r["target"], r["target_options.size"], r["names"]) for r in rows))
    width = 0.8 / len(cells)
    for k, cell in enumerate(cells):
        got = {r["alignment"]: r for r in rows if (r["target"], r["target_options.size"], r["names"]) == cell}
        xs = [i + (k - (len(cells) - 1) / 2) * width for i, s in enumerate(specs) if s in got]
        ax.bar(xs, [got[s]["iia_mean"] for s in specs if s in got], width, label=f"{cell[0]} {cell[1]}, {cell[2]}",
               yerr=[_spread(got[s]["iia_std"]) for s in specs if s in got], capsize=2,
               hatch="//" if "disjoint" in cell[2] or cell[2].startswith("random roles") else None)
    ax.set_xticks(range(len(specs)), [_short(s) for s in specs], fontsize=8)
    title = "fixed vs random name roles" if any(r["config"].get("task_options") for r in recs) else "shared vs disjoint names"
    ax.set_title(f"(c) IOI pattern, last token: {title}", fontsize=9)
    ax.legend(fontsize=7)
    ax.axhline(_chance(recs), color="grey", lw=0.8, ls=":")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("test IIA")
    ax.grid(alpha=0.3, axis="y")
    return rows


def _chance(recs: Sequence[dict[str, Any]]) -> float:
    """The runs' mean chance level where their records have it, else 0.5 (two balanced classes; IOI's two names)."""
    values = [r["chance"] for r in recs if isinstance(r.get("chance"), (int, float)) and r["chance"] == r["chance"]]
    return sum(values) / len(values) if values else 0.5


def _spread(std: Any) -> float:
    """A seed spread for an error bar: 0 for one seed (no spread measured)."""
    return float(std) if isinstance(std, (int, float)) and std == std else 0.0


def _short(alignment: str) -> str:
    """``revnet:blocks=10,hidden=16`` -> ``revnet(10,16)``, for labels."""
    if alignment.startswith("revnet:"):
        knobs = dict(kv.split("=") for kv in alignment.split(":", 1)[1].split(","))
        return f"revnet({knobs.get('blocks', '?')},{knobs.get('hidden', '?')})"
    return alignment


SCORE_BARS = (("selectivity_network", "vs control networks"), ("selectivity_algorithm", "vs control algorithm"),
              ("ood_gap", "OOD gap (in - out)"))


def scores_figure(rows: Sequence[dict[str, Any]], curves: Sequence[dict[str, Any]], stem: str | os.PathLike) -> dict[str, Path]:
    """(a) per map of the first scored group: the score differences with 95% intervals;
    (b) the sample-efficiency curve (train and test IIA against fitting pairs), when measured."""
    stem = Path(stem)
    if not rows:
        return {}
    first = (rows[0]["experiment"], rows[0]["algorithm"], rows[0]["layer"])
    rows = [r for r in rows if (r["experiment"], r["algorithm"], r["layer"]) == first]
    curves = [c for c in curves if (c["experiment"], c["algorithm"], c["layer"]) == first]
    plt = pyplot()
    fig, axes = plt.subplots(1, 2 if curves else 1, figsize=(5.4 * (2 if curves else 1), 4.0), squeeze=False)
    ax = axes[0][0]
    width = 0.8 / len(SCORE_BARS)
    for k, (key, label) in enumerate(SCORE_BARS):
        xs = [i + (k - 1) * width for i, r in enumerate(rows) if r.get(key) is not None]
        got = [r for r in rows if r.get(key) is not None]
        if got:
            ax.bar(xs, [r[key] for r in got], width, label=label,
                   yerr=[[r[key] - r[f"{key}_ci_low"] for r in got], [r[f"{key}_ci_high"] - r[key] for r in got]],
                   capsize=3)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(range(len(rows)), [f"{r['map']}\n({r['params']:,} params)" for r in rows], fontsize=7)
    ax.set_ylabel("IIA difference (95% interval)")
    ax.set_title(f"(a) scores per map: {first[1]}, layer {first[2]} ({first[0]})", fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    if curves:
        ax = axes[0][1]
        for spec in dict.fromkeys(c["map"] for c in curves):
            pts = sorted((c for c in curves if c["map"] == spec), key=lambda c: c["n_pairs"])
            xs = [c["n_pairs"] for c in pts]
            line = ax.plot(xs, [c["test_iia"] for c in pts], marker="o", label=f"{spec}: test")[0]
            ax.plot(xs, [c["train_iia"] for c in pts], marker="s", ls="--", color=line.get_color(), label=f"{spec}: train")
        chance = next((c["chance"] for c in curves if c.get("chance") is not None), None)
        if chance is not None:
            ax.axhline(chance, color="grey", lw=0.8, ls=":", label="chance")
        ax.set_xscale("log")
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("fitting pairs")
        ax.set_ylabel("IIA")
        ax.set_title("(b) sample efficiency on the real network", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    png = stem.with_suffix(".png")
    fig.savefig(png, dpi=120)
    plt.close(fig)
    points = [{"panel": "scores", **r} for r in rows] + [{"panel": "sample_efficiency", **c} for c in curves]
    return {stem.name: png, **write_numbers(stem, points, {"panels": ["scores", "sample_efficiency"]})}


SCALING_MAP = "revnet:blocks=8,hidden=64"


def _scaling_runs(records: Sequence[dict[str, Any]], alignment: str, init: str) -> list[dict[str, Any]]:
    """The shared-names pattern fits of one map family on random LMs of one init, at half the width, full-vocabulary loss."""
    runs = []
    for r in records:
        c = r.get("config") or {}
        width = r.get("width")
        if (c.get("algorithm") != "ioi_pattern" or c.get("target") != "random" or c.get("alignment") != alignment
                or c.get("loss", "task") != "task" or not width or c.get("intervention_size") != width // 2
                or (c.get("target_options") or {}).get("init", init) != init):
            continue
        test = (r.get("test") or {}).get("overall") or {}
        runs.append({"width": width, "n_train": c.get("n_train"), "sentences": 2 * int(c.get("n_train") or 0),
                     "seed": c.get("seed"), "steps": r.get("steps"), "train_iia": r.get("train_iia"), "test_iia": r.get("iia"),
                     "ci_low": test.get("ci_low"), "ci_high": test.get("ci_high"), "hash": r.get("hash"),
                     "curve": [(e.get("steps", 0), e["val_iia"]) for e in r.get("history") or [] if "val_iia" in e]})
    return runs


def ioi_scaling_figure(records: Sequence[dict[str, Any]], probes: Sequence[dict[str, Any]], stem: str | os.PathLike,
                       alignment: str = SCALING_MAP, base_width: int = 128, base_pairs: int = 100_000,
                       init: str = "pythia") -> dict[str, Path]:
    """Where the IOI alignment would appear: test and train IIA against distinct sentences, width and steps.

    ``records`` are sweep records (``ioi_steps``); the shared-names ``ioi_pattern`` fits of
    ``alignment`` on random LMs of initialisation ``init`` (that of the read-out's models)
    aligning half the width are used. ``probes`` are
    ``benchmarks/ioi_pattern_probe.py --out`` records: the MLP read-out's held-out accuracy
    of the pattern at the same site, plotted beside the fits. Panels: (a) at ``base_width``,
    against the distinct sentences fitted on (two per pair) or read; (b) at
    ``base_pairs`` fitting pairs, against the width (the read-out at the same number of
    sentences where measured); (c) validation IIA against fitting steps, per run. One
    marker per seed; the 95% interval of each test IIA as its error bar. Skipped (``{}``)
    when no record qualifies.
    """
    stem = Path(stem)
    need = ("width", "sentences", "probe_test_accuracy")
    for i, p in enumerate(probes):
        missing = [k for k in need if not isinstance(p, dict) or k not in p]
        if missing:
            raise ConfigError(f"probe record {i} lacks {', '.join(missing)}: probes are benchmarks/ioi_pattern_probe.py "
                              f"--out records, each with {', '.join(need)}")
    runs = _scaling_runs(records, alignment, init)
    if not runs:
        return {}
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.0))
    points: list[dict[str, Any]] = []

    def fits(ax, pts, x):
        pts = sorted(pts, key=lambda p: p[x])
        err = [[p["test_iia"] - p["ci_low"] for p in pts], [p["ci_high"] - p["test_iia"] for p in pts]] \
            if all(p["ci_low"] is not None for p in pts) else None
        ax.errorbar([p[x] for p in pts], [p["test_iia"] for p in pts], yerr=err, marker="o", ls="none", capsize=3,
                    color="C0", label=f"{_short(alignment)} test IIA")
        ax.plot([p[x] for p in pts], [p["train_iia"] for p in pts], marker="^", ls="none", color="C1",
                label=f"{_short(alignment)} train IIA")
        points.extend({"panel": ax.get_title()[:3], "x": x, **{k: v for k, v in p.items() if k != "curve"}} for p in pts)

    def probe(ax, pts, x, label):
        pts = sorted(pts, key=lambda p: p[x])
        if pts:
            ax.plot([p[x] for p in pts], [p["probe_test_accuracy"] for p in pts], marker="s", color="C2", label=label)
            points.extend({"panel": ax.get_title()[:3], "x": x, "series": "probe", **p} for p in pts)

    a, b, c = axes
    a.set_title(f"(a) width {base_width}: distinct sentences", fontsize=9)
    fits(a, [p for p in runs if p["width"] == base_width], "sentences")
    probe(a, [p for p in probes if p.get("width") == base_width], "sentences", "MLP read-out of the pattern (held out)")
    a.set_xscale("log")
    from matplotlib.ticker import FuncFormatter, NullFormatter

    a.set_xticks(sorted({p["sentences"] for p in points if p.get("panel") == "(a)"}))
    a.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:g}k" if v >= 1000 else f"{v:g}"))
    a.xaxis.set_minor_formatter(NullFormatter())
    a.set_xlabel("distinct sentences (fitting: two per pair)")
    b.set_title(f"(b) {base_pairs:,} fitting pairs: width", fontsize=9)
    fits(b, [p for p in runs if p["n_train"] == base_pairs], "width")
    probe(b, [p for p in probes if p.get("sentences") == 2 * base_pairs], "width",
          f"MLP read-out, {2 * base_pairs:,} sentences")
    b.set_xscale("log", base=2)
    widths = sorted({p["width"] for p in points if p.get("panel") == "(b)"})
    b.set_xticks(widths, [str(w) for w in widths])
    b.xaxis.set_minor_formatter(NullFormatter())
    b.set_xlabel("model width (random Pythia-like, middle layer)")
    c.set_title("(c) validation IIA against fitting steps", fontsize=9)
    for p in sorted(runs, key=lambda p: (p["width"], p["n_train"], p["seed"])):
        if len(p["curve"]) >= 2:
            c.plot(*zip(*p["curve"]), marker=".", lw=1, label=f"width {p['width']}, {p['n_train']:,} pairs, seed {p['seed']}")
    c.set_xlabel("fitting steps")
    for ax in axes:
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set_ylim(0.4, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    a.set_ylabel("accuracy / IIA")
    fig.tight_layout()
    png = stem.with_suffix(".png")
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return {stem.name: png, **write_numbers(stem, points, {"alignment": alignment, "panels": ["sentences", "width", "steps"]})}
