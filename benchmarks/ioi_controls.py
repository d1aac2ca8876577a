"""What a fitted IOI map reads: score saved maps of an IOI regime sweep on control test sets.

For every record of a results file whose run used IOI data-regime options
(``task_options``) and whose fitted map was saved (``causalab sweep ... --save-maps DIR``),
the run's task, target and site are rebuilt from its config, the map is loaded, and it is
scored on the controls of :data:`algorithms.ioi_regime.CONTROLS` that the regime allows:

- ``held_out``: new pairs of the run's own test split (its test IIA again, on new pairs);
- ``same_pattern`` / ``different_pattern``: held-out pairs whose base and source share the
  ABAB/ABBA pattern (the counterfactual is the base's own answer) or do not (it flips);
- ``swapped_roles`` (fixed roles): the fitting names in the other role, IO names as subjects;
- ``unseen_names``: names outside the regime's (in their fixed roles where roles are fixed);
- ``unseen_fillers`` / ``unseen_templates`` (``hold_out`` runs): places and objects, or
  templates, that no fitting sentence used.

One JSON record per (run, control) is appended to ``--out`` (a run already scored is skipped)::

    python benchmarks/ioi_controls.py benchmarks/dilemma/results/ioi_regime.jsonl \\
        --maps benchmarks/dilemma/results/ioi_regime-maps --out benchmarks/dilemma/results/ioi_controls.jsonl

About 20 s per run on one core for the 14m model (2,000 pairs per control).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import causalab as cl
from algorithms import ioi, ioi_regime
from causalab.experiments import ExperimentConfig, build_run
from causalab.threads import use_threads


def applicable(regime: ioi_regime.Regime) -> list[str]:
    kinds = ["held_out", "same_pattern", "different_pattern"]
    if regime.roles == "fixed":
        kinds.append("swapped_roles")
    if regime.names and regime.split != "names":
        kinds.append("unseen_names")
    if regime.hold_out:
        kinds += ["unseen_fillers", "unseen_templates"]
    return kinds


def score_run(record: dict, maps: Path, n: int, seed: int) -> list[dict]:
    config = ExperimentConfig.from_dict(record["config"])
    run = build_run(config)
    regime = getattr(run.task, "regime", None)
    path = maps / f"{record['hash']}.safetensors"
    if regime is None or not path.exists():
        return []
    saved = cl.load_alignment(path, width=run.target.width(run.site))
    out = []
    for k, kind in enumerate(applicable(regime)):
        pairs = ioi.control_pairs(run.task, kind, n, torch.Generator().manual_seed(seed + k))
        prepared = cl.prepare(run.target, run.site, run.task, pairs)
        result = cl.evaluate(run.target, run.site, saved.map, saved.partition, run.task, prepared)
        low, high = result.overall.interval
        out.append({"hash": record["hash"], "control": kind, "iia": result.iia, "ci_low": low,
                    "ci_high": high, "n": len(pairs), "alignment": config.alignment,
                    "task_options": config.task_options, "target_options": config.target_options,
                    "layer": config.layer, "seed": config.seed, "test_iia": record["iia"]})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", type=Path, help="a results file of an IOI regime sweep")
    p.add_argument("--maps", type=Path, required=True, help="the folder the sweep saved its maps to (--save-maps)")
    p.add_argument("--out", type=Path, required=True, help="JSONL file the control records are appended to")
    p.add_argument("--n", type=int, default=2_000, help="pairs per control (default 2,000)")
    p.add_argument("--seed", type=int, default=12345, help="seed of the control pairs")
    args = p.parse_args(argv)
    use_threads(None)
    for what, path in (("results file", args.results), ("maps folder", args.maps)):
        if not path.exists():
            raise SystemExit(f"no {what} {str(path)!r}")
    done = set()
    if args.out.exists():
        done = {json.loads(line)["hash"] for line in args.out.read_text().splitlines() if line.strip()}
    records = [json.loads(line) for line in args.results.read_text().splitlines() if line.strip()]
    for record in records:
        if record["hash"] in done or not record["config"].get("task_options"):
            continue
        start = time.perf_counter()
        rows = score_run(record, args.maps, args.n, args.seed)
        with args.out.open("a") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
        for row in rows:
            print(f"{row['hash']} {json.dumps(row['task_options']):48s} {row['alignment']:28s} "
                  f"{row['control']:18s} {row['iia']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]")
        if rows:
            print(f"  ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
