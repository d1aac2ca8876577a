"""Tables from a results file: group runs by any fields, mean and spread over seeds.

A record is read through :func:`flatten`: config fields by name (``alignment``,
``layer``, ``target_options.hidden``), and metrics ``iia``, ``ci_low``, ``ci_high``,
``train_iia``, ``num_parameters``, ``width``, ``seconds`` and ``iia[V1]`` per
intervention set. :func:`summarize` groups by fields (by default every config field
that varies, except the seeds) and aggregates each metric over the group.
"""

from __future__ import annotations

import csv
import json
import math
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from causalab.errors import CausalabError
from causalab.experiments.store import load_records

SEED_FIELDS = ("seed", "target_seed")
FORMATS = ("markdown", "plain")


class ReportError(CausalabError, ValueError):
    """A report was asked for something the records do not hold (an unknown field, no records)."""


def flatten(record: dict[str, Any]) -> dict[str, Any]:
    """One flat row per record: config fields (nested options dotted) and the metrics."""
    row: dict[str, Any] = {}
    for key, value in record.get("config", {}).items():
        if isinstance(value, dict) and key != "partition":
            for k, v in value.items():
                row[f"{key}.{k}"] = v
        else:
            row[key] = json.dumps(value) if isinstance(value, (dict, list)) else value
    test = record.get("test", {})
    overall = test.get("overall", {})
    row["iia"] = record.get("iia", overall.get("iia"))
    row["ci_low"], row["ci_high"] = overall.get("ci_low"), overall.get("ci_high")
    for name, score in test.get("per_set", {}).items():
        row[f"iia[{name}]"] = score.get("iia")
    for key in ("train_iia", "best_val_iia", "num_parameters", "width", "seconds", "hash"):
        if key in record:
            row[key] = record[key]
    return row


def varying_fields(rows: Sequence[dict[str, Any]], exclude: Iterable[str] = SEED_FIELDS) -> list[str]:
    """Config fields that take more than one value across the rows (the natural grouping)."""
    from dataclasses import fields as dc_fields

    from causalab.experiments.config import ExperimentConfig

    config_names = [f.name for f in dc_fields(ExperimentConfig)]
    keys = [k for k in dict.fromkeys(k for r in rows for k in r) if k.split(".")[0] in config_names]
    skip = set(exclude)
    return [k for k in keys if k not in skip and len({json.dumps(r.get(k), default=str) for r in rows}) > 1]


@dataclass
class SummaryRow:
    """One group: its field values, the runs in it, and per-metric aggregates over them."""

    key: dict[str, Any]
    n: int
    stats: dict[str, dict[str, float]] = field(default_factory=dict)  # metric -> mean, std, min, max

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.key)
        out["n"] = self.n
        for metric, s in self.stats.items():
            for name, value in s.items():
                out[f"{metric}_{name}"] = value
        return out


def _aggregate(values: list[float]) -> dict[str, float]:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return {"mean": math.nan, "std": math.nan, "min": math.nan, "max": math.nan}
    return {
        "mean": statistics.fmean(vals),
        "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
        "min": min(vals),
        "max": max(vals),
    }


def summarize(
    records: Sequence[dict[str, Any]],
    by: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
) -> list[SummaryRow]:
    """Group records by the ``by`` fields; aggregate each metric (mean, sample std, min, max) over a group.

    ``by`` defaults to the varying config fields except seeds, so a group's spread is
    the spread over seeds. ``metrics`` defaults to ``iia``, the per-set IIAs,
    ``train_iia`` and ``num_parameters``.
    """
    rows = [flatten(r) for r in records]
    if not rows:
        return []
    by = list(varying_fields(rows) if by is None else by)
    known = set().union(*rows)
    unknown = [b for b in by if b not in known]
    if unknown:
        raise ReportError(f"cannot group by {unknown}: the records have no such field; fields: {', '.join(sorted(known))}")
    if metrics is None:
        per_set = sorted(k for k in known if k.startswith("iia["))
        metrics = ["iia", *per_set, "train_iia", "num_parameters"]
    groups: dict[str, list[dict[str, Any]]] = {}
    keys: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = {b: row.get(b) for b in by}
        tag = json.dumps(key, sort_keys=True, default=str)
        groups.setdefault(tag, []).append(row)
        keys[tag] = key
    out = []
    for tag, members in groups.items():
        stats = {m: _aggregate([r.get(m) for r in members]) for m in metrics if any(m in r for r in members)}
        out.append(SummaryRow(keys[tag], len(members), stats))
    out.sort(key=lambda s: [_sort_key(s.key[b]) for b in by])
    return out


