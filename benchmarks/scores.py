"""Generalisation-aware scores for the hierarchical-equality MLP: trained vs random-init networks,
identity vs rotation (DAS) vs RevNet maps.

For each (network, map): train and test IIA, out-of-distribution IIA (fitted on inputs whose
coordinate 0 is >= 0, scored on inputs where it is <= 0), and selectivity against control
algorithms; then selectivity against random networks, the complexity frontier and sample
efficiency. Small sizes run in about a minute on one core:

    python benchmarks/scores.py --n-train 2000 --n-test 2000 --epochs 10 --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

import causalab as cl
import causalab.scores as sc
from causalab.experiments.report import format_table
from causalab.registry import ALIGNMENTS


def available(specs: list[str]) -> list[str]:
    out = []
    for spec in specs:
        name = spec.partition(":")[0]
        if name in ALIGNMENTS:
            out.append(spec)
        else:
            print(f"skipping {spec!r}: alignment family {name!r} is not registered", file=sys.stderr)
    return out


def ci(score) -> str:
    lo, hi = score.interval
    return f"{score.accuracy:.3f} [{lo:.2f},{hi:.2f}]"


def table(header: list[str], rows: list[list[str]]) -> str:
    return format_table(header, rows, fmt="plain").rstrip("\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algorithm", default="both_equality_relations")
    p.add_argument("--layer", type=int, default=1)
    p.add_argument("--specs", nargs="+", default=["identity", "rotation", "revnet:blocks=2,hidden=16,standardize=true"])
    p.add_argument("--frontier-specs", nargs="+", default=[
        "identity", "rotation", "revnet:blocks=1,hidden=8,standardize=true",
        "revnet:blocks=2,hidden=16,standardize=true", "revnet:blocks=4,hidden=32,standardize=true"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="random-init control networks and control algorithms")
    p.add_argument("--n-train", type=int, default=2_000)
    p.add_argument("--n-val", type=int, default=500)
    p.add_argument("--n-test", type=int, default=2_000)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--threshold", type=float, default=0.9)
    p.add_argument("--sizes", type=int, nargs="+", default=[50, 200, 1000])
    p.add_argument("--efficiency-spec", default="revnet:blocks=4,hidden=32,standardize=true")
    p.add_argument("--json", type=Path, default=None, help="write every record here as JSON")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    task = cl.make_task(args.algorithm)
    site = cl.Site(args.layer)
    cfg = cl.MeasureSettings(n_train=args.n_train, n_val=args.n_val, n_test=args.n_test, epochs=args.epochs, lr=args.lr)
    specs = available(args.specs)
    networks = {"trained": cl.build_target(task, "trained", 0), **{f"random{s}": cl.build_target(task, "random", s) for s in args.seeds}}
    records: dict = {"args": {k: str(v) for k, v in vars(args).items()}}

    # 1. per (network, map): IIA, OOD IIA, selectivity against control algorithms
    rows, per = [], []
    for name, net in networks.items():
        for spec in specs:
            ood = sc.ood_iia(net, site, task, spec, cfg)
            sel = sc.control_algorithm_selectivity(task, spec, site, target=net, control_seeds=args.seeds, settings=cfg)
            m = ood.measurement
            rows.append([name, spec, str(m.num_parameters), f"{m.train_iia:.3f}", ci(ood.in_distribution.overall),
                         ci(ood.out_of_distribution.overall), f"{sel.real_score.accuracy:.3f}",
                         f"{sel.difference.b.accuracy:.3f}", str(sel.difference)])
            per.append({"network": name, "ood": ood.to_dict(), "control_algorithm": sel.to_dict()})
    records["per_map"] = per
    print(f"# {args.algorithm}, layer {args.layer}: fitted on x[0] >= 0, scored in and out of that region")
    print(f"# control algorithm: {sel.variable} replaced by a random function of its parents (seeds {args.seeds})\n")
    print(table(["network", "map", "params", "train", "test (in)", "test (OOD)", f"IIA {sel.variable}",
                 "control", "selectivity (alg)"], rows))

    # 2. selectivity against random-init networks
    rows, rec = [], []
    for spec in specs:
        s = sc.random_network_selectivity(task, spec, site, target=networks["trained"], control_seeds=args.seeds, settings=cfg)
        rows.append([spec, ci(s.real_score), ci(sc.pooled(s.control_scores)), str(s.difference)])
        rec.append({"spec": spec, **s.to_dict()})
    records["random_network"] = rec
    print("\n# selectivity against random-init networks (trained minus pooled random seeds)\n")
    print(table(["map", "trained", "random", "selectivity (net)"], rows))

    # 3. complexity frontier
    fspecs = available(args.frontier_specs)
    comp = sc.frontier_gap(task, fspecs, site, target=networks["trained"], control_seeds=args.seeds,
                           threshold=args.threshold, settings=cfg)
    records["frontier"] = comp.to_dict()
    rows = []
    for k, spec in enumerate(fspecs):
        m = comp.real.points[k]
        rows.append([spec, str(m.num_parameters), f"{m.test_iia:.3f}",
                     *(f"{c.points[k].test_iia:.3f}" for c in comp.controls)])
    print(f"\n# complexity frontier: test IIA by map (threshold {args.threshold})\n")
    print(table(["map", "params", "trained", *(c.label for c in comp.controls)], rows))
    fmt = lambda v: "not reached" if v is None else f"{v} params"
    gap = comp.gap
    print(f"\nsmallest map reaching {args.threshold}: trained {fmt(comp.real_complexity)}, "
          f"random controls {fmt(comp.control_complexity)}; gap "
          f"{'n/a' if math.isnan(gap) else ('> largest map tried' if math.isinf(gap) else f'{gap:.0f} params')}")

    # 4. sample efficiency (early stopping on the training pairs: nothing held out leaks in)
    eff_cfg = cl.MeasureSettings(n_val=args.n_val, n_test=args.n_test, epochs=max(args.epochs, 100), lr=2e-2,
                             patience=10, validate_on="train", batch_size=256)
    rows, rec = [], []
    for spec in available([args.efficiency_spec, "rotation"]):
        for name in ("trained", f"random{args.seeds[0]}"):
            for pt in sc.sample_efficiency(networks[name], site, task, spec, args.sizes, eff_cfg):
                m = pt.measurement
                rows.append([name, spec, str(pt.n_pairs), f"{m.train_iia:.3f}", ci(m.test.overall), str(pt.memorisation_gap)])
                rec.append({"network": name, **pt.to_dict()})
    records["sample_efficiency"] = rec
    print("\n# sample efficiency: train vs test IIA by number of fitting pairs\n")
    print(table(["network", "map", "pairs", "train", "test", "train - test"], rows))
    print(f"\n{time.perf_counter() - start:.0f}s; n_train {args.n_train}, n_test {args.n_test}, epochs {args.epochs}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(records, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
