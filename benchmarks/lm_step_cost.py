"""What a language-model fitting step costs against its FLOP estimate, before and after the per-row prefix cache.

Setting: a random Pythia-like GPT-NeoX (``causalab.neural.lm.SIZES``) with the IOI
word vocabulary, the IOI pattern task's sentences (right-padded, last token at 12..19),
site: the middle layer's residual stream at the last token, batch 256; maps: the
rotation and RevNet 8x64, intervention on half the width.

Paths, interleaved round by round in one process on the same model, map init and batches:

  after   ``causalab.fit.fitting.train_step`` on ``prepare``'s pairs: each row's own prefix
          keys/values cached, one position per row and upper block with autograd,
          hand-written blocks;
  before  the previous resume: keys/values cached only before the *dataset's* first
          read position, the Hugging Face blocks run from the batch's first read
          position to the end of the sequence with autograd (written out below from
          the library's pieces, as it was).

FLOP estimate of a step (forward and backward; the network's weights are frozen, so its
backward is the activation gradients only, as many FLOPs as its forward): the blocks
above the site at the positions that must run (one per row at the last token:
projections, MLP, and attention over each row's prefix), the unembedding at the read
position, and the map's passes (the rows ``interchange`` sends through it, forward and
backward with weight gradients; for the rotation, the projection and the Cayley solve).
The matmul rate is measured in the same process, in every round, on the matrix shapes of
those same products, so the ratio "step / estimate" is taken under the same load as the
step. Times are CPU seconds of the process (``time.process_time``; one torch thread), not
wall-clock: on a shared machine the process is descheduled at random, which wall-clock
would count; medians over rounds.

    python benchmarks/lm_step_cost.py                       # 14m, 31m, 70m; both maps
    python benchmarks/lm_step_cost.py --sizes 14m --reps 5 --steps 5
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
MAPS = ("rotation", "revnet:blocks=8,hidden=64")


@contextlib.contextmanager
def counted_rows(phi):
    """Count the rows ``phi`` processes (forward plus inverse) inside the block: the map's share of a step."""
    rows = [0]

    def counting(fn):
        def wrapped(x, *a, **k):
            rows[0] += x.reshape(-1, x.shape[-1]).shape[0]
            return fn(x, *a, **k)
        return wrapped

    phi.forward, phi.inverse = counting(phi.forward), counting(phi.inverse)
    try:
        yield rows
    finally:
        del phi.forward, phi.inverse


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --- the previous resume, for the "before" path ---------------------------------------------


def previous_inputs(model, ids: torch.Tensor, layer: int, first: int, batch: int = 256) -> dict:
    """The previous cache: the whole stream after ``layer``, keys/values before the dataset's first read position."""
    from causalab.neural.resume import prefix_keys_values, residual_stream

    stream = torch.cat([residual_stream(model, ids[i : i + batch], layer) for i in range(0, len(ids), batch)])
    kv = torch.cat([prefix_keys_values(model, stream[i : i + batch], layer, first) for i in range(0, len(ids), batch)])
    return {"stream": stream, "kv": kv}


def previous_logits(model, layer: int, stream, positions, h, read, prefix_kv):
    """Logits as the previous resume computed them: Hugging Face blocks from the batch's first read position on."""
    from causalab.neural.resume import _fill_keys_values, _KeyValues, additive_causal_mask, architecture

    arch = architecture(model)
    upper = arch.blocks(model)[layer:]
    B, T, _ = stream.shape
    start = int(torch.minimum(positions, read).min())
    context = arch.positions(model, stream, torch.arange(T)[None])
    kv = _KeyValues(prefix_kv)
    if start > prefix_kv.shape[-2]:
        _fill_keys_values(arch, upper, stream, prefix_kv.shape[-2], start, None, context, kv)
    here = (torch.arange(start, T)[None, :] == positions[:, None]).unsqueeze(-1)
    x = torch.where(here, h.unsqueeze(1), stream[:, start:])
    mask = additive_causal_mask(start, T, T, None, stream.dtype, stream.device)
    ctx = arch.slice_positions(context, start, T)
    for block in upper:
        x = arch.call_block(block, x, mask, ctx, kv)
    x = x[torch.arange(B), read - start]
    return model.get_output_embeddings()(arch.final_norm(model)(x))