def _sort_key(value: Any) -> tuple:
    if value is None:
        return (0, 0, "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (1, value, "")
    return (2, 0, str(value))


def _num(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, float) and x.is_integer() and abs(x) >= 10:
        return str(int(x))
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def table_rows(summary: Sequence[SummaryRow], metric: str = "iia") -> tuple[list[str], list[list[str]]]:
    """Header and text cells: group fields, runs, metric mean ± std [min, max], map parameters."""
    if not summary:
        return [], []
    by = list(summary[0].key)
    header = [*by, "runs", f"{metric} mean", "± std", "min", "max", "params"]
    body = []
    for s in summary:
        st = s.stats.get(metric, {})
        params = s.stats.get("num_parameters", {}).get("mean")
        body.append([*(_num(s.key[b]) for b in by), str(s.n), _num(st.get("mean")), _num(st.get("std")),
                     _num(st.get("min")), _num(st.get("max")), _num(params, 0) if params is not None else "-"])
    return header, body


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
    """The headline table: ``metric`` mean and spread over seeds, grouped by ``by``."""
    return format_table(*table_rows(summarize(records, by), metric), fmt=fmt)


def layer_table(records: Sequence[dict[str, Any]], fmt: str = "markdown", metric: str = "iia") -> str:
    """IIA per layer: one row per (algorithm, target, alignment, other varying fields), one column per layer."""
    rows = [flatten(r) for r in records]
    if not rows:
        return format_table([], [], fmt)
    rest = [f for f in varying_fields(rows, exclude=(*SEED_FIELDS, "layer"))]
    by = [f for f in ("algorithm", "target", "alignment") if f not in rest] + rest
    summary = summarize(records, by=[*by, "layer"], metrics=[metric])
    layers = sorted({s.key["layer"] for s in summary}, key=_sort_key)
    cells: dict[str, dict[Any, str]] = {}
    keys: dict[str, list[str]] = {}
    for s in summary:
        tag = json.dumps([s.key[b] for b in by], default=str)
        keys[tag] = [_num(s.key[b]) for b in by]
        st = s.stats.get(metric, {})
        cells.setdefault(tag, {})[s.key["layer"]] = f"{_num(st.get('mean'))} ± {_num(st.get('std'))}"
    header = [*by, *(f"layer {ly}" for ly in layers)]
    body = [[*keys[t], *(cells[t].get(ly, "-") for ly in layers)] for t in keys]
    return format_table(header, body, fmt)


def write_csv(path: str | os.PathLike, rows: Sequence[dict[str, Any]]) -> Path:
    path = Path(path)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


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
    from causalab.experiments import figures

    if isinstance(records, (str, os.PathLike)):
        records = load_records(records)
    if not records:
        raise ReportError("no records to report on")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ext = "md" if fmt == "markdown" else "txt"
    files: dict[str, Path] = {}
    summary = summarize(records, by)
    (out / f"summary.{ext}").write_text(format_table(*table_rows(summary), fmt=fmt))
    files["summary"] = out / f"summary.{ext}"
    files["summary_csv"] = write_csv(out / "summary.csv", [s.to_dict() for s in summary])
    files["runs_csv"] = write_csv(out / "runs.csv", [flatten(r) for r in records])
    if len({flatten(r).get("layer") for r in records}) > 1:
        (out / f"layers.{ext}").write_text(layer_table(records, fmt))
        files["layers"] = out / f"layers.{ext}"
    files.update(figures.complexity_figure(records, out / "iia_vs_complexity"))
    files.update(figures.progression_figure(records, out / "iia_vs_training", field=progression))
    return files
