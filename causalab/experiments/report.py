"""Tables and report folders from a results file: group runs by any fields, mean and spread over seeds.

A record is read through :func:`~causalab.experiments.summary.flatten`: config fields by name (``alignment``,
``layer``, ``target_options.hidden``), and metrics ``iia``, ``ci_low``, ``ci_high``,
``train_iia``, ``num_parameters``, ``width``, ``seconds``, ``iia[V1]`` per
intervention set, and what an IIA is read against: ``chance`` and ``network_accuracy``.
:func:`~causalab.experiments.summary.summarize` groups by fields (by default every config field
that varies, except the seeds) and aggregates each metric over the group.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from causalab.errors import ReportError
from causalab.experiments import figures
from causalab.experiments.store import load_records
from causalab.experiments.summary import (
    SEED_FIELDS,
    SummaryRow,
    flatten,
    sort_key,
    summarize,
    varying_fields,
    write_csv,
)

FORMATS = ("markdown", "plain")


def _num(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, float) and x.is_integer() and abs(x) >= 10:
        return str(int(x))
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


CHANCE_MARK = "~"
CHANCE_NOTE = (f"{CHANCE_MARK}: the IIA's 95% interval contains its chance level ({CHANCE_MARK}k/n: in k of the row's n runs). "
               "chance: the IIA of the best answer blind to the source (the most frequent class; for IOI's two names, always "
               "keeping or always switching the base's answer); network acc: the network's own "
               "accuracy on the test bases, without intervention.")


def chance_mark(stats: dict[str, dict[str, float]], n: int) -> str:
    """``" ~"`` when every run's IIA interval contains its chance level, ``" ~k/n"`` when k of n do, else ``""``."""
    share = stats.get("at_chance", {}).get("mean")
    if share is None or math.isnan(share) or share == 0:
        return ""
    k = round(share * n)
    return f" {CHANCE_MARK}" if k >= n else f" {CHANCE_MARK}{max(k, 1)}/{n}"


def _reference_columns(summary: Sequence[SummaryRow]) -> list[str]:
    """The chance and network-accuracy columns, where some row has them (records older than them do not)."""
    return [m for m in ("chance", "network_accuracy") if any(not math.isnan(s.stats.get(m, {}).get("mean", math.nan))
                                                              for s in summary)]


REFERENCE_HEADERS = {"chance": "chance", "network_accuracy": "network acc"}


def table_rows(summary: Sequence[SummaryRow], metric: str = "iia") -> tuple[list[str], list[list[str]]]:
    """Header and text cells: group fields, runs, metric mean ± std [min, max], chance level, network accuracy,
    map parameters. An IIA mean whose runs' 95% intervals contain the chance level is marked (:data:`CHANCE_NOTE`)."""
    if not summary:
        return [], []
    by = list(summary[0].key)
    refs = _reference_columns(summary)
    header = [*by, "runs", f"{metric} mean", "± std", "min", "max", *(REFERENCE_HEADERS[m] for m in refs), "params"]
    body = []
    for s in summary:
        st = s.stats.get(metric, {})
        params = s.stats.get("num_parameters", {}).get("mean")
        mark = chance_mark(s.stats, s.n) if metric == "iia" else ""
        body.append([*(_num(s.key[b]) for b in by), str(s.n), _num(st.get("mean")) + mark, _num(st.get("std")),
                     _num(st.get("min")), _num(st.get("max")), *(_num(s.stats.get(m, {}).get("mean")) for m in refs),
                     _num(params, 0) if params is not None else "-"])
    return header, body


def with_chance_note(table: str, body: Sequence[Sequence[str]], fmt: str = "markdown") -> str:
    """``table`` with :data:`CHANCE_NOTE` below it when some cell carries the chance mark."""
    if not any(f" {CHANCE_MARK}" in cell for row in body for cell in row):
        return table
    return table + ("\n" if fmt == "markdown" else "") + CHANCE_NOTE + "\n"


