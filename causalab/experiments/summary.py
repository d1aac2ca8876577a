"""Records to aggregate rows: flatten each record, group by config fields, mean and spread over seeds.

The tables (:mod:`~causalab.experiments.report`) and figures
(:mod:`~causalab.experiments.figures`) both read their numbers from here.
"""

from __future__ import annotations

import csv
import json
import math
import os
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from causalab.errors import ReportError
from causalab.experiments.config import ExperimentConfig

SEED_FIELDS = ("seed", "target_seed")


def at_chance(ci_low: float | None, ci_high: float | None, chance: float | None) -> bool | None:
    """Whether an IIA's 95% interval ``[ci_low, ci_high]`` contains the chance level (None when one is unknown)."""
    values = (ci_low, ci_high, chance)
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
        return None
    return ci_low <= chance <= ci_high


def flatten(record: dict[str, Any]) -> dict[str, Any]:
    """One flat row per record: config fields (nested options dotted) and the metrics.

    Beside the IIA: ``chance`` (its chance level), ``network_accuracy`` (the un-intervened
    network's accuracy on the test bases) and ``at_chance`` (1.0 when the IIA's 95% interval
    contains the chance level, else 0.0), where the record has them.
    """
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
    for key in ("chance", "network_accuracy", "train_iia", "best_val_iia", "num_parameters", "width", "seconds", "hash"):
        if key in record:
            row[key] = record[key]
    flag = at_chance(row["ci_low"], row["ci_high"], record.get("chance"))
    if flag is not None:
        row["at_chance"] = float(flag)
    return row


def varying_fields(rows: Sequence[dict[str, Any]], exclude: Iterable[str] = SEED_FIELDS) -> list[str]:
    """Config fields that take more than one value across the rows (the natural grouping)."""
    config_names = ExperimentConfig.field_names()
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
    ``train_iia``, ``num_parameters``, and where the records have them ``chance``,
    ``network_accuracy`` and ``at_chance`` (its mean: the share of runs at chance).
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
        metrics = ["iia", *per_set, "train_iia", "num_parameters", "chance", "network_accuracy", "at_chance"]
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
    out.sort(key=lambda s: [sort_key(s.key[b]) for b in by])
    return out


def sort_key(value: Any) -> tuple:
    if value is None:
        return (0, 0, "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (1, value, "")
    return (2, 0, str(value))


def write_csv(path: str | os.PathLike, rows: Sequence[dict[str, Any]]) -> Path:
    path = Path(path)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path
