"""Command line: ``causalab run`` (an IIA table over a small grid or a config file), ``causalab sweep``
(a TOML sweep into a resumable results store), ``causalab report`` and ``causalab list``."""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from causalab.cli.progress import RunProgress, StepLines
from causalab.dilemma import EXPERIMENTS
from causalab.errors import CausalabError
from causalab.experiments.config import ExperimentConfig
from causalab.experiments.grid import expand_grid, load_sweep
from causalab.experiments.report import CHANCE_MARK, format_table, with_chance_note
from causalab.experiments.runner import run_experiment
from causalab.experiments.store import ResultStore
from causalab.experiments.summary import at_chance
from causalab.experiments.validate import validate_all
from causalab.maps.saved import map_folder
from causalab.maps.spec import AlignmentSpec, knobs_of
from causalab.progress import listen
from causalab.registry import ALGORITHMS, ALIGNMENTS, import_plugin, task_options_of
from causalab.runtime import KV_CACHE_DTYPES, RuntimeSettings
from causalab.threads import use_threads

DEFAULT_ALGORITHMS = "both_equality_relations,left_equality_relation,identity_of_first_argument"
GRID_OPTIONS = ("algorithm", "alignment", "target", "layer", "seed", "target_option", "task_option")


def _position(text: str) -> str | int:
    """A token position: a name (last, s2, io) or an index."""
    return int(text) if text.lstrip("-").isdigit() else text


# flag and type of each scalar option of `causalab run`; its default is the config field's own
SCALAR_OPTIONS = (
    ("--position", _position),
    ("--component", str),
    ("--intervention-size", int),
    ("--n-train", int),
    ("--n-val", int),
    ("--n-test", int),
    ("--epochs", int),
    ("--batch-size", int),
    ("--lr", float),
    ("--patience", int),
    ("--monitor", str),
    ("--warmup-steps", int),
    ("--lr-schedule", str),
    ("--val-every", int),
    ("--min-delta", float),
    ("--max-steps", int),
    ("--loss", str),
    ("--validate-on", str),
    ("--plateau-factor", float),
    ("--plateau-patience", int),
    ("--plateau-on", str),
)
# config fields without an option of their own: the grid's (options above), the tables (--target-option,
# --task-option; a partition only in a file), and the two with choices (--dtype, --device)
NOT_SCALAR = ("algorithm", "alignment", "target", "layer", "seed", "target_seed", "partition", "target_options",
              "task_options", "dtype", "device")
CONFIG_DEFAULTS = ExperimentConfig.defaults()
SCALAR_HELP = {
    "--position": "token position for language models: last, an index, or a name the task marks (IOI: s2, io)",
    "--lr-schedule": "constant (default), cosine, plateau (halved per check without improvement) or "
                     "reduce_on_plateau (PyTorch's ReduceLROnPlateau on the epoch's training loss)",
    "--val-every": "validate every N steps, patience counted in checks (default 0: once per epoch)",
    "--max-steps": "stop fitting after N steps (default: no step budget)",
    "--loss": "task (default: the task's own loss) or pair (cross-entropy between the two label tokens)",
    "--validate-on": "val (default: stop early on held-out pairs) or train (nothing held out enters the fit)",
    "--component": "what is read and patched at the layer: block_output (default); on language models also "
                   "attention_output, mlp_output, heads:3 or heads:0,5",
}


def _field(flag: str) -> str:
    return flag[2:].replace("-", "_")


def _split(values: Sequence[str]) -> list[str]:
    out: list[str] = []
    for v in values:
        out += AlignmentSpec.split(v)
    return out