def format_table(header: Sequence[str], body: Sequence[Sequence[str]], fmt: str = "markdown") -> str:
    """A markdown (pipe) table or an aligned plain-text table."""
    if fmt not in FORMATS:
        raise ReportError(f"unknown table format {fmt!r}; valid: {', '.join(FORMATS)}")
    if not header:
        return "(no records)\n"
    widths = [max(len(str(r[i])) for r in [header, *body]) for i in range(len(header))]
    if fmt == "markdown":
        lines = ["| " + " | ".join(str(h).ljust(w) for h, w in zip(header, widths)) + " |",
                 "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
        lines += ["| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |" for r in body]
    else:
        lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths)).rstrip(), "  ".join("-" * w for w in widths)]
        lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in body]
    return "\n".join(lines) + "\n"


def summary_table(records: Sequence[dict[str, Any]], by: Sequence[str] | None = None, fmt: str = "markdown",
                  metric: str = "iia") -> str:
    """The headline table: ``metric`` mean and spread over seeds, grouped by ``by``, beside its chance level."""
    header, body = table_rows(summarize(records, by), metric)
    return with_chance_note(format_table(header, body, fmt=fmt), body, fmt)


def layer_table(records: Sequence[dict[str, Any]], fmt: str = "markdown", metric: str = "iia") -> str:
    """IIA per layer: one row per (algorithm, target, alignment, other varying fields), one column per layer,
    then the row's chance level and network accuracy (the same network and test bases at every layer)."""
    rows = [flatten(r) for r in records]
    if not rows:
        return format_table([], [], fmt)
    rest = [f for f in varying_fields(rows, exclude=(*SEED_FIELDS, "layer"))]
    by = [f for f in ("algorithm", "target", "alignment") if f not in rest] + rest
    summary = summarize(records, by=[*by, "layer"], metrics=[metric, "at_chance"])
    layers = sorted({s.key["layer"] for s in summary}, key=sort_key)
    cells: dict[str, dict[Any, str]] = {}
    keys: dict[str, list[str]] = {}
    for s in summary:
        tag = json.dumps([s.key[b] for b in by], default=str)
        keys[tag] = [_num(s.key[b]) for b in by]
        st = s.stats.get(metric, {})
        mark = chance_mark(s.stats, s.n) if metric == "iia" else ""
        cells.setdefault(tag, {})[s.key["layer"]] = f"{_num(st.get('mean'))} ± {_num(st.get('std'))}{mark}"
    per_row = {json.dumps([s.key[b] for b in by], default=str): s for s in summarize(records, by=by, metrics=list(REFERENCE_HEADERS))}
    refs = _reference_columns(list(per_row.values()))
    header = [*by, *(f"layer {ly}" for ly in layers), *(REFERENCE_HEADERS[m] for m in refs)]
    body = [[*keys[t], *(cells[t].get(ly, "-") for ly in layers), *(_num(per_row[t].stats.get(m, {}).get("mean")) for m in refs)]
            for t in keys]
    return with_chance_note(format_table(header, body, fmt), body, fmt)


def write_report(
    records: Sequence[dict[str, Any]] | str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    by: Sequence[str] | None = None,
    fmt: str = "markdown",
    progression: str | None = None,
) -> dict[str, Path]:
    """Write tables (summary, per layer), their numbers (CSV/JSON) and the figures into ``out_dir``.

    Returns the written files by name. Figures whose data the records lack are skipped.
    """
    if isinstance(records, (str, os.PathLike)):
        records = load_records(records)
    if not records:
        raise ReportError("no records to report on")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ext = "md" if fmt == "markdown" else "txt"
    files: dict[str, Path] = {}
    summary = summarize(records, by)
    header, body = table_rows(summary)
    (out / f"summary.{ext}").write_text(with_chance_note(format_table(header, body, fmt=fmt), body, fmt))
    files["summary"] = out / f"summary.{ext}"
    files["summary_csv"] = write_csv(out / "summary.csv", [s.to_dict() for s in summary])
    files["runs_csv"] = write_csv(out / "runs.csv", [flatten(r) for r in records])
    if len({flatten(r).get("layer") for r in records}) > 1:
        (out / f"layers.{ext}").write_text(layer_table(records, fmt))
        files["layers"] = out / f"layers.{ext}"
    files.update(figures.complexity_figure(records, out / "iia_vs_complexity"))
    files.update(figures.progression_figure(records, out / "iia_vs_training", field=progression))
    files.update(figures.learning_curves_figure(records, out / "learning_curves"))
    return files
