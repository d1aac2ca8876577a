"""Figures (PNG, Agg backend), each written with the numbers it plots (CSV and JSON beside it).

- IIA against map complexity (the alignment map's parameter count), trained vs
  random (vs oracle) networks, one panel per algorithm: the dilemma's picture.
- IIA across a training progression (a config field such as
  ``target_options.samples``), one line per alignment family.
- Learning curves: each run's train and validation IIA and validation loss against
  its fitting steps, from the per-epoch ``history`` in its record.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from causalab.experiments.summary import SEED_FIELDS, flatten, summarize, varying_fields, write_csv

PROGRESSION_FIELDS = ("target_options.samples", "target_options.checkpoint", "target_options.step", "checkpoint", "step")


def pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def write_numbers(stem: Path, rows: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, Path]:
    csv_path = write_csv(stem.with_suffix(".csv"), rows)
    json_path = stem.with_suffix(".json")
    json_path.write_text(json.dumps({**meta, "points": rows}, indent=1, default=str))
    return {f"{stem.name}_csv": csv_path, f"{stem.name}_json": json_path}


def _panels(rows: Sequence[dict[str, Any]], n: int):
    plt = pyplot()
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
    files.update(write_numbers(stem, rows, meta))
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
        ax.set_xscale("linear")  # checkpoints are evenly spaced in training progress
        ax.relim()
        ax.autoscale_view()
    return _save(plt, fig, axes, stem, rows, {"x": field, "y": "iia", "series": "alignment"})


def _curve(record: dict[str, Any]) -> list[dict[str, Any]]:
    """A record's per-epoch history as points with a step count (the evaluation before fitting is step 0)."""
    points = []
    for entry in record.get("history") or []:
        if "val_iia" not in entry:
            continue
        points.append({"steps": int(entry.get("steps", 0)), **{k: entry.get(k) for k in ("epoch", "train_iia", "val_iia", "val_loss")}})
    return points


def _distinct_columns(rows: Sequence[dict[str, Any]], fields: Sequence[str]) -> list[str]:
    """``fields`` without those whose values repeat an earlier kept field's in every row (``target_seed`` = ``seed``)."""
    kept: list[str] = []
    for f in fields:
        column = [r.get(f) for r in rows]
        if not any(column == [r.get(g) for r in rows] for g in kept):
            kept.append(f)
    return kept


def learning_curves_figure(records: Sequence[dict[str, Any]], stem: str | os.PathLike) -> dict[str, Path]:
    """Train (dashed) and validation (solid) IIA, and validation loss, against fitting steps; one line per run.

    Runs are labelled by the config fields that differ between them, seeds last; a field that
    always repeats another's values (``target_seed`` beside an equal ``seed``) is left out.
    Skipped unless some record's history holds at least two evaluations.
    """
    stem = Path(stem)
    runs = [(r, _curve(r)) for r in records]
    runs = [(r, c) for r, c in runs if len(c) >= 2]
    if not runs:
        return {}
    flat = [flatten(r) for r, _ in runs]
    fields = sorted((f for f in varying_fields(flat, exclude=()) if f not in ("iia", "train_iia")),
                    key=lambda f: f in SEED_FIELDS)  # what was varied first, then the seeds
    fields = _distinct_columns(flat, fields)
    plt = pyplot()
    legend_h = 0.16 * (len(runs) + 1)
    fig, (ax_iia, ax_loss) = plt.subplots(1, 2, figsize=(10, 3.6 + legend_h))
    rows = []
    for (record, curve), row in zip(runs, flat):
        label = ", ".join(f"{f.split('.')[-1]}={row.get(f)}" for f in fields) or str(record.get("hash", ""))
        xs = [p["steps"] for p in curve]
        line, = ax_iia.plot(xs, [p["val_iia"] for p in curve], marker=".", label=label)
        if any(p["train_iia"] is not None for p in curve):
            ax_iia.plot(xs, [p["train_iia"] for p in curve], ls="--", color=line.get_color())
        if any(p["val_loss"] is not None for p in curve):
            ax_loss.plot(xs, [p["val_loss"] for p in curve], marker=".", color=line.get_color(), label=label)
        rows += [{"run": label, "hash": record.get("hash"), **p} for p in curve]
    ax_iia.set_ylim(0, 1.05)
    ax_iia.set_ylabel("IIA (validation solid, train dashed)")
    ax_loss.set_ylabel("validation loss")
    for ax in (ax_iia, ax_loss):
        ax.set_xlabel("fitting steps")
        ax.grid(alpha=0.3)
    fig.tight_layout(rect=(0, legend_h / (3.6 + legend_h), 1, 1))
    fig.legend(*ax_iia.get_legend_handles_labels(), loc="lower center", fontsize=7, frameon=False)
    png = stem.with_suffix(".png")
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return {stem.name: png, **write_numbers(stem, rows, {"x": "steps", "y": ["val_iia", "train_iia", "val_loss"], "series": "run"})}