def _ints(values: Sequence[str], name: str) -> list[int]:
    try:
        return [int(v) for v in _split(values)]
    except ValueError:
        raise CausalabError(f"--{name} takes integers, got {values}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="causalab", description=__doc__)
    p.add_argument("--plugin", action="append", default=[], help="import a module that registers algorithms or alignments "
                   "(found in the working folder too, as python -m finds it)")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="fit alignment maps and print an IIA table")
    run.add_argument("--algorithm", action="append", help=f"registered algorithm(s), comma-separated (default: {DEFAULT_ALGORITHMS})")
    run.add_argument("--alignment", action="append", help="alignment spec(s), e.g. rotation or rotation:rank=8; "
                     "';' separates specs with knobs (default: identity,rotation)")
    run.add_argument("--target", action="append", help="trained, random and/or oracle (default: trained,random)")
    run.add_argument("--layer", action="append", help="hidden layer(s) (default: 1)")
    run.add_argument("--seed", action="append", help="seed(s) for data, map init and the network (default: 0)")
    run.add_argument("--config", type=Path, help="a TOML run or sweep file instead of the grid options above; "
                     "options below given explicitly override the file's values")
    run.add_argument("--profile", help="with --config: a named profile of the sweep file")
    for flag, typ in SCALAR_OPTIONS:
        run.add_argument(flag, type=typ, default=None,
                         help=SCALAR_HELP.get(flag, f"(default: {CONFIG_DEFAULTS[_field(flag)]})"))
    run.add_argument("--target-option", action="append", help="key=value passed to the target builder, e.g. size=14m, arch=gpt2, step=400")
    run.add_argument("--task-option", action="append", help="key=value passed to the task, e.g. IOI's data regime: "
                     "roles=fixed, names=21, split=pool (causalab list algorithms shows each task's options)")
    run.add_argument("--dtype", choices=["float32", "float64"], default=None, help="(default: float32)")
    run.add_argument("--device", default=None, help="cpu (default) or cuda")
    _runtime_options(run)
    run.add_argument("--json", type=Path, help="also append one record per run to this results file "
                     "(JSONL, as causalab sweep writes; a run already in it is not written twice)")
    run.add_argument("--save-maps", type=Path, metavar="DIR",
                     help="save each fitted map to DIR/<config hash>.safetensors (causalab.load_alignment reads it)")

    sw = sub.add_parser("sweep", help="run a TOML sweep into an append-only results file (resumes: recorded runs are skipped)")
    sw.add_argument("file", type=Path, help="sweep file: [base], [grid] of lists, optional [profiles.NAME]")
    sw.add_argument("--profile", help="a named profile of the sweep file (overrides [base], replaces [grid] axes)")
    sw.add_argument("--executor", choices=["local", "ray"], default="local", help="local process pool (default) or Ray")
    sw.add_argument("--workers", type=int, help="local: processes (default: one per core; for runs on device cuda one "
                    "per GPU, each pinned to its own, and at most that many); ray: CPUs of a local instance")
    sw.add_argument("--address", help="ray: a running cluster: HOST:PORT as `ray start --head` prints it, auto (the one started "
                    "on this machine) or ray://HOST:10001; its token is read from RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or "
                    "~/.ray/auth_token (default: start a local instance)")
    sw.add_argument("--results", type=Path, help="results JSONL (default: the file's 'results' key, else results/NAME.jsonl)")
    sw.add_argument("--stop-on-error", action="store_true", help="stop at the first failed run (default: run the rest)")
    sw.add_argument("--dry-run", action="store_true", help="validate and list the runs to do, run nothing")
    sw.add_argument("--save-maps", type=Path, metavar="DIR",
                    help="save each run's fitted map to DIR/<hash>.safetensors (default: the file's 'save_maps' key, else none)")
    _runtime_options(sw)

    rp = sub.add_parser("report", help="tables and figures from a results file")
    rp.add_argument("results", type=Path, help="a results JSONL written by causalab sweep or run --json")
    rp.add_argument("--out", type=Path, required=True, help="folder for tables (md/txt, csv) and figures (png + numbers)")
    rp.add_argument("--by", action="append", help="group by these fields, comma-separated (default: varying config fields except seeds)")
    rp.add_argument("--format", choices=["markdown", "plain"], default="markdown")
    rp.add_argument("--progression", help="config field that orders a training progression (e.g. target_options.samples)")

    dl = sub.add_parser("dilemma", help="the non-linear representation dilemma: trained vs random networks, linear vs non-linear maps")
    dl.add_argument("--profile", default="quick", help="quick (minutes, the default) or full (the paper's sizes; for a cluster)")
    dl.add_argument("--out", type=Path, default=Path("results/dilemma"),
                    help="folder for results, tables and figures (default: results/dilemma)")
    dl.add_argument("--experiment", action="append", help=f"only these experiments ({', '.join(e.name for e in EXPERIMENTS)})")
    dl.add_argument("--executor", choices=["local", "ray"], default="local")
    dl.add_argument("--workers", type=int, help="local processes (default: one per core; one per GPU for device cuda)")
    dl.add_argument("--address", help="ray: a running cluster (HOST:PORT, auto or ray://HOST:10001; as for sweep)")
    _runtime_options(dl)

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
            options = ", ".join(f"{k}={p.default}" for k, p in task_options_of(name).items())
            if options:
                print(f"{'':32s} task options: {options}")
    else:
        for name in ALIGNMENTS.names():
            cls = ALIGNMENTS.get(name)
            knobs = ", ".join(f"{k}={p.default}" for k, p in knobs_of(cls).items())
            print(f"{name:16s} knobs: {knobs or '(none)':40s} {_first_line(cls)}")
    return 0


