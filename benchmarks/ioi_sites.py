"""Where does the IOI pattern live? Full-vector interchange at every layer and position.

Patches the whole residual vector (identity map, one block holding every
coordinate) from the source sentence into the base at each layer and token
position (last, s2, io) of a trained IOI model, and reports IIA for three readings
of what the vector carries:

- ``pattern``: ``ioi_pattern`` (sources are independent sentences with other
  names). A full patch also carries the source's names, so it reaches 1.0 only
  where the vector holds the pattern without the names the rest of the network reads;
- ``io_position``: ``ioi_rich`` (sources reuse the base's two names in either
  order): 1.0 where the vector says "the indirect object is the first / second name";
- ``io_name``: the same pairs, 1.0 where the vector already holds the answer name.

No map is fitted, so these are what the identity map gets with every coordinate;
a fitted subspace can do better only by leaving the names behind.

    python benchmarks/ioi_sites.py --size 4x128 --step final
"""

from __future__ import annotations

import argparse
import time

import torch

from algorithms import ioi, ioi_models
from alignments.identity import IdentityMap
from causalab.fit.fitting import evaluate, prepare
from causalab.maps.intervene import Partition
from causalab.neural.lm import SIZES
from causalab.neural.target import Site


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="4x128", choices=list(SIZES), help="size of the trained IOI model")
    p.add_argument("--step", default="final", help="checkpoint: final or a step number")
    p.add_argument("--positions", default="last,s2,io")
    p.add_argument("--n-test", type=int, default=1000)
    args = p.parse_args()
    torch.set_num_threads(1)
    step = args.step if args.step == "final" else int(args.step)
    t0 = time.perf_counter()
    tasks = {"pattern": ioi.ioi_pattern_task()}
    for var in ("io_position", "io_name"):
        tasks[var] = ioi.ioi_rich_task(intervention_sets=[(var,)])
    target = ioi_models.build_target("trained", 0, size=args.size, step=step)
    positions = args.positions.split(",")
    data = {name: task.counterfactuals(args.n_test, torch.Generator().manual_seed(1)) for name, task in tasks.items()}
    head = " | ".join(f"{pos}: {name}" for pos in positions for name in tasks)
    rows = [f"| layer | {head} |", "|---" * (1 + len(positions) * len(tasks)) + "|"]
    for layer in range(1, target.n_layers + 1):
        cells = []
        for position in positions:
            site = Site(layer, position)
            width = target.width(site)
            for name, task in tasks.items():
                var = task.intervention_sets[0][0]
                pairs = prepare(target, site, task, data[name])
                iia = evaluate(target, site, IdentityMap(width), Partition({var: range(width)}, width), task, pairs).iia
                cells.append(f"{iia:.2f}")
        rows.append(f"| {layer} | " + " | ".join(cells) + " |")
        print(rows[-1], flush=True)
    print(f"\nfull-vector interchange, trained {args.size} model at step {step}, {args.n_test} test pairs")
    print("\n".join(rows))
    print(f"total {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
