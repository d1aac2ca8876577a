"""Theorem 1's constructed map beside a fitted rotation, on the same pairs (docs/reproduce/theorem1.md).

Cases (hierarchical equality: both equality relations, layer 1, 4 coordinates per variable
of 16 unless ``--size`` says otherwise; IOI: the ABAB/ABBA pattern, last token, 64 of 128
coordinates):

  mlp_random    random MLP of the paper's shape
  mlp_trained   the trained MLP (trained here and cached, as ``target = "trained"`` does)
  left_random, left_trained, identity_random, identity_trained
                the same for the left equality relation and the identity of the first argument
  lm_random     random 14m-like GPT-NeoX with Pythia's initialisation, layer 3
  lm70m_random  random 70m-like GPT-NeoX (Pythia 70m's shape: 6 layers, width 512, 8 heads), Pythia's
                initialisation, layer 3, 64 of 512 coordinates
  lm160m_random random 160m-like GPT-NeoX (12 layers, width 768, 12 heads), layer 3, 64 of 768 coordinates
  ioi_trained   the 4-layer IOI LM trained here (``target_options = {size = "4x128"}``), layer 2

For each case, one draw of train/validation/test pairs (seed 0) and a second draw of
test-sized pairs (seed 1, independent of the first) *outside* the construction set (any
pair of it that is also in the construction set is left out and counted). ``constructed`` is built
on train + validation + test (the theorem's input-restricted setting) and scored on them
by :func:`causalab.evaluate`; ``rotation`` and the case's RevNet are fitted on train, stopped on
validation, scored on test. All are then scored on the outside pairs. One thread.

    python benchmarks/constructed.py                          # every case, table on stdout
    python benchmarks/constructed.py --cases lm70m_random,ioi_trained --maps constructed,rotation
    python benchmarks/constructed.py --cases mlp_random --size 8 --fixed identity
    python benchmarks/constructed.py --json results.json
    python benchmarks/constructed.py --cases mlp_trained --scores   # also OOD IIA and selectivity

``--scores`` adds, for each case and map, the scores of :mod:`causalab.scores` at the same sizes:
out-of-distribution IIA on the task's own split (the constructed map built on the fitting region,
scored on the held-out one), and selectivity against random networks of the same architecture
(seeds 1 and 2) and against control algorithms (seeds 0 and 1).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import causalab as cl
from causalab.experiments.build import build_run
from causalab.scores import control_algorithm_selectivity, ood_iia, random_network_selectivity

CASES = {
    "mlp_random": dict(algorithm="both_equality_relations", target="random", layer=1),
    "mlp_trained": dict(algorithm="both_equality_relations", target="trained", layer=1),
    "left_random": dict(algorithm="left_equality_relation", target="random", layer=1),
    "left_trained": dict(algorithm="left_equality_relation", target="trained", layer=1),
    "identity_random": dict(algorithm="identity_of_first_argument", target="random", layer=1),
    "identity_trained": dict(algorithm="identity_of_first_argument", target="trained", layer=1),
    "lm_random": dict(algorithm="ioi_pattern", target="random", layer=3, position="last",
                      target_options={"size": "14m", "init": "pythia"}),
    "lm70m_random": dict(algorithm="ioi_pattern", target="random", layer=3, position="last",
                         target_options={"size": "70m", "init": "pythia"}),
    "lm160m_random": dict(algorithm="ioi_pattern", target="random", layer=3, position="last",
                          target_options={"size": "160m", "init": "pythia"}),
    "ioi_trained": dict(algorithm="ioi_pattern", target="trained", layer=2, position="last",
                        target_options={"size": "4x128"}),
}
# each network's RevNet: the dilemma's deepest MLP map, the IOI sweeps' LM map
REVNET = {"mlp": "revnet:blocks=10,hidden=16", "lm": "revnet:blocks=8,hidden=64"}
MAPS = ("constructed", "rotation", "revnet")


def _family(name: str) -> str:
    return "lm" if CASES[name]["algorithm"].startswith("ioi") else "mlp"


def run_case(name: str, args: argparse.Namespace) -> list[dict]:
    if name not in CASES:
        raise SystemExit(f"unknown case {name!r}; valid: {', '.join(CASES)}")
    size = args.size if args.size is not None else (4 if _family(name) == "mlp" else 64)
    config = cl.ExperimentConfig(alignment="constructed", intervention_size=size, n_train=args.n_train,
                                 n_val=args.n_val, n_test=args.n_test, epochs=args.epochs, **CASES[name])
    run = build_run(config)
    gen = torch.Generator().manual_seed(0)
    pairs = tuple(run.task.splits([args.n_train, args.n_val, args.n_test], gen))
    outside = run.task.splits([args.n_train, args.n_val, args.n_test], torch.Generator().manual_seed(1))[2]
    specs = {"constructed": f"constructed:fixed={args.fixed}", "rotation": "rotation", "revnet": REVNET[_family(name)]}
    rows = []
    for spec in (specs[m] for m in args.maps.split(",")):
        start = time.perf_counter()
        result = cl.measure(run.target, run.site, run.task, spec, config.measure, pairs=pairs,
                            partition=run.partition, outside=outside)
        seconds = time.perf_counter() - start
        row = {"case": name, "map": spec, "intervention_size": size, "width": result.width,
               "train_iia": result.train_iia, "test_iia": result.test_iia, "outside_iia": result.outside.iia,
               "outside_pairs": result.outside.overall.n, "outside_dropped": result.outside_dropped,
               "chance": result.chance, "seconds": round(seconds, 1), "num_parameters": result.num_parameters}
        built = result.phi.construction if result.phi.constructed else None
        if built is not None:
            row.update(build_seconds=round(built.seconds, 1), nbytes=built.nbytes, points=built.points,
                       codes=built.codes, unreached=built.unreached, at_reachable=built.at_reachable,
                       at_reachable_correct=built.at_reachable_correct, base_equals_source=built.base_equals_source,
                       min_distance=built.min_distance, atol=built.atol, steps=built.steps, ceiling=built.ceiling)
        if args.scores:
            row.update(scores(run, spec, config.measure))
        rows.append(row)
    return rows


def scores(run, spec: str, settings: cl.MeasureSettings) -> dict:
    """OOD IIA and the two selectivities of ``spec`` on the case's network, at the case's sizes."""
    out = {}
    start = time.perf_counter()
    ood = ood_iia(run.target, run.site, run.task, spec, settings)
    out.update(ood_in=ood.in_distribution.iia, ood_out=ood.out_of_distribution.iia, ood_gap=ood.gap.estimate)
    options = dict(run.config.target_options)  # the controls share the case's architecture (an LM's size)
    kinds = (("network", random_network_selectivity, dict(target=run.target, control_seeds=(1, 2), target_options=options)),
             ("algorithm", control_algorithm_selectivity, dict(target=run.target, control_seeds=(0, 1))))
    for kind, score, kw in kinds:
        try:
            result = score(run.task, spec, run.site, settings=settings, **kw)
        except cl.CausalabError as exc:  # e.g. no intermediate variable to replace
            out[f"selectivity_{kind}"] = f"not measured: {exc}"
            continue
        out[f"selectivity_{kind}"] = result.estimate
        out[f"selectivity_{kind}_ci"] = result.interval
        out[f"control_iia_{kind}"] = pooled_iia(result)
    out["scores_seconds"] = round(time.perf_counter() - start, 1)
    return out


def pooled_iia(result) -> float:
    return result.difference.b.accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-val", type=int, default=500)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=10, help="the rotation's fitting budget")
    parser.add_argument("--size", type=int, default=None, help="coordinates per variable (default 4; LM 64)")
    parser.add_argument("--fixed", default="rotation", help="the constructed map's fixed map: rotation or identity")
    parser.add_argument("--maps", default=",".join(MAPS), help=f"comma-separated, of {', '.join(MAPS)}")
    parser.add_argument("--scores", action="store_true", help="also OOD IIA and selectivity (causalab.scores)")
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args()
    unknown = [m for m in args.maps.split(",") if m not in MAPS]
    if unknown:
        parser.error(f"unknown map(s) {unknown} in --maps; valid: {', '.join(MAPS)}")
    cl.threads.use_threads(1)
    rows = []
    for name in args.cases.split(","):
        rows += run_case(name.strip(), args)
        if args.json:  # after every case, so a long run keeps what it measured
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=1)
    print("| case | map | train IIA | test IIA | outside IIA | chance | seconds (build) | stored values | bytes |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        build = f" ({r['build_seconds']})" if "build_seconds" in r else ""
        print(f"| {r['case']} | {r['map']} | {r['train_iia']:.3f} | {r['test_iia']:.3f} | {r['outside_iia']:.3f} | "
              f"{r['chance']:.3f} | {r['seconds']}{build} | {r['num_parameters']} | {r.get('nbytes', '')} |")
    if args.scores:
        print("\n| case | map | OOD IIA in / out | selectivity vs random networks (control IIA) | "
              "selectivity vs control algorithms (control IIA) |")
        print("|---|---|---|---|---|")
        for r in rows:
            sel = [f"{r[f'selectivity_{k}']:+.3f} ({r[f'control_iia_{k}']:.3f})" if f"control_iia_{k}" in r
                   else r[f"selectivity_{k}"] for k in ("network", "algorithm")]
            print(f"| {r['case']} | {r['map']} | {r['ood_in']:.3f} / {r['ood_out']:.3f} | {sel[0]} | {sel[1]} |")
    for r in rows:
        if "codes" in r:
            print(f"{r['case']}: {r['codes']} codes, {r['unreached']} unreached, {r['at_reachable']} pairs at a "
                  f"reachable state ({r['at_reachable_correct']} right by the network), {r['base_equals_source']} "
                  f"base = source, {r['steps']} steps, min distance {r['min_distance']:.3g} (atol {r['atol']:.3g})")


if __name__ == "__main__":
    main()