def _fmt(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.3f}"


def _overrides(args: argparse.Namespace) -> dict:
    """Scalar options given explicitly on the command line, as config fields."""
    names = [_field(flag) for flag, _ in SCALAR_OPTIONS] + ["dtype", "device"]
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


def _key_values(items: Sequence[str], flag: str) -> dict:
    """``["size=14m", "step=400"]`` -> ``{"size": "14m", "step": 400}`` (``true``/``false`` as booleans)."""
    out: dict = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise CausalabError(f"{flag} takes key=value, got {item!r}")
        value = value.strip()
        out[key.strip()] = (int(value) if value.lstrip("-").isdigit() else
                            {"true": True, "false": False}.get(value.lower(), value))
    return out


def _grid_configs(args: argparse.Namespace) -> list[ExperimentConfig]:
    """The command line's grid, expanded as a sweep file's is: each seed seeds both the network and the fit."""
    base = _overrides(args)  # the rest keep the config's defaults
    if args.target_option:
        base["target_options"] = _key_values(args.target_option, "--target-option")
    if args.task_option:
        base["task_options"] = _key_values(args.task_option, "--task-option")
    grid = {"algorithm": _split(args.algorithm or [DEFAULT_ALGORITHMS]), "target": _split(args.target or ["trained", "random"]),
            "layer": _ints(args.layer or ["1"], "layer"), "alignment": _split(args.alignment or ["identity", "rotation"]),
            "seed, target_seed": [[s, s] for s in _ints(args.seed or ["0"], "seed")]}
    return expand_grid(base, grid)


def _file_configs(args: argparse.Namespace) -> list[ExperimentConfig]:
    given = [f"--{g}" for g in GRID_OPTIONS if getattr(args, g)]
    if given:
        raise CausalabError(f"--config cannot be combined with {', '.join(given)}; put them in the file's [grid]")
    spec = load_sweep(args.config, args.profile)
    spec.base.update(_overrides(args))
    return spec.configs()


