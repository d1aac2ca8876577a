"""Figures (PNG, Agg backend), each written with the numbers it plots (CSV and JSON beside it).

- IIA against map complexity (the alignment map's parameter count): one line per network,
  one marker per alignment family.
- IIA across a training progression (a config field such as
  ``target_options.samples``), one line per alignment family.
- Learning curves: each run's train and validation IIA and validation loss against
  its fitting steps, from the per-epoch ``history`` in its record; one colour per
  configuration, its seeds drawn alike.

Whatever else varies between the records (the layer, the algorithm, the pair counts) gets a
panel of its own, never a pooled point: a point's spread is the spread over seeds alone. Each
IIA panel draws the chance level of its runs (dotted) where the records have it.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from causalab.experiments.summary import SEED_FIELDS, flatten, sort_key, summarize, varying_fields, write_csv

PROGRESSION_FIELDS = ("target_options.samples", "target_options.checkpoint", "target_options.step", "checkpoint", "step")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")
MAX_COLUMNS = 4


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


# --- what varies: series within a panel, panels for the rest -------------------------------
def split_fields(flat: Sequence[dict[str, Any]], series: Sequence[str], skip: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """The fields that vary across ``flat`` (seeds aside), split into series fields and panel (facet) fields.

    ``series`` names the fields drawn as lines within a panel; with ``"target"`` among them the
    network's options (``target_options.*``) join it, since they describe the network. Everything
    else that varies, the layer included, gets panels of its own. ``skip`` names fields on an axis.
    """
    varying = varying_fields(flat, exclude=(*SEED_FIELDS, *skip))
    ser = [f for f in varying if f in series or ("target" in series and f.startswith("target_options."))]
    return ser, [f for f in varying if f not in ser]


def _label(fields: Sequence[str], row: dict[str, Any], bare: Sequence[str] = ("target", "alignment")) -> str:
    """``"trained, samples=1000"``: bare values for ``bare`` fields, ``name=value`` for the rest."""
    parts = [str(row.get(f)) if f in bare else f"{f.split('.')[-1]}={row.get(f)}" for f in fields]
    return ", ".join(parts)


def _groups(rows: Sequence[dict[str, Any]], fields: Sequence[str]) -> list[tuple[tuple, list[dict[str, Any]]]]:
    """Rows grouped by their values of ``fields``, groups in sorted order."""
    out: dict[str, tuple[tuple, list[dict[str, Any]]]] = {}
    for r in rows:
        key = tuple(r.get(f) for f in fields)
        out.setdefault(json.dumps(key, default=str), (key, []))[1].append(r)
    return sorted(out.values(), key=lambda kv: [sort_key(v) for v in kv[0]])


def _grid(plt, facets: Sequence[str], panels: Sequence[tuple], width: float = 4.4, height: float = 3.4,
          sharey: bool = True):
    """A grid of panels: the last facet field's values across (up to MAX_COLUMNS), the rest down."""
    n = len(panels)
    across = len({p[-1] for p in panels}) if facets else 1
    cols = max(1, min(across if across > 1 else n, MAX_COLUMNS, n))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False, sharey=sharey)
    flat_axes = [ax for row in axes for ax in row]
    for ax in flat_axes[n:]:
        ax.set_visible(False)
    return fig, flat_axes[:n]


def _chance_line(ax, members: Sequence[dict[str, Any]]) -> float | None:
    """Draw the runs' mean chance level (dotted) and return it; nothing where the records lack it."""
    values = [r.get("chance") for r in members]
    values = [v for v in values if isinstance(v, (int, float)) and not math.isnan(v)]
    if not values:
        return None
    chance = statistics.fmean(values)
    ax.axhline(chance, color="grey", lw=1, ls=":", label="chance")
    return chance


def _spread_label(summary_rows: Sequence[dict[str, Any]]) -> str:
    n = max((r.get("n", 1) for r in summary_rows), default=1)
    return f"test IIA (mean ± std over {n} seeds)" if n > 1 else "test IIA"


