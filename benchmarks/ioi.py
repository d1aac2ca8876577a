"""IOI benchmark: IIA of the ABAB/ABBA algorithm on transformer LMs, rotation vs RevNets.

Targets: the 4-layer GPT-NeoX trained here on IOI text (``--size 4x128``; final
checkpoint and step 0) and a random-init Pythia-like model. Site: the residual
stream at the middle layer, last token: on the trained model the output depends on
no other position after layer 1 (see ``benchmarks/ioi_sites.py``). Maps: DAS rotation and RevNets of 1, 2, 4, 8 blocks (hidden 64), each
with shared names and with names disjoint between the alignment's train and test
pairs. Prints a markdown table (IIA, train IIA, wall time) and can save JSON.

    python benchmarks/ioi.py   # 6400 pairs, batches of 640, 10 epochs (100 steps), lr 3e-3, no early stop
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from algorithms import ioi_models
from causalab.experiments import ExperimentConfig, run_experiment
from causalab.files import cache_dir
from causalab.neural.lm import SIZES


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-train", type=int, default=6400)
    p.add_argument("--n-val", type=int, default=500)
    p.add_argument("--n-test", type=int, default=500)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=640)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--size", default="4x128", choices=list(SIZES), help="size of the model trained here on IOI")
    p.add_argument("--random-size", default="14m", choices=list(SIZES))
    p.add_argument("--random-arch", default="gpt_neox", choices=["gpt_neox", "gpt2"])
    p.add_argument("--size-fraction", type=float, default=0.5, help="share of the width given to 'pattern'")
    p.add_argument("--blocks", default="1,2,4,8", help="RevNet depths to run")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--engine", default="hook", choices=["hook", "pyvene"])
    p.add_argument("--targets", default="trained,step0,random")
    p.add_argument("--position", default="last", help="token position: last, s2, io or an int")
    p.add_argument("--layer", type=int, default=None, help="override the middle layer")
    p.add_argument("--json", default=None, help="write the records here")
    args = p.parse_args()
    torch.set_num_threads(1)

    t0 = time.perf_counter()
    folder = ioi_models.trained_lm_dir(0, size=args.size)
    if not (folder / "final").exists():
        report = ioi_models.train_ioi_lm(0, size=args.size)
        print(f"trained the IOI GPT-NeoX in {report['seconds']:.0f}s, held-out accuracy {report['accuracy']:.3f}")
    trained = ioi_models.build_target("trained", 0, size=args.size)
    print(f"trained model ({folder}): IO>S accuracy {ioi_models.ioi_accuracy(trained):.3f}, "
          f"top-1 {ioi_models.ioi_accuracy(trained, top1=True):.3f}; load+eval {time.perf_counter() - t0:.1f}s")

    n_layers, width = SIZES[args.size][:2]
    targets = {
        "trained": ("trained", {"size": args.size, "step": "final"}, max(1, n_layers // 2), width),
        "step0": ("trained", {"size": args.size, "step": 0}, max(1, n_layers // 2), width),
        "random": ("random", {"size": args.random_size, "arch": args.random_arch},
                   max(1, SIZES[args.random_size][0] // 2), SIZES[args.random_size][1]),
    }
    maps = ["rotation"] + [f"revnet:blocks={b},hidden={args.hidden}" for b in args.blocks.split(",") if b]
    records = []
    rows = ["| target | site | map | names | IIA | train IIA | seconds |", "|---|---|---|---|---|---|---|"]
    for name in args.targets.split(","):
        kind, options, layer, width = targets[name]
        layer = args.layer or layer
        position = int(args.position) if args.position.isdigit() else args.position
        for spec in maps:
            for algorithm in ("ioi_pattern", "ioi_pattern_disjoint"):
                cfg = ExperimentConfig(
                    algorithm=algorithm, alignment=spec, target=kind, target_seed=0, layer=layer, position=position,
                    intervention_size=max(1, int(width * args.size_fraction)), n_train=args.n_train,
                    n_val=args.n_val, n_test=args.n_test, epochs=args.epochs, batch_size=args.batch_size,
                    lr=args.lr, patience=args.epochs, target_options={**options, "engine": args.engine},
                )
                r = run_experiment(cfg)
                names = "disjoint" if algorithm.endswith("disjoint") else "shared"
                rows.append(f"| {name} | L{layer}@{position} | {spec} | {names} | {r.test.iia:.3f} | {r.train_iia:.3f} | {r.seconds:.1f} |")
                print(rows[-1], flush=True)
                records.append({"target": name, **r.to_record()})
    print("\n".join(rows))
    print(f"total {time.perf_counter() - t0:.0f}s; cache {cache_dir()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1, default=str)


if __name__ == "__main__":
    main()
