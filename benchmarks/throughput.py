"""Alignment-fitting throughput: causalab's path vs a pyvene loop vs a hand-written lower bound.

Cases (same network, map, batch and data for the three paths):

  mlp  trained hierarchical-equality MLP (both equality relations), layer 1, batch 6400;
       maps: revnet (10 blocks, hidden 16), rotation
  lm   random GPT-NeoX (6 layers, width 256, 8 heads), layer 3, last token, batch 64;
       maps: rotation, revnet (8 blocks, hidden 64)

Paths:

  causalab  hidden states cached once per dataset (``prepare``), then per step the
            fit loop's own step (``causalab.fit.fitting.train_step``): interchange, the
            target's ``patched_logits`` (MLP: the layers above the site; LM: resume
            from the cached residual stream), loss, backward, Adam;
  pyvene    the loop pyvene's tutorials write: an ``IntervenableModel`` with the map
            wrapped as a trainable pyvene intervention; base and source inputs run
            through the network every step;
  raw       hand-written torch: the map on cached hidden states, then forward and
            backward through only the layers above the site (LM: every position of
            the upper blocks, read-out at the last), no framework.

Timing: one subprocess per case and map runs the three paths interleaved, ``--reps``
rounds of ``--steps`` steps each, and reports the median steps/s (ratios are taken
within that one run). Peak memory: one subprocess per path (``ru_maxrss``: the whole
process, including torch itself; ``setup`` is the high-water mark before the first step).

    python benchmarks/throughput.py                       # both cases, table on stdout
    python benchmarks/throughput.py --cases lm --reps 7
    python benchmarks/throughput.py --scale               # largest Pythia-like size fitting in 10 minutes
    python benchmarks/throughput.py --lm-cost             # an LM step against its FLOP estimate, 14m/31m/70m,
                                                          # batch 256 (benchmarks/lm_step_cost.py; its flags follow)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lm_step_cost import counted_rows  # noqa: E402  (a sibling benchmark script)

ROOT = Path(__file__).resolve().parents[1]
PATHS = ("causalab", "pyvene", "raw")
CASES = {
    "mlp": {"maps": ["revnet:blocks=10,hidden=16", "rotation"], "batch": 6400},
    "lm": {"maps": ["rotation", "revnet:blocks=8,hidden=64"], "batch": 64},
}


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def pyvene():
    with contextlib.redirect_stdout(io.StringIO()):
        import pyvene as pv
    return pv


def map_intervention(phi, mask):
    """The map as a pyvene intervention, as its tutorials write a custom one."""
    from pyvene.models.interventions import DistributedRepresentationIntervention, TrainableIntervention

    class MapIntervention(TrainableIntervention, DistributedRepresentationIntervention):
        def __init__(self, **kwargs):
            super().__init__(keep_last_dim=True, **kwargs)
            self.phi = phi
            self.register_buffer("mask", mask)

        def forward(self, base, source, subspaces=None, **kwargs):
            shape = base.shape
            b, s = base.reshape(-1, shape[-1]), source.reshape(-1, shape[-1])
            z = torch.where(self.mask, self.phi(s), self.phi(b))
            return self.phi.inverse(z).reshape(shape)

    return MapIntervention()


def resuming_lm(**kwargs):
    """A random ``LMTarget``: its ``patched_logits`` resumes from the stream ``resume_cache`` kept."""
    from causalab.neural.lm import random_lm

    return random_lm(**kwargs)


# --- case setups: each returns {path: step(i)} -------------------------------------------------


def optimiser_step(opt: torch.optim.Optimizer, loss: torch.Tensor) -> torch.Tensor:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


def cycling_batches(batch: int, n: int):
    """Step ``i`` -> the row indices of its batch, cycling through ``n`` rows."""

    def batch_idx(i):
        start = (i * batch) % n
        return torch.arange(start, start + batch)

    return batch_idx


MAPS: dict[str, torch.nn.Module] = {}  # path -> its map, for counting the map's work


def map_rows_per_step(path: str, step) -> int:
    """Rows the path's map processes (forward plus inverse) in one step: the map's share of the work."""
    with counted_rows(MAPS[path]) as rows:
        step(0)
    return rows[0]


def map_factory(spec: str, width: int, seed: int):
    """A fresh map (same init for every path) and its optimiser."""
    import causalab as cl
    from causalab.fit.fitting import adam

    def fresh_map(path):
        torch.manual_seed(seed)
        phi = cl.make_alignment(spec, width)
        MAPS[path] = phi
        return phi, adam(list(phi.parameters()), lr=1e-3)  # the library's optimiser (fused Adam)

    return fresh_map


def setup_mlp(spec: str, batch: int, paths, seed: int = 0):
    import causalab as cl
    from causalab.fit.fitting import train_step

    task = cl.make_task("both_equality_relations")
    target = cl.trained_mlp(task, seed=0)
    site = cl.Site(1)
    data = task.counterfactuals(batch * 4, torch.Generator().manual_seed(seed))
    width = target.width(site)
    partition = cl.Partition.contiguous(task.variables, width // 2, width)
    n = len(data)
    steps = {}

    batch_idx = cycling_batches(batch, n)
    fresh_map = map_factory(spec, width, seed)

    if "causalab" in paths:
        pairs = cl.prepare(target, site, task, data)
        phi_c, opt_c = fresh_map("causalab")
        steps["causalab"] = lambda i: train_step(target, site, phi_c, partition, task, pairs, batch_idx(i), opt_c)
    if "raw" in paths:
        pairs_r = cl.prepare(target, site, task, data)
        phi_r, opt_r = fresh_map("raw")
        upper = target.net[2 * site.layer:]
        masks = [partition.mask(v) for v in task.variables]
        srcs = [pairs_r.h_sources[v] for v in task.variables]

        def raw(i):
            idx = batch_idx(i)
            z = phi_r(pairs_r.h_base[idx])
            for m, s in zip(masks, srcs):
                z = torch.where(m, phi_r(s[idx]), z)
            loss = F.cross_entropy(upper(phi_r.inverse(z)), pairs_r.labels[idx])
            return optimiser_step(opt_r, loss)

        steps["raw"] = raw
    if "pyvene" in paths:
        pv = pyvene()
        phi_p, opt_p = fresh_map("pyvene")

        class Classifier(torch.nn.Module):  # pyvene calls model(**base)
            def __init__(self, net):
                super().__init__()
                from transformers import PretrainedConfig

                self.net = net
                self.config = PretrainedConfig()  # pyvene reads model.config and model.device
                self.device = torch.device("cpu")

            def forward(self, inputs_embeds):  # (B, 1, d_in): one "position", as pyvene's own MLP models use
                return SimpleNamespace(logits=self.net(inputs_embeds)[:, 0])

        model = Classifier(target.net)
        reps = [{"layer": 0, "component": f"net[{2 * site.layer - 1}].output", "unit": "pos", "max_number_of_units": 1,
                 "intervention": map_intervention(phi_p, partition.mask(v))} for v in task.variables]
        with contextlib.redirect_stdout(io.StringIO()):
            ivm = pv.IntervenableModel(pv.IntervenableConfig(representations=reps), model=model)
        ivm.disable_model_gradients()
        x_base = task.encode(data.base)[:, None]
        x_src = [task.encode(data.sources[v])[:, None] for v in task.variables]
        labels = task.labels(data)

        def pyv(i):
            idx = batch_idx(i)
            _, out = ivm({"inputs_embeds": x_base[idx]}, [{"inputs_embeds": x[idx]} for x in x_src],
                         unit_locations={"sources->base": 0})
            loss = F.cross_entropy(out.logits, labels[idx])
            return optimiser_step(opt_p, loss)

        steps["pyvene"] = pyv
    return steps


def setup_lm(spec: str, batch: int, paths, seed: int = 0, size: str = "31m", layer: int = 3, seq: int = 20,
             vocab: int = 50304, pool: int = 4):
    import causalab as cl
    from causalab.fit.fitting import PreparedPairs, hidden_states, train_step
    from causalab.neural.resume import additive_causal_mask, residual_stream

    target = resuming_lm(vocab_size=vocab, arch="gpt_neox", size=size, seed=0, max_positions=max(64, seq))
    model = target.model
    site = cl.Site(layer, "last")
    width = target.width(site)
    g = torch.Generator().manual_seed(seed)
    n = batch * pool
    base_ids = torch.randint(0, vocab, (n, seq), generator=g)
    src_ids = torch.randint(0, vocab, (n, seq), generator=g)
    labels = torch.randint(0, vocab, (n,), generator=g)
    partition = cl.Partition({"V": range(width // 2)}, width)
    task = SimpleNamespace(loss=F.cross_entropy)
    steps = {}

    batch_idx = cycling_batches(batch, n)
    fresh_map = map_factory(spec, width, seed)

    if "causalab" in paths:
        base_inputs = {"input_ids": base_ids}
        resume = target.resume_cache(base_inputs, site)
        pairs = PreparedPairs(base_inputs, hidden_states(target, base_inputs, site, resume=resume),
                              {"V": hidden_states(target, {"input_ids": src_ids}, site)}, labels,
                              torch.zeros(n, dtype=torch.long), [("V",)], resume)
        phi_c, opt_c = fresh_map("causalab")
        steps["causalab"] = lambda i: train_step(target, site, phi_c, partition, task, pairs, batch_idx(i), opt_c)
    if "raw" in paths:
        stream = residual_stream(model, base_ids, layer)
        h_src = residual_stream(model, src_ids, layer)[:, -1]
        phi_r, opt_r = fresh_map("raw")
        body = model.gpt_neox
        blocks = body.layers[layer:]
        mask = additive_causal_mask(0, seq, seq, None, stream.dtype, stream.device)
        rope = body.rotary_emb(stream, torch.arange(seq)[None])
        m = partition.mask("V")
        last = torch.zeros(seq, 1, dtype=torch.bool)
        last[-1] = True

        def raw(i):
            idx = batch_idx(i)
            x = stream[idx]
            z = torch.where(m, phi_r(h_src[idx]), phi_r(x[:, -1]))
            x = torch.where(last, phi_r.inverse(z)[:, None], x)
            for block in blocks:
                x = block(x, attention_mask=mask, position_embeddings=rope)
            loss = F.cross_entropy(model.lm_head(body.final_layer_norm(x[:, -1])), labels[idx])
            return optimiser_step(opt_r, loss)

        steps["raw"] = raw
    if "pyvene" in paths:
        pv = pyvene()
        phi_p, opt_p = fresh_map("pyvene")
        reps = [{"layer": layer - 1, "component": "block_output", "unit": "pos", "max_number_of_units": 1,
                 "intervention": map_intervention(phi_p, partition.mask("V"))}]
        with contextlib.redirect_stdout(io.StringIO()):
            ivm = pv.IntervenableModel(pv.IntervenableConfig(representations=reps), model=model)
        ivm.disable_model_gradients()
        loc = [[seq - 1]] * batch

        def pyv(i):
            idx = batch_idx(i)
            _, out = ivm({"input_ids": base_ids[idx]}, [{"input_ids": src_ids[idx]}],
                         unit_locations={"sources->base": ([loc], [loc])})
            loss = F.cross_entropy(out.logits[:, -1], labels[idx])
            return optimiser_step(opt_p, loss)

        steps["pyvene"] = pyv
    return steps


def setup(case: str, spec: str, batch: int, paths, **kw):
    return (setup_mlp if case == "mlp" else setup_lm)(spec, batch, paths, **kw)


# --- subprocess jobs -----------------------------------------------------------------------------


def job_time(case, spec, batch, reps, n_steps, warmup, **kw) -> dict:
    steps = setup(case, spec, batch, PATHS, **kw)
    for step in steps.values():
        for i in range(warmup):
            step(i)
    rates: dict[str, list[float]] = {p: [] for p in steps}
    for _ in range(reps):
        for path, step in steps.items():
            t = time.perf_counter()
            for i in range(n_steps):
                step(i)
            rates[path].append(n_steps / (time.perf_counter() - t))
    return {"rates": rates, "map_rows": {path: map_rows_per_step(path, step) for path, step in steps.items()}}


def job_memory(case, spec, batch, path, n_steps, **kw) -> dict:
    steps = setup(case, spec, batch, (path,), **kw)
    before = rss_mb()
    for i in range(n_steps):
        steps[path](i)
    return {"setup_mb": before, "peak_mb": rss_mb()}


def job_scale(size, spec, layer, batch, n_train, n_val, epochs, seq, vocab) -> dict:
    """Fit ``spec`` at ``layer`` of a random Pythia-like GPT-NeoX of ``size`` with causalab's fit loop."""
    import causalab as cl
    from causalab.fit.fitting import PreparedPairs, hidden_states

    t0 = time.perf_counter()
    target = resuming_lm(vocab_size=vocab, arch="gpt_neox", size=size, seed=0, max_positions=max(64, seq))
    site = cl.Site(layer, "last")
    width = target.width(site)
    g = torch.Generator().manual_seed(0)

    def pairs(n):
        ids, src = torch.randint(0, vocab, (n, seq), generator=g), torch.randint(0, vocab, (n, seq), generator=g)
        # a learnable counterfactual label: the source's token at the last position
        base_inputs = {"input_ids": ids}
        resume = target.resume_cache(base_inputs, site)
        return PreparedPairs(base_inputs, hidden_states(target, base_inputs, site, 256, resume),
                             {"V": hidden_states(target, {"input_ids": src}, site, 256)}, src[:, -1].clone(),
                             torch.zeros(n, dtype=torch.long), [("V",)], resume)

    train, val = pairs(n_train), pairs(n_val)
    t_prep = time.perf_counter() - t0
    task = SimpleNamespace(loss=F.cross_entropy, correct=lambda lg, y: lg.argmax(-1) == y)
    torch.manual_seed(0)
    phi = cl.make_alignment(spec, width)
    partition = cl.Partition({"V": range(width // 2)}, width)
    fit = cl.fit_alignment(target, site, phi, partition, task, train, val,
                           cl.FitConfig(epochs=epochs, batch_size=batch, lr=1e-3, patience=epochs))
    return {"size": size, "map": spec, "layer": layer, "width": width, "layers": target.n_layers,
            "steps": fit.steps, "val_iia": fit.best_val_iia, "prepare_s": t_prep,
            "total_s": time.perf_counter() - t0, "peak_mb": rss_mb()}


def run_child(payload: dict, timeout: float | None = None) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(payload)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f}s"}
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def child(payload: dict) -> None:
    torch.set_num_threads(1)
    sys.path.insert(0, str(ROOT))
    kind = payload.pop("job")
    fn = {"time": job_time, "memory": job_memory, "scale": job_scale}[kind]
    print(json.dumps(fn(**payload)))


# --- driver ----------------------------------------------------------------------------------------


def throughput(args) -> int:
    rows = []
    for case in args.cases:
        batch = args.batch.get(case, CASES[case]["batch"]) if isinstance(args.batch, dict) else CASES[case]["batch"]
        for spec in args.maps or CASES[case]["maps"]:
            kw = {"case": case, "spec": spec, "batch": batch}
            print(f"[{case} {spec}] timing ...", file=sys.stderr, flush=True)
            res = run_child({"job": "time", "reps": args.reps, "n_steps": args.steps[case], "warmup": 2, **kw})
            if "error" in res:
                print(f"  failed: {res['error']}", file=sys.stderr)
                continue
            med = {p: statistics.median(v) for p, v in res["rates"].items()}
            mem = {}
            for path in PATHS:
                print(f"[{case} {spec}] memory of {path} ...", file=sys.stderr, flush=True)
                mem[path] = run_child({"job": "memory", "path": path, "n_steps": 3, **kw})
            rows.append((case, spec, batch, med, res["rates"], res["map_rows"], mem))
    print("| case | map | batch | path | steps/s (median) | min..max | speed vs pyvene | time vs raw | map rows/step "
          "| peak RSS MB | setup RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for case, spec, batch, med, rates, map_rows, mem in rows:
        for path in PATHS:
            m = mem.get(path, {})
            print(f"| {case} | {spec} | {batch} | {path} | {med[path]:.2f} | {min(rates[path]):.2f}..{max(rates[path]):.2f} "
                  f"| {med[path] / med['pyvene']:.2f}x | {med['raw'] / med[path]:.2f}x | {map_rows[path]} "
                  f"| {m.get('peak_mb', float('nan')):.0f} | {m.get('setup_mb', float('nan')):.0f} |")
    print(f"\n{args.reps} rounds x {args.steps} steps per path, interleaved; torch {torch.__version__}, 1 thread.\n"
          "map rows/step: rows through the map's forward and inverse in one step (a swap by projection runs neither).")
    return 0


def scale(args) -> int:
    print("| size | layers | width | layer | map | steps | prepare s | total s | peak RSS MB | val IIA |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    from causalab.neural.lm import SIZES

    failed = None
    for size in args.sizes:
        if failed:  # a larger model only takes longer
            print(f"| {size} | {SIZES[size][0]} | {SIZES[size][1]} | - | - | - | - | not run: {failed} failed | - | - |")
            continue
        layer = max(1, SIZES[size][0] // 2)
        for spec in ("rotation", "revnet:blocks=8,hidden=64"):
            print(f"[scale {size} {spec}] ...", file=sys.stderr, flush=True)
            res = run_child({"job": "scale", "size": size, "spec": spec, "layer": layer, "batch": args.scale_batch,
                             "n_train": args.scale_train, "n_val": args.scale_val, "epochs": args.scale_epochs,
                             "seq": 20, "vocab": args.vocab}, timeout=args.budget)
            if "error" in res:
                print(f"| {size} | {SIZES[size][0]} | {SIZES[size][1]} | {layer} | {spec} | - | - | {res['error']} | - | - |",
                      flush=True)
                failed = f"{size} {spec}"
                break
            print(f"| {size} | {res['layers']} | {res['width']} | {layer} | {spec} | {res['steps']} | {res['prepare_s']:.0f} "
                  f"| {res['total_s']:.0f} | {res['peak_mb']:.0f} | {res['val_iia']:.3f} |", flush=True)
    print(f"\nfit: {args.scale_train} train / {args.scale_val} val pairs, {args.scale_epochs} epochs, batch "
          f"{args.scale_batch}, sequence 20, vocabulary {args.vocab}, budget {args.budget:.0f}s per fit.")
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--lm-cost" in argv:  # the LM step-cost table: its own module, its own flags
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from lm_step_cost import main as lm_cost

        return lm_cost([a for a in argv if a != "--lm-cost"])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    p.add_argument("--maps", nargs="+", help="alignment specs (default: the case's two maps)")
    p.add_argument("--reps", type=int, default=5, help="timing rounds per path (median reported)")
    p.add_argument("--mlp-steps", type=int, default=10, help="steps per round, MLP case")
    p.add_argument("--lm-steps", type=int, default=10, help="steps per round, LM case")
    p.add_argument("--scale", action="store_true", help="run the scale probe instead")
    p.add_argument("--sizes", nargs="+", default=["14m", "31m", "70m", "160m", "410m", "1b", "1.4b"],
                   help="sizes to probe, smallest first: the first fit over budget ends the probe")
    p.add_argument("--budget", type=float, default=600.0, help="seconds per scale fit")
    p.add_argument("--scale-train", type=int, default=1024)
    p.add_argument("--scale-val", type=int, default=256)
    p.add_argument("--scale-epochs", type=int, default=2)
    p.add_argument("--scale-batch", type=int, default=64)
    p.add_argument("--vocab", type=int, default=50304)
    args = p.parse_args(argv)
    if args.child:
        child(json.loads(args.child))
        return 0
    torch.set_num_threads(1)
    args.steps = {"mlp": args.mlp_steps, "lm": args.lm_steps}
    args.batch = {}
    return scale(args) if args.scale else throughput(args)


if __name__ == "__main__":
    sys.exit(main())
