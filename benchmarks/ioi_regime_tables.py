"""The IOI regime's tables, as ``docs/reproduce/ioi.md`` shows them, from the committed records.

Prints two markdown tables: every fit of ``ioi_regime.jsonl`` (network, site, map, data regime,
schedule, seed, fitting pairs, train and test IIA with its 95% interval, steps, the first
step whose validation IIA reached 0.7, minutes), and every map's IIA on the control test sets
of ``ioi_controls.jsonl`` (``benchmarks/ioi_controls.py``)::

    python benchmarks/ioi_regime_tables.py

Nothing is fitted.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "dilemma" / "results"
CONTROLS = ("held_out", "same_pattern", "different_pattern", "swapped_roles", "unseen_names", "unseen_fillers",
            "unseen_templates")


def read(path: Path) -> list[dict]:
    if not path.exists():
        raise SystemExit(f"no results file {str(path)!r}")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def regime(options: dict) -> str:
    if not options:
        return "default"
    roles = options.get("roles", "random")
    names = options.get("names") or "all"
    text = f"{roles} roles, {names} names"
    if options.get("split", "fresh") != "fresh":
        text += f", {options['split']} split"
    if options.get("hold_out"):
        text += ", fillers held out"
    return text


def network(config: dict) -> str:
    options = config["target_options"]
    text = f"{config['target']} {options.get('size', '')}".strip()
    return text + (f" step {options['step']}" if "step" in options else "")


def jump(record: dict, level: float = 0.7) -> str:
    return next((f"{h['steps']:,}" for h in record.get("history", []) if h.get("val_iia", 0) >= level), "-")


def map_name(spec: str) -> str:
    if spec.startswith("revnet:"):
        knobs = dict(kv.split("=") for kv in spec.split(":", 1)[1].split(","))
        return f"RevNet ({knobs.get('blocks')}, {knobs.get('hidden')})"
    return spec


def fits_table(records: list[dict]) -> str:
    out = ["| network | layer | map | data | schedule | seed | pairs | train IIA | test IIA [95% interval] | steps | jump | minutes |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        c, t = r["config"], r["test"]["overall"]
        out.append(f"| {network(c)} | {c['layer']} | {map_name(c['alignment'])} | {regime(c.get('task_options'))} | "
                   f"{c.get('lr_schedule', 'constant')} | {c['seed']} | {c['n_train']:,} | {r['train_iia']:.3f} | "
                   f"{t['iia']:.3f} [{t['ci_low']:.3f}, {t['ci_high']:.3f}] | {r['steps']:,} | {jump(r)} | "
                   f"{r['seconds'] / 60:.1f} |")
    return "\n".join(out)


def controls_table(records: list[dict], controls: list[dict]) -> str:
    by_hash = {r["hash"]: r for r in records}
    out = ["| network | layer | map | data | schedule | seed | steps | " + " | ".join(k.replace("_", " ") for k in CONTROLS)
           + " |", "|---|---|---|---|---|---|---|" + "---|" * len(CONTROLS)]
    for h in dict.fromkeys(c["hash"] for c in controls):
        if h not in by_hash:
            continue
        c = by_hash[h]["config"]
        got = {row["control"]: row["iia"] for row in controls if row["hash"] == h}
        cells = " | ".join(f"{got[k]:.3f}" if k in got else "-" for k in CONTROLS)
        out.append(f"| {network(c)} | {c['layer']} | {map_name(c['alignment'])} | {regime(c.get('task_options'))} | "
                   f"{c.get('lr_schedule', 'constant')} | {c['seed']} | {by_hash[h]['steps']:,} | {cells} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=Path, default=RESULTS / "ioi_regime.jsonl")
    p.add_argument("--controls", type=Path, default=RESULTS / "ioi_controls.jsonl")
    args = p.parse_args(argv)
    records = read(args.records)
    print(fits_table(records))
    print()
    print(controls_table(records, read(args.controls)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