def _finish(plt, fig, stem: Path, rows: list[dict[str, Any]], meta: dict[str, Any], handles=None) -> dict[str, Path]:
    """One legend for the whole figure (right of the panels), save the PNG, write the plotted numbers beside it."""
    if handles:
        fig.legend(*handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    fig.tight_layout()
    png = stem.with_suffix(".png")
    fig.savefig(png, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return {stem.name: png, **write_numbers(stem, rows, meta)}


def _unique_handles(axes) -> tuple[list, list[str]]:
    """The panels' legend entries, each label once, in order of first appearance."""
    seen: dict[str, Any] = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    return list(seen.values()), list(seen)


# --- the figures --------------------------------------------------------------------------
def complexity_figure(records: Sequence[dict[str, Any]], stem: str | os.PathLike) -> dict[str, Path]:
    """IIA (mean ± std over seeds) against the map's parameter count.

    One line per network (the target and its options), one marker per alignment family; a
    panel per value of anything else that varies (algorithm, layer, ...), with the chance level.
    """
    stem = Path(stem)
    flat = [flatten(r) for r in records]
    if not flat:
        return {}
    series, facets = split_fields(flat, series=("target", "alignment"))
    series = [f for f in series if f != "alignment"]
    by = list(dict.fromkeys([*facets, *series, "target", "alignment"]))
    summary = summarize(records, by=by, metrics=["iia", "num_parameters", "chance"])
    rows = [s.to_dict() for s in summary]
    plt = pyplot()
    panels = _groups(rows, facets)
    fig, axes = _grid(plt, facets, [k for k, _ in panels])
    size = {}  # each family's smallest parameter count: the legend lists maps from simple to complex
    for r in rows:
        size[r["alignment"]] = min(size.get(r["alignment"], float("inf")), r["num_parameters_mean"])
    alignments = sorted(size, key=lambda al: (size[al], str(al)))
    marker = {al: MARKERS[i % len(MARKERS)] for i, al in enumerate(alignments)}
    networks = [k for k, _ in _groups(rows, series or ["target"])]
    colour = {k: f"C{i % 10}" for i, k in enumerate(networks)}
    for ax, (key, members) in zip(axes, panels):
        for net, pts in _groups(members, series or ["target"]):
            pts = sorted(pts, key=lambda r: (r["num_parameters_mean"], str(r["alignment"])))
            xs, ys = [r["num_parameters_mean"] for r in pts], [r["iia_mean"] for r in pts]
            ax.plot(xs, ys, color=colour[net], lw=1, alpha=0.7, label="network: " + _label(series or ["target"], pts[0]))
            for r in pts:
                ax.errorbar(r["num_parameters_mean"], r["iia_mean"], yerr=r["iia_std"], color=colour[net],
                            marker=marker[r["alignment"]], ms=6, capsize=3, ls="none")
        _chance_line(ax, [{"chance": r.get("chance_mean")} for r in members])
        ax.set_title(_label(facets, dict(zip(facets, key)), bare=()) or "all runs", fontsize=9)
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlim(-0.5, 3 * max([1.0, *(r["num_parameters_mean"] for r in members)]))  # no negative counts
        ax.set_xlabel("alignment-map parameters")
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
    for ax in axes[::max(1, _columns(axes))]:
        ax.set_ylabel(_spread_label(rows))
    handles, labels = _unique_handles(axes)
    map_handles = [plt.Line2D([], [], color="black", marker=marker[al], ls="none") for al in alignments]
    return _finish(plt, fig, stem, rows, {"x": "num_parameters", "y": "iia", "series": series or ["target"],
                                          "markers": "alignment", "panels": facets},
                   handles=(handles + map_handles, labels + [f"map: {al}" for al in alignments]))


def _columns(axes) -> int:
    """How many panels a row of the grid holds."""
    if not axes:
        return 1
    spec = axes[0].get_subplotspec()
    return spec.get_gridspec().ncols


def find_progression_field(records: Sequence[dict[str, Any]]) -> str | None:
    rows = [flatten(r) for r in records]
    for name in PROGRESSION_FIELDS:
        if len({r.get(name) for r in rows if r.get(name) is not None}) > 1:
            return name
    return None


def progression_figure(records: Sequence[dict[str, Any]], stem: str | os.PathLike, field: str | None = None) -> dict[str, Path]:
    """IIA (mean ± std over seeds) across the values of a training-progress field, one line per alignment
    family, a panel per value of anything else that varies; skipped when no progress field varies."""
    stem = Path(stem)
    field = field or find_progression_field(records)
    if field is None:
        return {}
    records = [r for r in records if flatten(r).get(field) is not None]
    flat = [flatten(r) for r in records]
    if not flat:
        return {}
    series, facets = split_fields(flat, series=("alignment",), skip=(field,))
    series = series or ["alignment"]
    summary = summarize(records, by=list(dict.fromkeys([*facets, *series, field])), metrics=["iia", "chance"])
    rows = [s.to_dict() for s in summary]
    plt = pyplot()
    panels = _groups(rows, facets)
    fig, axes = _grid(plt, facets, [k for k, _ in panels])
    for ax, (key, members) in zip(axes, panels):
        for i, (_, pts) in enumerate(_groups(members, series)):
            pts = sorted(pts, key=lambda r: sort_key(r[field]))
            ax.errorbar([r[field] for r in pts], [r["iia_mean"] for r in pts], yerr=[r["iia_std"] for r in pts],
                        marker=MARKERS[i % len(MARKERS)], capsize=3, label=_label(series, pts[0]))
        _chance_line(ax, [{"chance": r.get("chance_mean")} for r in members])
        ax.set_title(_label(facets, dict(zip(facets, key)), bare=()) or "all runs", fontsize=9)
        ax.set_xlabel(field)
        values = sorted({r[field] for r in members if isinstance(r[field], (int, float))})
        if 0 < len(values) <= 6:  # the progress points themselves, slanted so that long numbers do not collide
            ax.set_xticks(values)
        else:
            ax.locator_params(axis="x", nbins=5)
        ax.tick_params(axis="x", labelrotation=30)
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
    for ax in axes[::max(1, _columns(axes))]:
        ax.set_ylabel(_spread_label(rows))
    return _finish(plt, fig, stem, rows, {"x": field, "y": "iia", "series": series, "panels": facets},
                   handles=_unique_handles(axes))


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
    """Validation (solid) and train (dashed) IIA, and validation loss, against fitting steps.

    One colour per configuration (alignment and network), its seeds drawn alike under one legend
    entry; a row of panels (IIA, loss) per value of anything else that varies (algorithm, layer, ...).
    The numbers name each run by the config fields that differ between runs, seeds last (a field
    that always repeats another's values, ``target_seed`` beside an equal ``seed``, is left out).
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
    series, facets = split_fields(flat, series=("alignment", "target"))
    for row, (_, curve) in zip(flat, runs):
        row["_curve"] = curve
    plt = pyplot()
    panels = _groups(flat, facets)
    fig, axes = plt.subplots(len(panels), 2, figsize=(10, 3.2 * len(panels)), squeeze=False)
    configs = [k for k, _ in _groups(flat, series)]
    palette = "tab10" if len(configs) <= 10 else "tab20"
    colour = {k: plt.get_cmap(palette)(i % 20) for i, k in enumerate(configs)}
    numbers = []
    for (ax_iia, ax_loss), (key, members) in zip(axes, panels):
        for cfg, runs_of in _groups(members, series):
            label = _label(series, runs_of[0]) or "all runs"
            for i, row in enumerate(runs_of):
                curve = row["_curve"]
                xs = [p["steps"] for p in curve]
                kw = {"color": colour[cfg], "lw": 1.2, "label": label if i == 0 else None}
                ax_iia.plot(xs, [p["val_iia"] for p in curve], **kw)
                if any(p["train_iia"] is not None for p in curve):
                    ax_iia.plot(xs, [p["train_iia"] for p in curve], color=colour[cfg], lw=0.8, ls="--", alpha=0.6)
                if any(p["val_loss"] is not None for p in curve):
                    ax_loss.plot(xs, [p["val_loss"] for p in curve], color=colour[cfg], lw=1.2)
        _chance_line(ax_iia, members)
        title = _label(facets, dict(zip(facets, key)), bare=())
        ax_iia.set_title(title or "IIA", fontsize=9)
        ax_loss.set_title(title or "validation loss", fontsize=9)
        ax_iia.set_ylim(0, 1.05)
        ax_iia.set_ylabel("IIA (validation solid, train dashed)")
        ax_loss.set_ylabel("validation loss")
        for ax in (ax_iia, ax_loss):
            ax.set_xlabel("fitting steps")
            ax.grid(alpha=0.3)
    for (record, curve), row in zip(runs, flat):
        label = ", ".join(f"{f.split('.')[-1]}={row.get(f)}" for f in fields) or str(record.get("hash", ""))
        numbers += [{"run": label, "hash": record.get("hash"), **p} for p in curve]
    return _finish(plt, fig, stem, numbers, {"x": "steps", "y": ["val_iia", "train_iia", "val_loss"], "series": "run",
                                             "colours": series, "panels": facets},
                   handles=_unique_handles([ax for pair in axes for ax in pair]))
