"""A fitting step's time on every language-model family at one shared shape.

Setting: a random model of each family (``causalab.neural.lm.random_lm``, the family's own
initialisation) at the 14m-like shape (6 layers, width 128; the Llama-like families with their
grouped-query attention), the IOI word vocabulary and the IOI pattern task's sentences; site:
layer 3's residual stream at the last token; a rotation on half the width; batch 256. The step
is :func:`causalab.fit.fitting.train_step`, the fit loop's inner step on ``prepare``'s pairs (the
fast resume path: one position per row and upper block). Median of ``--reps`` rounds of
``--steps`` steps, one torch thread, after ``--warmup`` steps.

    python benchmarks/family_step_time.py [--archs gpt_neox llama ...] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import causalab as cl
from algorithms import ioi, ioi_models
from causalab.fit.fitting import adam, train_step
from causalab.neural.lm import ARCHS, random_lm


def step_time(arch: str, size: str, batch: int, n_pairs: int, steps: int, reps: int, warmup: int, layer: int = 3) -> dict:
    task = ioi.ioi_pattern_task()
    lm = random_lm(len(ioi.data.VOCAB), arch=arch, size=size, seed=0, tokenizer=ioi_models.tokenizer())
    task = task.for_target(lm)
    site = cl.Site(layer, "last")
    width = lm.width(site)
    pairs = cl.prepare(lm, site, task, task.counterfactuals(n_pairs, torch.Generator().manual_seed(0)))
    torch.manual_seed(0)
    phi = cl.make_alignment("rotation", width)
    part = cl.Partition({"pattern": range(width // 2)}, width)
    opt = adam(phi.parameters(), 1e-3)
    order = torch.randperm(n_pairs, generator=torch.Generator().manual_seed(1))
    batches = [order[i:i + batch] for i in range(0, n_pairs - batch + 1, batch)]

    def run(k: int) -> None:
        for i in range(k):
            train_step(lm, site, phi, part, task, pairs, batches[i % len(batches)], opt)

    run(warmup)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        run(steps)
        times.append((time.perf_counter() - start) / steps)
    return {"arch": arch, "size": size, "layer": layer, "path": lm.path, "width": width, "batch": batch,
            "cache": pairs.resume.kind if pairs.resume is not None else None,
            "step_ms": round(1000 * statistics.median(times), 2), "reps": reps, "steps": steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), help=f"of {', '.join(ARCHS)}")
    parser.add_argument("--size", default="14m")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--pairs", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args()
    unknown = [a for a in args.archs if a not in ARCHS]
    if unknown:
        parser.error(f"unknown arch(s) {unknown}; valid: {', '.join(ARCHS)}")
    cl.threads.use_threads(1)
    rows = []
    print("| arch | path | cache | width | step (ms, median) |\n|---|---|---|---|---|")
    for arch in args.archs:
        row = step_time(arch, args.size, args.batch, args.pairs, args.steps, args.reps, args.warmup)
        rows.append(row)
        print(f"| {arch} | {row['path']} | {row['cache']} | {row['width']} | {row['step_ms']} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