def _runtime_options(parser: argparse.ArgumentParser) -> None:
    """The runtime settings as options of a command (each run, worker or process reads them once)."""
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per process (default: $CAUSALAB_THREADS, else 1)")
    parser.add_argument("--kv-cache-mb", type=float, default=None, metavar="MIB",
                        help="an LM's per-dataset key/value cache budget in MiB, 0 for none "
                             "(default: $CAUSALAB_KV_CACHE_MB, else 4096)")
    parser.add_argument("--kv-cache-dtype", default=None, metavar="DTYPE",
                        help=f"the key/value cache's storage dtype: {', '.join(KV_CACHE_DTYPES)} "
                             "(default: $CAUSALAB_KV_CACHE_DTYPE, else float32)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="torch.compile an LM's resumed blocks (default: $CAUSALAB_COMPILE=1, else off)")


def _workers_runtime(args: argparse.Namespace) -> RuntimeSettings:
    """Settings for a command that starts worker processes: checked here, then handed to the workers
    through the environment they inherit (one way to set them, as a user's own variables are)."""
    runtime = _runtime(args)
    os.environ.update(runtime.to_env())
    use_threads(runtime.threads)
    return runtime


def _runtime(args: argparse.Namespace) -> RuntimeSettings:
    """The runtime settings of this command: its options where given, else the environment's, else the defaults."""
    return RuntimeSettings.from_env(threads=args.threads, kv_cache_mb=args.kv_cache_mb,
                                    kv_cache_dtype=args.kv_cache_dtype, compile=args.compile)


def cmd_run(args: argparse.Namespace) -> int:
    runtime = _runtime(args)
    use_threads(runtime.threads)
    if args.profile and not args.config:
        raise CausalabError("--profile needs --config FILE.toml")
    configs = _file_configs(args) if args.config else _grid_configs(args)
    validate_all(configs)  # every name, site and block checked before any work starts
    maps = map_folder(args.save_maps) if args.save_maps is not None else None

    store = ResultStore(args.json) if args.json else None
    rows, written, outside = [], 0, []
    start = time.perf_counter()
    bar = RunProgress(len(configs), "runs")
    for cfg in configs:
        with listen(StepLines(bar.write)):
            res = run_experiment(cfg, validated=True, save_map=maps, runtime=runtime)  # validate_all above
        bar.advance(f"{cfg.algorithm} {cfg.target} {cfg.alignment} L{cfg.layer} s{cfg.seed} iia={res.test.iia:.3f}")
        if store is not None:  # each record as its run finishes: an interrupted run keeps the finished ones
            written += store.append(res.to_record(), unique=True)
        lo, hi = res.test.overall.interval
        per = " ".join(f"{k}={_fmt(s.accuracy)}" for k, s in res.test.per_set.items())
        mark = f" {CHANCE_MARK}" if at_chance(lo, hi, res.chance) else ""
        rows.append([cfg.algorithm, cfg.target, str(cfg.layer), cfg.alignment, str(cfg.seed), str(res.num_parameters),
                     _fmt(res.test.iia) + mark, f"[{_fmt(lo)}, {_fmt(hi)}]", _fmt(res.chance), _fmt(res.network_accuracy),
                     per])
        if res.outside is not None:  # a constructed map: its IIA on the construction set says nothing by itself
            outside.append(f"{cfg.alignment} on {cfg.target} L{cfg.layer} s{cfg.seed}: IIA {_fmt(res.outside.iia)} on "
                           f"{res.outside.overall.n} pairs outside its construction set")
    bar.close()
    header = ["algorithm", "target", "layer", "alignment", "seed", "params", "IIA", "95% CI", "chance", "network acc",
              "per variable set"]
    print(with_chance_note(format_table(header, rows, fmt="plain"), rows, fmt="plain"), end="")
    test_sizes = sorted({c.n_test for c in configs})
    for line in outside:
        print(line)
    print(f"\n{len(rows)} runs in {time.perf_counter() - start:.1f}s; test pairs per run: {', '.join(map(str, test_sizes))}")
    if store is not None:
        kept = len(rows) - written
        print(f"{written} records appended to {args.json}" + (f" ({kept} already there)" if kept else ""))
    if maps is not None:
        print(f"fitted maps saved in {maps} (one <config hash>.safetensors per run; the records name them)")
    return 0


def _note(event) -> str:
    """Which run a sweep event is about, and its IIA."""
    cfg = event.config
    score = f"iia={event.record['iia']:.3f}" if event.record is not None else "failed"
    return f"{cfg.algorithm} {cfg.alignment} {cfg.target} L{cfg.layer} s{cfg.seed} {score}"



def cmd_sweep(args: argparse.Namespace) -> int:
    from causalab.experiments.sweep import SweepEvent, run_sweep

    _workers_runtime(args)  # checked here, before any worker: the workers read them
    if args.address and args.executor != "ray":
        raise CausalabError("--address is for --executor ray")
    spec = load_sweep(args.file, args.profile)
    configs = spec.configs()
    results = args.results or spec.results or Path("results") / f"{spec.name}.jsonl"
    store = ResultStore(results)
    if store.partial_line():
        print(f"note: {results} ends in a record cut short (a run interrupted mid-write); it is dropped and that run "
              "is done again", file=sys.stderr)
    maps = args.save_maps or spec.save_maps
    if args.dry_run:
        validate_all(configs)
        done = store.hashes()
        todo = [c for c in configs if c.hash() not in done]
        for c in todo:
            print(f"{c.hash()}  {c.algorithm} {c.target} L{c.layer} {c.alignment} seed={c.seed}")
        print(f"{len(configs)} runs in the sweep, {len(configs) - len(todo)} already in {results}, {len(todo)} to run")
        return 0
    bar = None

    def progress(event: SweepEvent) -> None:
        nonlocal bar
        if event.kind == "start":
            if event.note:
                print(f"note: {event.note}", file=sys.stderr)
            bar = RunProgress(event.total, spec.name or "sweep")
            if event.skipped:
                bar.write(f"{event.skipped} run(s) already in {results}; skipping them")
            return
        if event.kind == "failed":
            bar.write(f"run {event.config.hash()} failed: {event.error}")
        bar.advance(_note(event))

    try:
        with listen(StepLines()):
            summary = run_sweep(configs, store, executor=args.executor, workers=args.workers, address=args.address,
                                progress=progress, plugins=args.plugin, stop_on_error=args.stop_on_error,
                                save_maps=maps)
    except KeyboardInterrupt as exc:  # Ctrl-C, kill, a closed terminal: the workers are stopped, the file let go of
        if bar is not None:
            bar.close()
            bar = None
        recorded = len({c.hash() for c in configs} & store.hashes())
        return _stopped(exc, f"{recorded} of {len({c.hash() for c in configs})} runs are recorded in {results}; "
                             "run the same command again to resume (recorded runs are skipped)")
    finally:
        if bar is not None:
            bar.close()
    print(f"{summary.total} runs in the sweep: {summary.skipped} already recorded, {len(summary.records)} ran, "
          f"{len(summary.failed)} failed ({summary.seconds:.1f}s); results in {results}"
          + (f", fitted maps in {maps}" if maps is not None else ""))
    for cfg, error in summary.failed:
        print(f"  failed {cfg.hash()} ({cfg.algorithm} {cfg.target} L{cfg.layer} {cfg.alignment} seed={cfg.seed}): {error}")
    print(f"report: causalab report {results} --out {Path(results).with_suffix('')}-report")
    return 1 if summary.failed else 0


def cmd_dilemma(args: argparse.Namespace) -> int:
    from causalab.dilemma import run_dilemma

    _workers_runtime(args)  # checked here, before any run: each run and worker reads them
    bars: dict[str, RunProgress] = {}

    def progress(experiment: str, event) -> None:
        if event.kind == "start":
            bars[experiment] = RunProgress(event.total, experiment)
            return
        bar = bars.get(experiment)
        if bar is not None:
            if event.kind == "failed":
                bar.write(f"run {event.config.hash()} failed: {event.error}")
            bar.advance(_note(event))

    try:
        with listen(StepLines()):
            summary = run_dilemma(args.profile, args.out, workers=args.workers, executor=args.executor,
                                  progress=progress, address=args.address,
                                  experiments=_split(args.experiment) if args.experiment else None)
    finally:
        for bar in bars.values():
            bar.close()
    print(summary.table)
    for name, reason in summary.skipped.items():
        print(f"skipped {name}: {reason}")
    print(f"\n{summary.runs} runs in {summary.seconds:.0f}s ({summary.recorded} already recorded); results:")
    for name, path in summary.results.items():
        print(f"  {name}: {path}")
    for name, path in summary.figures.items():
        print(f"  figure {name}: {path}")
    return 1 if summary.failed else 0


def cmd_report(args: argparse.Namespace) -> int:
    from causalab.experiments.report import write_report

    by = _split(args.by) if args.by else None
    if ResultStore(args.results).partial_line():
        print(f"note: {args.results} ends in a record cut short (a run interrupted mid-write); it is left out",
              file=sys.stderr)
    files = write_report(args.results, args.out, by=by, fmt=args.format, progression=args.progression)
    print(files["summary"].read_text(), end="")
    if "layers" in files:
        print()
        print(files["layers"].read_text(), end="")
    print(f"\nwritten to {args.out}: {', '.join(sorted(p.name for p in files.values()))}")
    return 0


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread as Ctrl-C is, so that a sweep stops its workers and lets go
    of its results file before the process ends."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into :class:`Stopped` while the command runs (main thread only; a signal the
    process was started ignoring, as ``nohup`` ignores SIGHUP, stays ignored)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame) -> None:
        raise Stopped(signum)

    previous = {}
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) is not signal.SIG_IGN:  # under nohup, SIGHUP stays ignored
            previous[sig] = signal.signal(sig, stop)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stopped(exc: KeyboardInterrupt, what_next: str = "") -> int:
    """One line for a command stopped by a signal (no traceback); the shell's exit status for it."""
    signum = exc.signum if isinstance(exc, Stopped) else signal.SIGINT
    print(f"causalab: stopped by {signal.Signals(signum).name}" + (f"; {what_next}" if what_next else ""),
          file=sys.stderr)
    return 128 + int(signum)


