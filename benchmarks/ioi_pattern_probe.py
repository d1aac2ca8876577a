"""How well the ABAB/ABBA pattern can be read from a random LM's hidden state: an MLP read-out.

For each size and initialisation, a random Pythia-like GPT-NeoX (``transformers``' N(0, 0.02)
init, or ``pythia``: the GPT-NeoX library's small_init / wang_init, as Pythia's step0) reads
N IOI sentences; a two-layer MLP (hidden 256, Adam 1e-3, up to 60 epochs, early stopping
on a held-out fifth) is trained on the hidden state at the middle layer's last token to
predict the pattern, and scored on 5,000 other sentences. Pattern information that no
read-out finds is information no alignment map can align to.

    python benchmarks/ioi_pattern_probe.py --sizes 14m 31m --sentences 10000 40000 --inits transformers pythia

``--task-option roles=fixed --task-option names=21`` draws the sentences under an IOI data
regime (:func:`algorithms.ioi.ioi_pattern_task`; test sentences are new sentences of the same
regime). ``--out FILE.jsonl`` appends one JSON record per probe (size, init, layer, sentences, seed,
test accuracy, seconds), as ``benchmarks/dilemma/results/ioi_pattern_probe.jsonl`` holds
them for the IOI scaling figure (:func:`causalab.dilemma.figures.ioi_scaling_figure`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch import nn

from algorithms import ioi, ioi_models
from algorithms import ioi_data as data
from causalab.neural.lm import SIZES, random_lm
from causalab.neural.target import Site
from causalab.threads import use_threads


def hidden_and_pattern(target, n: int, seed: int, layer: int, options: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden states at ``layer``'s last token of ``n`` sentences (of the ``ioi_pattern`` regime ``options``) and their pattern."""
    task = ioi.ioi_pattern_task(**(options or {}))
    values = task.algorithm.sample_inputs(n, torch.Generator().manual_seed(seed))
    pattern = task.algorithm.run(values)["pattern"].long()
    enc = task.encode(values)
    parts = []
    with torch.no_grad():
        for i in range(0, n, 512):
            batch = {k: v[i : i + 512] for k, v in enc.items()}
            parts.append(target.hidden(batch, Site(layer, "last")))
    return torch.cat(parts), pattern


def probe_accuracy(x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor, seed: int = 0) -> float:
    torch.manual_seed(seed)
    mean, std = x.mean(0), x.std(0) + 1e-6
    x, x_test = (x - mean) / std, (x_test - mean) / std
    n_val = len(x) // 5
    xv, yv, xt, yt = x[:n_val], y[:n_val], x[n_val:], y[n_val:]
    net = nn.Sequential(nn.Linear(x.shape[1], 256), nn.ReLU(), nn.Linear(256, 2))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    best, best_state, bad = -1.0, None, 0
    for _ in range(60):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 256):
            idx = perm[i : i + 256]
            opt.zero_grad()
            nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
            opt.step()
        with torch.no_grad():
            acc = float((net(xv).argmax(1) == yv).float().mean())
        if acc > best:
            best, best_state, bad = acc, {k: v.clone() for k, v in net.state_dict().items()}, 0
        else:
            bad += 1
            if bad >= 6:
                break
    net.load_state_dict(best_state)
    with torch.no_grad():
        return float((net(x_test).argmax(1) == y_test).float().mean())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["14m", "31m"], choices=list(SIZES))
    p.add_argument("--sentences", nargs="+", type=int, default=[10_000, 40_000])
    p.add_argument("--inits", nargs="+", default=["transformers", "pythia"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test", type=int, default=5_000)
    p.add_argument("--out", type=Path, help="append one JSON record per probe to this file")
    p.add_argument("--task-option", action="append", default=[], metavar="KEY=VALUE",
                   help="the ioi_pattern data regime, e.g. roles=fixed names=21 (see causalab list algorithms)")
    args = p.parse_args(argv)
    options = {}
    for item in args.task_option:
        key, _, value = item.partition("=")
        options[key] = int(value) if value.isdigit() else {"true": True, "false": False}.get(value, value)
    use_threads()
    print("| size | init | layer | sentences | probe test accuracy | seconds |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes:
        layer = max(1, SIZES[size][0] // 2)
        for init in args.inits:
            t0 = time.perf_counter()
            target = random_lm(len(data.VOCAB), size=size, seed=args.seed, init=init, tokenizer=ioi_models.tokenizer())
            x_test, y_test = hidden_and_pattern(target, args.test, 10_000 + args.seed, layer, options)
            x_all, y_all = hidden_and_pattern(target, max(args.sentences), args.seed, layer, options)
            for n in sorted(args.sentences):
                acc = probe_accuracy(x_all[:n], y_all[:n], x_test, y_test, args.seed)
                seconds = time.perf_counter() - t0
                print(f"| {size} | {init} | {layer} | {n:,} | {acc:.3f} | {seconds:.0f} |", flush=True)
                if args.out:
                    record = {"size": size, "width": target.hidden_width, "init": init, "layer": layer, "position": "last",
                              "sentences": n, "seed": args.seed, **({"task_options": options} if options else {}),
                              "n_test": args.test, "probe_test_accuracy": round(acc, 4),
                              "seconds_cumulative": round(seconds, 1), "versions": {"torch": torch.__version__}}
                    with args.out.open("a") as f:
                        f.write(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