# --- the FLOP estimate and the matmul programme at the step's shapes ------------------------


def map_programme(phi, rows: int, batch: int, width: int, k: int) -> list[tuple[int, int, int]]:
    """Matrix products (m, k, n) of the map's passes in one step, forward and backward."""
    from alignments.revnet import RevNetMap

    out = []
    if isinstance(phi, RevNetMap):
        for lin in (m for m in phi.modules() if isinstance(m, torch.nn.Linear)):
            i, o = lin.in_features, lin.out_features
            out += [(rows, i, o), (rows, o, i), (o, rows, i)]  # forward, input gradient, weight gradient
        return out
    # rotation by projection: h + (h_v - h) Q_v Q_v^T, two products forward, four backward
    out += [(batch, width, k), (batch, k, width)] * 3
    return out


def cayley_flops(width: int) -> float:
    """The rotation's Cayley map: an LU solve of a width x width system with width right-hand sides, forward and backward."""
    return 3 * (2 / 3 * width**3 + 2 * width**3)


def block_programme(model, batch: int, live: int, prefix: float) -> tuple[list, float]:
    """Products of the upper blocks at ``live`` positions per row, forward and activation backward; attention FLOPs."""
    cfg = model.config
    d, ffn = cfg.hidden_size, cfg.intermediate_size
    R = batch * live
    prods = []
    for i, o in ((d, 3 * d), (d, d), (d, ffn), (ffn, d)):
        prods += [(R, i, o), (R, o, i)]
    # attention of each live query over ~prefix cached keys: scores and weighted values, forward and backward
    attn = 2 * 2 * 2 * R * (prefix + live) * d
    return prods, attn


def flops(prods) -> float:
    return float(sum(2 * m * k * n for m, k, n in prods))


class Programme:
    """The step's matrix products on fixed operands, timed like the steps: CPU seconds of one pass, averaged."""

    def __init__(self, prods) -> None:
        self.operands = [(torch.randn(m, k), torch.randn(k, n)) for m, k, n in prods]
        self.flops = flops(prods)

    def seconds(self, passes: int = 3) -> float:
        for a, b in self.operands:  # warm
            a @ b
        t = time.process_time()
        for _ in range(passes):
            for a, b in self.operands:
                a @ b
        return (time.process_time() - t) / passes


# --- one size and map -------------------------------------------------------------------------