def _working_folder_on_path() -> None:
    """Let ``--plugin NAME`` find a module in the working folder, as ``python -m`` does.

    A console script's ``sys.path[0]`` is the folder of the script (the environment's
    ``bin``), not the working folder, so ``causalab --plugin mymodule`` would otherwise need
    ``PYTHONPATH=.``. The folder goes first, as ``python -m`` puts it; sweep workers inherit it.
    """
    cwd = os.getcwd()
    if not any(os.path.abspath(entry or os.curdir) == cwd for entry in sys.path):
        sys.path.insert(0, cwd)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    with _stop_on_signals():
        try:
            if args.plugin:
                _working_folder_on_path()
            for module in args.plugin:
                import_plugin(module)
            if args.command == "list":
                return cmd_list(args.what)
            if args.command == "sweep":
                return cmd_sweep(args)
            if args.command == "report":
                return cmd_report(args)
            if args.command == "dilemma":
                return cmd_dilemma(args)
            return cmd_run(args)
        except CausalabError as exc:
            print(f"causalab: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as exc:
            resume = {"dilemma": "run the same command again to resume (recorded runs are skipped)",
                      "run": f"the finished runs are recorded in {args.json}" if getattr(args, "json", None) else ""}
            return _stopped(exc, resume.get(args.command, ""))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
