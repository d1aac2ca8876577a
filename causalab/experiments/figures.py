"""Figures (PNG, Agg backend), each written with the numbers it plots (CSV and JSON beside it).

- IIA against map complexity (the alignment map's parameter count), trained vs
  random (vs oracle) networks, one panel per algorithm: the dilemma's picture.
- IIA across a training progression (a config field such as
  ``target_options.samples``), one line per alignment family.
- The dilemma's scores (:mod:`causalab.experiments.dilemma_scores`): selectivity and
  OOD gap per map with intervals, and the sample-efficiency curve.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from causalab.experiments.report import flatten, summarize, write_csv

PROGRESSION_FIELDS = ("target_options.samples", "target_options.checkpoint", "target_options.step", "checkpoint", "step")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _write_numbers(stem: Path, rows: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, Path]:
    csv_path = write_csv(stem.with_suffix(".csv"), rows)
    json_path = stem.with_suffix(".json")
    json_path.write_text(json.dumps({**meta, "points": rows}, indent=1, default=str))
    return {f"{stem.name}_csv": csv_path, f"{stem.name}_json": json_path}


def _panels(rows: Sequence[dict[str, Any]], n: int):
    plt = _pyplot()
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 3.8), squeeze=False, sharey=True)
    return plt, fig, axes[0]


def complexity_figure(records: Sequence[dict[str, Any]], stem: str | os.PathLike) -> dict[str, Path]:
    """IIA (mean ± std over seeds) against the map's parameter count; one series per target kind."""
    stem = Path(stem)
    summary = summarize(records, by=["algorithm", "target", "alignment"], metrics=["iia", "num_parameters"])
    if not summary:
        return {}
    rows = [s.to_dict() for s in summary]
    algorithms = list(dict.fromkeys(r["algorithm"] for r in rows))
    plt, fig, axes = _panels(rows, len(algorithms))
    for ax, alg in zip(axes, algorithms):
        for target in dict.fromkeys(r["target"] for r in rows if r["algorithm"] == alg):
            pts = sorted((r for r in rows if r["algorithm"] == alg and r["target"] == target),
                         key=lambda r: r["num_parameters_mean"])
            xs = [r["num_parameters_mean"] for r in pts]
            ax.errorbar(xs, [r["iia_mean"] for r in pts], yerr=[r["iia_std"] for r in pts], marker="o", capsize=3,
                        label=target)
            for r in pts:
                ax.annotate(r["alignment"], (r["num_parameters_mean"], r["iia_mean"]), fontsize=7,
                            textcoords="offset points", xytext=(3, 3))
        _style(ax, alg, "alignment-map parameters", "network")
    return _save(plt, fig, axes, stem, rows, {"x": "num_parameters", "y": "iia", "series": "target"})


def _style(ax, title: str, xlabel: str, legend_title: str) -> None:
    ax.set_xscale("symlog", linthresh=1)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title=legend_title, title_fontsize=8)


def _save(plt, fig, axes, stem: Path, rows: list[dict[str, Any]], meta: dict[str, str]) -> dict[str, Path]:
    """Label, save the PNG, and write the plotted numbers beside it."""
    axes[0].set_ylabel("test IIA (mean ± std over seeds)")
    fig.tight_layout()
    png = stem.with_suffix(".png")
    fig.savefig(png, dpi=120)
    plt.close(fig)
    files = {stem.name: png}
    files.update(_write_numbers(stem, rows, meta))
    return files


def find_progression_field(records: Sequence[dict[str, Any]]) -> str | None:
    rows = [flatten(r) for r in records]
    for name in PROGRESSION_FIELDS:
        if len({r.get(name) for r in rows if r.get(name) is not None}) > 1:
            return name
    return None


def progression_figure(records: Sequence[dict[str, Any]], stem: str | os.PathLike, field: str | None = None) -> dict[str, Path]:
    """IIA (mean ± std over seeds) across the values of a training-progress field; skipped when none varies."""
    stem = Path(stem)
    field = field or find_progression_field(records)
    if field is None:
        return {}
    records = [r for r in records if flatten(r).get(field) is not None]
    summary = summarize(records, by=["algorithm", "alignment", field], metrics=["iia"])
    rows = [s.to_dict() for s in summary]
    if not rows:
        return {}
    algorithms = list(dict.fromkeys(r["algorithm"] for r in rows))
    plt, fig, axes = _panels(rows, len(algorithms))
    for ax, alg in zip(axes, algorithms):
        for al in dict.fromkeys(r["alignment"] for r in rows if r["algorithm"] == alg):
            pts = sorted((r for r in rows if r["algorithm"] == alg and r["alignment"] == al), key=lambda r: r[field])
            ax.errorbar([r[field] for r in pts], [r["iia_mean"] for r in pts], yerr=[r["iia_std"] for r in pts],
                        marker="o", capsize=3, label=al)
        _style(ax, alg, field, "alignment")
    return _save(plt, fig, axes, stem, rows, {"x": field, "y": "iia", "series": "alignment"})


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
    plt = _pyplot()
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
    return {stem.name: png, **_write_numbers(stem, points, {"panels": ["scores", "sample_efficiency"]})}
