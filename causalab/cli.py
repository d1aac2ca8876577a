"""Command line: ``causalab run`` (an IIA table over a small grid) and ``causalab list``."""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Sequence

import torch

from causalab.errors import CausalabError
from causalab.experiments.config import ExperimentConfig
from causalab.experiments.runner import run_experiment
from causalab.registry import ALGORITHMS, ALIGNMENTS, import_plugin, knobs_of

DEFAULT_ALGORITHMS = "both_equality_relations,left_equality_relation,identity_of_first_argument"


def _split(values: Sequence[str]) -> list[str]:
    out: list[str] = []
    for v in values:
        out += [s for s in (x.strip() for x in split_top_level(v)) if s]
    return out


def split_top_level(text: str) -> list[str]:
    """Split on ``;`` (always) and on ``,`` outside a family's knob list (``revnet:blocks=2,hidden=8``)."""
    parts, cur, in_knobs = [], "", False
    for ch in text:
        if ch == ";" or (ch == "," and not in_knobs):
            parts.append(cur)
            cur, in_knobs = "", False
            continue
        if ch == ":":
            in_knobs = True
        cur += ch
    parts.append(cur)
    return parts


def _ints(values: Sequence[str], name: str) -> list[int]:
    try:
        return [int(v) for v in _split(values)]
    except ValueError:
        raise CausalabError(f"--{name} takes integers, got {values}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="causalab", description=__doc__)
    p.add_argument("--plugin", action="append", default=[], help="import a module that registers algorithms or alignments")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="fit alignment maps and print an IIA table")
    run.add_argument("--algorithm", action="append", help=f"registered algorithm(s), comma-separated (default: {DEFAULT_ALGORITHMS})")
    run.add_argument("--alignment", action="append", help="alignment spec(s), e.g. rotation or rotation:rank=8; ';' separates specs with knobs (default: identity,rotation)")
    run.add_argument("--target", action="append", help="trained, random and/or oracle (default: trained,random)")
    run.add_argument("--layer", action="append", help="hidden layer(s) (default: 1)")
    run.add_argument("--seed", action="append", help="seed(s) for data, map init and the network (default: 0)")
    run.add_argument("--intervention-size", type=int, default=8, help="coordinates per variable (default: 8)")
    run.add_argument("--n-train", type=int, default=20_000)
    run.add_argument("--n-val", type=int, default=2_000)
    run.add_argument("--n-test", type=int, default=5_000)
    run.add_argument("--epochs", type=int, default=20)
    run.add_argument("--batch-size", type=int, default=256)
    run.add_argument("--lr", type=float, default=1e-2)
    run.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    run.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    run.add_argument("--threads", type=int, default=1, help="torch threads in this process (default: 1)")
    run.add_argument("--json", type=Path, help="also write one JSON record per run to this file")

    ls = sub.add_parser("list", help="list registered algorithms or alignment families")
    ls.add_argument("what", choices=["algorithms", "alignments"])
    return p


def _first_line(obj) -> str:
    doc = (obj.__doc__ or "").strip().splitlines()
    return doc[0] if doc else ""


def cmd_list(what: str) -> int:
    if what == "algorithms":
        for name in ALGORITHMS.names():
            task = ALGORITHMS.get(name)()
            print(f"{name:32s} variables={','.join(task.variables):10s} {_first_line(ALGORITHMS.get(name))}")
    else:
        for name in ALIGNMENTS.names():
            cls = ALIGNMENTS.get(name)
            knobs = ", ".join(f"{k}={p.default}" for k, p in knobs_of(cls).items())
            print(f"{name:16s} knobs: {knobs or '(none)':40s} {_first_line(cls)}")
    return 0


def _fmt(x: float) -> str:
    return f"{x:.3f}"


def cmd_run(args: argparse.Namespace) -> int:
    torch.set_num_threads(max(1, args.threads))
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise CausalabError(f"--device {args.device} was asked for, but torch sees no CUDA device")
    algorithms = _split(args.algorithm or [DEFAULT_ALGORITHMS])
    alignments = _split(args.alignment or ["identity", "rotation"])
    targets = _split(args.target or ["trained", "random"])
    layers = _ints(args.layer or ["1"], "layer")
    seeds = _ints(args.seed or ["0"], "seed")
    configs = [
        ExperimentConfig(
            algorithm=alg, alignment=al, target=tg, target_seed=sd, layer=ly, seed=sd,
            intervention_size=args.intervention_size, n_train=args.n_train, n_val=args.n_val, n_test=args.n_test,
            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, device=args.device, dtype=args.dtype,
        )
        for alg, tg, ly, al, sd in itertools.product(algorithms, targets, layers, alignments, seeds)
    ]
    # validate every name before any work starts
    for name in algorithms:
        ALGORITHMS.get(name)
    from causalab.registry import parse_spec

    for spec in alignments:
        ALIGNMENTS.get(parse_spec(spec)[0])

    from tqdm import tqdm

    rows, records = [], []
    start = time.perf_counter()
    bar = tqdm(configs, desc="runs", unit="run", file=sys.stderr, disable=None)
    for cfg in bar:
        bar.set_postfix_str(f"{cfg.algorithm} {cfg.target} {cfg.alignment} L{cfg.layer} s{cfg.seed}")
        res = run_experiment(cfg)
        rec = res.to_record()
        records.append(rec)
        lo, hi = res.test.overall.interval
        per = " ".join(f"{k}={_fmt(s.accuracy)}" for k, s in res.test.per_set.items())
        rows.append([cfg.algorithm, cfg.target, str(cfg.layer), cfg.alignment, str(cfg.seed), str(res.num_parameters),
                     _fmt(res.test.iia), f"[{_fmt(lo)}, {_fmt(hi)}]", per])
    header = ["algorithm", "target", "layer", "alignment", "seed", "params", "IIA", "95% CI", "per variable set"]
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    print(f"\n{len(rows)} runs in {time.perf_counter() - start:.1f}s; test pairs per run: {args.n_test}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        with args.json.open("w") as f:
            for rec in records:
                f.write(json.dumps(rec) + "\n")
        print(f"records written to {args.json}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        for module in args.plugin:
            import_plugin(module)
        if args.command == "list":
            return cmd_list(args.what)
        return cmd_run(args)
    except CausalabError as exc:
        print(f"causalab: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
