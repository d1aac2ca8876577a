"""The GPU path, checked and timed in a few minutes: fitting steps on a device beside this CPU's.

For each case the same config is built on the device and on the CPU (one torch thread),
its pairs are prepared on each, and a few fitting steps are timed after a warm-up step;
the script prints milliseconds per step on both, the ratio, and whether the device's
fitted map scores the same pairs when reloaded on the CPU (save, load, evaluate). Cases:

- ``mlp``: the quick profile's MLP panel's largest fit (both equality relations, layer 1, the
  trained MLP, RevNet (10, 16), batch 6400);
- ``lm-<size>``: the IOI regime's headline fit (fixed roles, RevNet (8, 64), half the width,
  last token, batch 256) on a random Pythia-like model of each size (default 70m and 410m),
  a bfloat16 target under a float32 map on the device.

::

    python benchmarks/gpu_check.py --device cuda --out benchmarks/results/gpu_check.json
    python benchmarks/gpu_check.py --device cpu --sizes tiny --steps 2   # the script itself, anywhere

A device torch cannot see is a usage error that names it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

import causalab as cl
from causalab.experiments import ExperimentConfig, build_run
from causalab.fit.measure import draw_pairs
from causalab.neural.build import build_target
from causalab.neural.lm import SIZES
from causalab.threads import use_threads


def cases(sizes: list[str], pairs: int) -> dict[str, tuple[ExperimentConfig, str]]:
    """name -> (config, target dtype on the device)."""
    out = {"mlp": (ExperimentConfig(algorithm="both_equality_relations", target="trained", layer=1,
                                    alignment="revnet:blocks=10,hidden=16", intervention_size=8, n_train=pairs * 25,
                                    n_val=1_000, n_test=1_000, batch_size=6_400, lr=3e-3), "float32")}
    for size in sizes:
        width = SIZES[size][1]
        config = ExperimentConfig(algorithm="ioi_pattern", task_options={"roles": "fixed", "names": 21},
                                  target="random", target_options={"size": size, "init": "pythia"}, layer=3 if size != "tiny" else 1,
                                  position="last", alignment="revnet:blocks=8,hidden=64",
                                  intervention_size=width // 2, n_train=pairs, n_val=256, n_test=256,
                                  batch_size=256, lr=1e-3)
        out[f"lm-{size}"] = (config, "bfloat16")
    return out


def time_steps(config: ExperimentConfig, device: str, dtype: str, steps: int) -> dict:
    """Prepare the config's pairs on ``device`` and time ``steps`` fitting steps after one warm-up step."""
    config = config.replace(device=device)
    start = time.perf_counter()
    run = build_run(config)
    if dtype != "float32" and device != "cpu":  # a half-precision network under a float32 map
        task = cl.make_task(config.algorithm, **config.task_options)
        run.target = build_target(task, config.target, config.target_seed, dtype=getattr(torch, dtype),
                                  **config.target_options).to(device)
        run.task = task.for_target(run.target)
    train, val, test = draw_pairs(run.task, config.measure)
    prep = [cl.prepare(run.target, run.site, run.task, d, device=device) for d in (train, val, test)]
    prepared = time.perf_counter() - start
    fit = dataclasses.replace(config.fit, epochs=1, max_steps=1, patience=1)
    cl.fit_alignment(run.target, run.site, run.phi, run.partition, run.task, prep[0], prep[1], fit)  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fit = dataclasses.replace(config.fit, epochs=max(1, steps), max_steps=steps, patience=steps + 1)
    result = cl.fit_alignment(run.target, run.site, run.phi, run.partition, run.task, prep[0], prep[1], fit)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    iia = cl.evaluate(run.target, run.site, run.phi, run.partition, run.task, prep[2]).iia
    return {"run": run, "prepared": prep, "ms_per_step": 1000 * seconds / max(result.steps, 1),
            "steps": result.steps, "prepare_s": prepared, "test_iia": iia}


def reload_on_cpu(measured: dict, config: ExperimentConfig) -> float:
    """The device's fitted map saved, loaded on the CPU and scored on the same pairs rebuilt there."""
    run = measured["run"]
    with tempfile.TemporaryDirectory() as tmp:
        path = cl.save_alignment(run.phi, Path(tmp) / "map.safetensors", partition=run.partition)
        saved = cl.load_alignment(path, device="cpu")
    cpu = build_run(ExperimentConfig.from_dict({**config.to_dict(), "device": "cpu"}))
    test = draw_pairs(cpu.task, config.measure)[2]
    return cl.evaluate(cpu.target, cpu.site, saved.map, saved.partition, cpu.task, cl.prepare(cpu.target, cpu.site, cpu.task, test)).iia


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="the device to check (default cuda)")
    p.add_argument("--sizes", nargs="+", default=["70m", "410m"], help="random Pythia-like LM sizes")
    p.add_argument("--steps", type=int, default=20, help="timed steps on the device (the CPU runs a fifth, at least 1)")
    p.add_argument("--pairs", type=int, default=2_048, help="IOI fitting pairs (the MLP case uses 25x)")
    p.add_argument("--cases", nargs="+", choices=["mlp", "lm"], default=["mlp", "lm"], help="which cases (default both)")
    p.add_argument("--out", type=Path, help="also write the table as JSON here")
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: torch sees no CUDA device here (torch {torch.__version__}); "
                         "run on a GPU machine, or --device cpu to check the script")
    use_threads(1)
    rows = []
    print("| case | device ms/step | CPU ms/step | CPU / device | device prepare s | test IIA device / reloaded on CPU |")
    print("|---|---|---|---|---|---|")
    for name, (config, dtype) in cases(args.sizes, args.pairs).items():
        if name.split("-")[0] not in args.cases:
            continue
        dev = time_steps(config, args.device, dtype, args.steps)
        cpu = time_steps(config, "cpu", "float32", max(1, args.steps // 5))
        reloaded = reload_on_cpu(dev, config)
        row = {"case": name, "device": args.device, "device_ms_per_step": dev["ms_per_step"],
               "cpu_ms_per_step": cpu["ms_per_step"], "speedup": cpu["ms_per_step"] / dev["ms_per_step"],
               "device_prepare_s": dev["prepare_s"], "cpu_prepare_s": cpu["prepare_s"], "target_dtype": dtype,
               "test_iia_device": dev["test_iia"], "test_iia_reloaded_cpu": reloaded}
        rows.append(row)
        print(f"| {name} | {row['device_ms_per_step']:.1f} | {row['cpu_ms_per_step']:.1f} | {row['speedup']:.1f}x | "
              f"{row['device_prepare_s']:.1f} | {row['test_iia_device']:.3f} / {reloaded:.3f} |", flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        info = {"torch": torch.__version__, "python": platform.python_version(),
                "device_name": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor()}
        args.out.write_text(json.dumps({"info": info, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
