"""Theorem 1's constructed map beside a fitted rotation, on the same pairs (docs/dilemma.md, "Theorem 1, constructed").

Cases (hierarchical equality: both equality relations, layer 1, 4 coordinates per variable
of 16 unless ``--size`` says otherwise; IOI: the ABAB/ABBA pattern, last token, 64 of 128
coordinates):

  mlp_random   random MLP of the paper's shape
  mlp_trained  the trained MLP (trained here and cached, as ``target = "trained"`` does)
  lm_random    random 14m-like GPT-NeoX with Pythia's initialisation, layer 3

For each case, one draw of train/validation/test pairs (seed 0) and a second, disjoint
draw of test-sized pairs (seed 1, independent of the first) *outside* the construction set. ``constructed`` is built
on train + validation + test (the theorem's input-restricted setting) and scored on them
by :func:`causalab.evaluate`; ``rotation`` is fitted on train, stopped on validation,
scored on test. Both are then scored on the outside pairs. One thread.

    python benchmarks/constructed.py                          # the three cases, table on stdout
    python benchmarks/constructed.py --cases mlp_random --size 8 --fixed identity
    python benchmarks/constructed.py --json results.json
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import causalab as cl
from causalab.experiments.build import build_run

CASES = {
    "mlp_random": dict(algorithm="both_equality_relations", target="random", layer=1),
    "mlp_trained": dict(algorithm="both_equality_relations", target="trained", layer=1),
    "lm_random": dict(algorithm="ioi_pattern", target="random", layer=3, position="last",
                      target_options={"size": "14m", "init": "pythia"}),
}


def run_case(name: str, args: argparse.Namespace) -> list[dict]:
    size = args.size if args.size is not None else (64 if name.startswith("lm") else 4)
    config = cl.ExperimentConfig(alignment="constructed", intervention_size=size, n_train=args.n_train,
                                 n_val=args.n_val, n_test=args.n_test, epochs=args.epochs, **CASES[name])
    run = build_run(config)
    gen = torch.Generator().manual_seed(0)
    pairs = tuple(run.task.splits([args.n_train, args.n_val, args.n_test], gen))
    outside = run.task.splits([args.n_train, args.n_val, args.n_test], torch.Generator().manual_seed(1))[2]
    rows = []
    for spec in (f"constructed:fixed={args.fixed}", "rotation"):
        start = time.perf_counter()
        result = cl.measure(run.target, run.site, run.task, spec, config.settings(), pairs=pairs,
                            partition=run.partition)
        seconds = time.perf_counter() - start
        row = {"case": name, "map": spec, "intervention_size": size, "train_iia": result.train_iia,
               "test_iia": result.test_iia, "outside_iia": result.score(run.target, run.site, run.task, outside).iia,
               "chance": result.chance, "seconds": round(seconds, 1), "num_parameters": result.num_parameters}
        built = result.phi.construction if result.phi.constructed else None
        if built is not None:
            row.update(build_seconds=round(built.seconds, 1), nbytes=built.nbytes, points=built.points,
                       codes=built.codes, unreached=built.unreached, at_reachable=built.at_reachable,
                       at_reachable_correct=built.at_reachable_correct, base_equals_source=built.base_equals_source,
                       min_distance=built.min_distance, atol=built.atol, steps=built.steps, ceiling=built.ceiling)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-val", type=int, default=500)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=10, help="the rotation's fitting budget")
    parser.add_argument("--size", type=int, default=None, help="coordinates per variable (default 4; LM 64)")
    parser.add_argument("--fixed", default="rotation", help="the constructed map's fixed map: rotation or identity")
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args()
    cl.threads.use_threads(1)
    rows = [row for name in args.cases.split(",") for row in run_case(name.strip(), args)]
    print("| case | map | train IIA | test IIA | outside IIA | chance | seconds (build) | stored values | bytes |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        build = f" ({r['build_seconds']})" if "build_seconds" in r else ""
        print(f"| {r['case']} | {r['map']} | {r['train_iia']:.3f} | {r['test_iia']:.3f} | {r['outside_iia']:.3f} | "
              f"{r['chance']:.3f} | {r['seconds']}{build} | {r['num_parameters']} | {r.get('nbytes', '')} |")
    for r in rows:
        if "codes" in r:
            print(f"{r['case']}: {r['codes']} codes, {r['unreached']} unreached, {r['at_reachable']} pairs at a "
                  f"reachable state ({r['at_reachable_correct']} right by the network), {r['base_equals_source']} "
                  f"base = source, {r['steps']} steps, min distance {r['min_distance']:.3g} (atol {r['atol']:.3g})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