def setup(size: str, spec: str, batch: int, n_pairs: int, paths=("after", "before")):
    import causalab as cl
    from algorithms import ioi, ioi_models
    from causalab.fit.fitting import adam, index_inputs, train_step
    from causalab.maps.intervene import interchange
    from causalab.neural.lm import SIZES, random_lm

    task = ioi.ioi_pattern_task()
    lm = random_lm(len(ioi.data.VOCAB), size=size, seed=0, tokenizer=ioi_models.tokenizer())
    layer = max(1, SIZES[size][0] // 2)
    site = cl.Site(layer, "last")
    width = lm.width(site)
    data = task.counterfactuals(n_pairs, torch.Generator().manual_seed(0))
    part = cl.Partition({"pattern": range(width // 2)}, width)
    t0 = time.perf_counter()
    pairs = cl.prepare(lm, site, task, data)
    prepare_s = time.perf_counter() - t0
    steps, phis = {}, {}

    def fresh(path):
        torch.manual_seed(0)
        phi = cl.make_alignment(spec, width)
        phis[path] = phi
        return phi, adam(list(phi.parameters()), lr=1e-3)  # the library's optimiser (fused Adam)

    if "after" in paths:
        phi_a, opt_a = fresh("after")
        steps["after"] = lambda idx: train_step(lm, site, phi_a, part, task, pairs, idx, opt_a)
    if "compiled" in paths:  # the fit loop's step with the runtime setting compile on, interleaved with the eager one
        import dataclasses

        phi_c, opt_c = fresh("compiled")
        compiled_pairs = dataclasses.replace(pairs, resume=dataclasses.replace(pairs.resume, compile=True))
        steps["compiled"] = lambda idx: train_step(lm, site, phi_c, part, task, compiled_pairs, idx, opt_c)
    if "before" in paths:
        from torch.nn.utils import parametrize

        phi_b, opt_b = fresh("before")
        read = pairs.base_inputs["pos_last"]
        prev = previous_inputs(lm.model, pairs.base_inputs["input_ids"], layer, int(read.min()))

        def before(idx):
            with parametrize.cached():
                h = interchange(phi_b, pairs.h_base[idx], {v: s[idx] for v, s in pairs.h_sources.items()}, part,
                                {v: m[idx] for v, m in pairs.intervened().items()})
                p = index_inputs(prev, idx)
                logits = previous_logits(lm.model, layer, p["stream"], read[idx], h, read[idx], p["kv"])
                loss = task.loss(logits, pairs.labels[idx])
            opt_b.zero_grad(set_to_none=True)
            loss.backward()
            opt_b.step()
            return loss.detach()

        steps["before"] = before
    return SimpleSetup(lm, site, layer, width, pairs, steps, phis, prepare_s, batch)


class SimpleSetup:
    def __init__(self, lm, site, layer, width, pairs, steps, phis, prepare_s, batch):
        self.lm, self.site, self.layer, self.width, self.pairs = lm, site, layer, width, pairs
        self.steps, self.phis, self.prepare_s, self.batch = steps, phis, prepare_s, batch

    def cached_bytes_per_pair(self) -> float:
        """Bytes per pair of everything ``prepare`` keeps that the LM adds (stream window, keys/values, hidden states)."""
        def size(x):
            if isinstance(x, torch.Tensor):
                return x.numel() * x.element_size()
            return sum(size(v) for v in x.values())

        kept = self.pairs.resume.nbytes() if self.pairs.resume is not None else 0
        total = kept + size(self.pairs.h_base) + sum(size(h) for h in self.pairs.h_sources.values())
        return total / len(self.pairs)

    def estimate(self, spec: str) -> tuple[float, list]:
        """(FLOPs of one step, the matrix products to time for the rate)."""
        import causalab as cl
        from causalab.fit.fitting import patched_logits

        cfg = self.lm.model.config
        starts = self.pairs.base_inputs["pos_last"].float()
        prods, attn = block_programme(self.lm.model, self.batch, 1, float(starts.mean()))
        prods = prods * (cfg.num_hidden_layers - self.layer)
        attn *= cfg.num_hidden_layers - self.layer
        V = cfg.vocab_size
        prods += [(self.batch, self.width, V), (self.batch, V, self.width)]
        phi = self.phis["after"]
        part = cl.Partition({"pattern": range(self.width // 2)}, self.width)
        with counted_rows(phi) as rows, torch.no_grad():
            patched_logits(self.lm, self.site, phi, part, self.pairs, torch.arange(self.batch))
        prods += map_programme(phi, rows[0], self.batch, self.width, self.width // 2)
        extra = attn + (cayley_flops(self.width) if spec == "rotation" else 0.0)
        return flops(prods) + extra, prods


def job_cost(size: str, spec: str, batch: int, reps: int, n_steps: int, n_pairs: int, paths: list[str]) -> dict:
    s = setup(size, spec, batch, n_pairs, paths)
    total, prods = s.estimate(spec)
    g = torch.Generator().manual_seed(1)
    n = len(s.pairs)
    batches = [torch.randperm(n, generator=g)[:batch] for _ in range(n_steps)]
    for step in s.steps.values():  # warm-up
        for idx in batches[:2]:
            step(idx)
    times = {p: [] for p in s.steps}
    rates = []
    programme = Programme(prods)
    for _ in range(reps):
        for path, step in s.steps.items():
            t = time.process_time()
            for idx in batches:
                step(idx)
            times[path].append((time.process_time() - t) / n_steps)
        rates.append(programme.flops / programme.seconds())
    return {"size": size, "map": spec, "layer": s.layer, "width": s.width, "flops": total,
            "ms": {p: [1000 * t for t in v] for p, v in times.items()}, "rates": rates,
            "ratios": {p: [t * r / total for t, r in zip(v, rates)] for p, v in times.items()},
            "bytes_per_pair": s.cached_bytes_per_pair(), "prepare_s": s.prepare_s, "peak_mb": rss_mb()}


def job_memory(size: str, spec: str, batch: int, n_pairs: int, n_steps: int = 3) -> dict:
    s = setup(size, spec, batch, n_pairs, ["after"])
    for i in range(n_steps):
        s.steps["after"](torch.arange(i * batch, (i + 1) * batch) % len(s.pairs))
    return {"peak_mb": rss_mb(), "bytes_per_pair": s.cached_bytes_per_pair()}


def run_child(payload: dict) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(payload)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--sizes", nargs="+", default=["14m", "31m", "70m"])
    p.add_argument("--maps", nargs="+", default=list(MAPS))
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--pairs", type=int, default=2048, help="prepared pairs the batches are drawn from")
    p.add_argument("--reps", type=int, default=5, help="interleaved rounds (medians reported)")
    p.add_argument("--steps", type=int, default=5, help="steps per path per round")
    p.add_argument("--no-before", action="store_true", help="time only the current path")
    p.add_argument("--compile", action="store_true", help="also time the current path with the runtime setting compile on "
                   "(torch.compile of the resumed blocks), interleaved with the others")
    p.add_argument("--kv-cache-mb", help="CAUSALAB_KV_CACHE_MB for the runs (0: nothing cached, the stream is "
                   "recomputed each step)")
    p.add_argument("--kv-cache-dtype", help="CAUSALAB_KV_CACHE_DTYPE for the runs (float32, float16, bfloat16)")
    args = p.parse_args(argv)
    import os

    for flag, var in ((args.kv_cache_mb, "CAUSALAB_KV_CACHE_MB"), (args.kv_cache_dtype, "CAUSALAB_KV_CACHE_DTYPE")):
        if flag is not None:
            os.environ[var] = flag  # read by the children
    torch.set_num_threads(1)
    if args.child:
        sys.path.insert(0, str(ROOT))
        payload = json.loads(args.child)
        job = {"cost": job_cost, "memory": job_memory}[payload.pop("job")]
        print(json.dumps(job(**payload)))
        return 0
    paths = ["after"] if args.no_before else ["after", "before"]
    if args.compile:
        paths.append("compiled")
    print("| size | map | before ms | after ms | speed-up | FLOP estimate (GFLOP) | matmul rate at the step's shapes "
          "(GFLOP/s) | estimate ms | after / estimate | before / estimate | peak RSS MB (after) | cached bytes per pair |"
          + (" compiled ms | compiled / estimate |" if args.compile else ""))
    print("|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|---|" if args.compile else ""))
    for size in args.sizes:
        for spec in args.maps:
            print(f"[{size} {spec}] ...", file=sys.stderr, flush=True)
            r = run_child({"job": "cost", "size": size, "spec": spec, "batch": args.batch, "reps": args.reps,
                           "n_steps": args.steps, "n_pairs": args.pairs, "paths": paths})
            if "error" in r:
                print(f"| {size} | {spec} | failed: {r['error']} |", flush=True)
                continue
            m = run_child({"job": "memory", "size": size, "spec": spec, "batch": args.batch, "n_pairs": args.pairs})
            med = {p: statistics.median(v) for p, v in r["ms"].items()}
            ratio = {p: statistics.median(v) for p, v in r["ratios"].items()}
            rate = statistics.median(r["rates"])
            est = r["flops"] / rate * 1000
            before = f"{med['before']:.1f}" if "before" in med else "-"
            speedup = f"{med['before'] / med['after']:.1f}x" if "before" in med else "-"
            bratio = f"{ratio['before']:.2f}" if "before" in ratio else "-"
            print(f"| {size} | {spec} | {before} | {med['after']:.1f} | {speedup} | {r['flops'] / 1e9:.2f} | {rate / 1e9:.0f} "
                  f"| {est:.1f} | {ratio['after']:.2f} | {bratio} | {m.get('peak_mb', float('nan')):.0f} "
                  f"| {r['bytes_per_pair'] / 1e3:.1f} KB |"
                  + (f" {med['compiled']:.1f} | {ratio['compiled']:.2f} |" if "compiled" in med else ""), flush=True)
    print(f"\nbatch {args.batch}, {args.pairs} prepared IOI pairs, {args.reps} interleaved rounds x {args.steps} steps "
          f"per path (medians; ratios per round against that round's matmul rate); torch {torch.__version__}, 1 thread.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
