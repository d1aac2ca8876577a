"""IIA at one layer for the three hierarchical-equality algorithms, identity and rotation maps,
trained and random-init MLPs, over several seeds.

    python benchmarks/core_iia.py --seeds 0 1 2 --out results/core_iia.jsonl
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

import torch

import causalab as cl

ALGORITHMS = ["both_equality_relations", "left_equality_relation", "identity_of_first_argument"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--layer", type=int, default=1)
    p.add_argument("--alignments", nargs="+", default=["identity", "rotation"])
    p.add_argument("--targets", nargs="+", default=["trained", "random"])
    p.add_argument("--intervention-size", type=int, default=8)
    p.add_argument("--n-train", type=int, default=50_000)
    p.add_argument("--n-test", type=int, default=10_000)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--out", type=Path, default=Path("results/core_iia.jsonl"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results: dict[tuple, list[float]] = {}
    params: dict[str, int] = {}
    start = time.perf_counter()
    with args.out.open("w") as f:
        for alg, tgt, al, seed in itertools.product(ALGORITHMS, args.targets, args.alignments, args.seeds):
            cfg = cl.ExperimentConfig(
                algorithm=alg, alignment=al, target=tgt, target_seed=seed, seed=seed, layer=args.layer,
                intervention_size=args.intervention_size, n_train=args.n_train, n_test=args.n_test, epochs=args.epochs,
            )
            res = cl.run_experiment(cfg)
            f.write(json.dumps(res.to_record()) + "\n")
            results.setdefault((alg, tgt, al), []).append(res.test.iia)
            params[al] = res.num_parameters
            print(f"{alg} {tgt} {al} seed={seed}: IIA {res.test.iia:.3f} ({res.seconds:.1f}s)", file=sys.stderr)
    print("| algorithm | target | alignment | params | IIA mean | IIA std | seeds |")
    print("|---|---|---|---|---|---|---|")
    for (alg, tgt, al), vals in results.items():
        std = statistics.stdev(vals) if len(vals) > 1 else 0.0
        print(f"| {alg} | {tgt} | {al} | {params[al]} | {statistics.mean(vals):.3f} | {std:.3f} | {len(vals)} |")
    print(f"\nlayer {args.layer}, intervention size {args.intervention_size}, n_train {args.n_train}, "
          f"n_test {args.n_test}; {time.perf_counter() - start:.0f}s; records in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
