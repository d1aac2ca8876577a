"""The non-linear representation dilemma (Sutter et al. 2025), reproduced from sweep files.

Each experiment of the paper is one sweep file in ``causalab/dilemma/sweeps/`` (installed with the
package; ``benchmarks/dilemma/`` links to them) with a
``quick`` and a ``full`` profile, run by :func:`~causalab.experiments.sweep.run_sweep`
into its own append-only results file (so a rerun resumes), then reported:

- ``mlp_maps``: IIA against the alignment map's parameter count, trained vs random MLPs;
- ``progression``: IIA across the MLP's training (checkpoint 0 is the initialisation);
- ``hidden_size``: one RevNet block, hidden size 1..16 (full profile only);
- ``mlp_seeds``: trained vs random MLP at the paper's data sizes, layer 1, rotation and
  RevNets, 3 seeds, epochs capped at 25 (full profile only; about 45 minutes on 2 cores);
- ``hidden_size_seeds``, ``memorisation``, ``one_variable_seeds``, ``distributive_seeds``,
  ``progression_seeds``: the rest of the paper's MLP results at its data sizes, 3 seeds
  (full profile only; costs in ``docs/dilemma.md``, results in ``docs/reproduce/``);
- ``ioi_progression``, ``ioi_sizes``: IOI on a small LM across its training and on
  random Pythia-like sizes (full profile only; skipped with a reason when the IOI
  task or LM targets are unavailable);
- ``ioi_scale``: IOI on random Pythia-initialised LMs, shared vs disjoint names, rotation
  vs RevNets, with warmup and a plateau schedule (quick: the 2-layer IOI LM trained here vs random LMs; full:
  the 31m-like model on 20k distinct pairs, six fits of 5-11 minutes on one core; optional as above);
- ``ioi_steps``: IOI with the paper's fitting budget (up to ~15k steps, 20k-1M distinct
  pairs) on the random 14m-, 31m- and 70m-like models and the 4-layer IOI LM trained here
  (full profile only, seventeen fits of 7 minutes to 2 hours on one core; optional as above);
- ``ioi_one_pattern``: IOI over sentences of one pattern (every counterfactual the base's own
  answer), shared vs disjoint names, the two-name vs the full-vocabulary loss: what a RevNet
  learns on a random LM without reading word order (full profile only, eight fits of a few
  minutes; optional as above);
- ``ioi_regime``: IOI under the paper's data regime (each name keeps one role) and its constant
  rate, where the random-LM alignment appears after a long plateau: fixed vs random roles,
  shared vs disjoint names, rotation vs RevNet (quick: the smallest fit that passes the
  plateau; full: the 14m- and 31m-like models, seeds, the paper's site; optional as above);
- ``scores``: selectivity, out-of-distribution IIA, complexity frontier and sample
  efficiency for ``mlp_maps``, ``ioi_progression`` and ``ioi_scale`` (:mod:`~causalab.dilemma.scores`).

:func:`run_dilemma` returns a :class:`DilemmaSummary` with the markdown table, the
paths of the results files, figures and tables, and the wall time.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from causalab.dilemma.figures import headline_figure, headline_numbers
from causalab.dilemma.scores import write_scores
from causalab.errors import CausalabError, ConfigError
from causalab.experiments.config import ExperimentConfig, read_toml
from causalab.experiments.figures import complexity_figure, progression_figure
from causalab.experiments.grid import load_sweep
from causalab.experiments.report import layer_table, summary_table
from causalab.experiments.store import ResultStore
from causalab.experiments.summary import flatten, summarize, write_csv
from causalab.experiments.sweep import SweepEvent, run_sweep
from causalab.experiments.validate import validate_all

PROFILES = ("quick", "full")  # a hidden "smoke" profile exists for the tests


@dataclass(frozen=True)
class Experiment:
    """One sweep file and how to report it."""

    name: str  # the file's stem in the configs folder
    by: tuple[str, ...]  # table grouping
    progression: str | None = None  # the training-progress field, for a progression figure
    complexity: bool = False  # an IIA-against-parameters figure
    optional: bool = False  # skipped with a reason (not an error) when its configs cannot be built here


EXPERIMENTS: tuple[Experiment, ...] = (
    Experiment("mlp_maps", ("algorithm", "layer", "target", "alignment"), complexity=True),
    Experiment("progression", ("algorithm", "layer", "alignment", "target_options.checkpoint"),
               progression="target_options.checkpoint"),
    Experiment("hidden_size", ("algorithm", "layer", "target", "alignment"), complexity=True),
    Experiment("mlp_seeds", ("algorithm", "layer", "target", "alignment"), complexity=True),
    Experiment("hidden_size_seeds", ("algorithm", "layer", "target", "alignment"), complexity=True),
    Experiment("memorisation", ("algorithm", "layer", "alignment", "n_train")),
    Experiment("one_variable_seeds", ("algorithm", "layer", "target", "alignment")),
    Experiment("distributive_seeds", ("algorithm", "layer", "target", "alignment")),
    Experiment("progression_seeds", ("algorithm", "layer", "alignment", "target_options.checkpoint"),
               progression="target_options.checkpoint"),
    Experiment("ioi_progression", ("layer", "alignment", "target_options.step"), progression="target_options.step",
               optional=True),
    Experiment("ioi_sizes", ("layer", "target_options.size", "alignment"), optional=True),
    Experiment("ioi_scale", ("algorithm", "target_options.size", "layer", "alignment", "n_train"), optional=True),
    Experiment("ioi_steps", ("algorithm", "target", "target_options.size", "layer", "alignment", "n_train"),
               optional=True),
    Experiment("ioi_one_pattern", ("algorithm", "loss", "layer", "alignment", "seed"), optional=True),
    Experiment("ioi_regime", ("task_options.roles", "task_options.names", "task_options.split", "target",
                              "target_options.size", "layer", "alignment", "lr_schedule"), optional=True),
)


@dataclass
class DilemmaSummary:
    """What a dilemma run produced: the table text, where everything was written, how long it took."""

    profile: str
    out_dir: Path
    table: str = ""  # markdown, one section per experiment that has records
    results: dict[str, Path] = field(default_factory=dict)  # experiment -> results file (JSONL)
    figures: dict[str, Path] = field(default_factory=dict)  # name -> PNG
    files: dict[str, Path] = field(default_factory=dict)  # tables and the numbers beside the figures
    runs: int = 0  # runs executed this time
    recorded: int = 0  # runs already in the results files (resumed)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (config hash, error)
    skipped: dict[str, str] = field(default_factory=dict)  # experiment -> reason
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile, "out_dir": str(self.out_dir), "table": self.table,
            "results": {k: str(v) for k, v in self.results.items()},
            "figures": {k: str(v) for k, v in self.figures.items()},
            "files": {k: str(v) for k, v in self.files.items()},
            "runs": self.runs, "recorded": self.recorded, "failed": self.failed, "skipped": self.skipped,
            "seconds": self.seconds,
        }


def configs_dir() -> Path:
    """The sweep files installed with this package (``causalab/dilemma/sweeps``)."""
    return Path(__file__).resolve().parent / "sweeps"


def load_profile(
    profile: str, folder: str | os.PathLike | None = None, experiments: Sequence[str] | None = None
) -> tuple[dict[str, list[ExperimentConfig]], dict[str, str]]:
    """The profile's configs per experiment, every one validated before any work; and the skipped experiments.

    A file without the profile is skipped; so is an optional experiment (IOI) whose
    configs cannot be built here. Any other invalid config raises, naming the field.
    """
    if profile not in (*PROFILES, "smoke"):
        raise ConfigError(f"unknown dilemma profile {profile!r}; valid: {', '.join(PROFILES)}")
    folder = Path(folder) if folder is not None else configs_dir()
    if not folder.is_dir():
        raise ConfigError(f"the dilemma sweep files are not at {folder}; pass configs_dir, a folder of sweep files")
    known = {e.name: e for e in EXPERIMENTS}
    names = list(experiments) if experiments is not None else list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"unknown dilemma experiment(s) {unknown}; valid: {', '.join(known)}")
    configs: dict[str, list[ExperimentConfig]] = {}
    skipped: dict[str, str] = {}
    for name in names:
        path = folder / f"{name}.toml"
        if profile not in read_toml(path).get("profiles", {}):
            skipped[name] = f"{path.name} has no {profile!r} profile"
            continue
        try:
            cfgs = load_sweep(path, profile).configs()
            validate_all(cfgs)
        except (CausalabError, ImportError) as exc:
            if not known[name].optional:
                raise
            skipped[name] = f"cannot be built here ({type(exc).__name__}: {exc})"
            continue
        configs[name] = cfgs
    return configs, skipped


def run_dilemma(
    profile: str = "quick",
    out_dir: str | os.PathLike = "results/dilemma",
    workers: int | None = None,
    executor: str = "local",
    progress: Callable[[str, SweepEvent], None] | None = None,
    *,
    address: str | None = None,
    configs_dir: str | os.PathLike | None = None,
    experiments: Sequence[str] | None = None,
    scores: bool = True,
) -> DilemmaSummary:
    """Run the profile's experiments (resuming what ``out_dir`` already holds) and write figures and tables.

    ``out_dir/<experiment>/results.jsonl`` holds each experiment's records; figures
    (PNG, with CSV/JSON of their numbers) and tables (markdown, CSV) go beside it, and
    the headline figure and the combined table in ``out_dir`` itself. ``progress``
    receives the experiment's name and each :class:`SweepEvent`. With ``scores``, the
    generalisation-aware scores of the MLP and IOI experiments follow the IIA tables
    (:mod:`~causalab.dilemma.scores`; cached in ``out_dir/scores``).
    """
    start = time.perf_counter()
    out = Path(out_dir)
    plan, skipped = load_profile(profile, configs_dir, experiments)
    summary = DilemmaSummary(profile, out, skipped=skipped)
    records: dict[str, list[dict[str, Any]]] = {}
    for name, cfgs in plan.items():
        folder = out / name
        store = ResultStore(folder / "results.jsonl")
        summary.results[name] = store.path
        done = run_sweep(cfgs, store, executor=executor, workers=workers, address=address,
                         progress=(lambda ev, n=name: progress(n, ev)) if progress is not None else None)
        summary.runs += len(done.records) + len(done.failed)
        summary.recorded += done.skipped
        summary.failed += [(cfg.hash(), error) for cfg, error in done.failed]
        wanted = {c.hash() for c in cfgs}
        records[name] = [r for r in store.records() if r["hash"] in wanted]  # this profile's runs only
    sections = []
    for exp in EXPERIMENTS:
        recs = records.get(exp.name)
        if recs:
            sections.append(_report(exp, recs, out / exp.name, summary))
    summary.figures.update(headline_figure(records.get("mlp_maps", []), records.get("progression", []), out / "dilemma",
                                           ioi=records.get("ioi_regime") or records.get("ioi_scale", [])))
    summary.files.update({k: v for k, v in headline_numbers(out / "dilemma").items() if v.exists()})
    if scores:
        report = write_scores(records, summary.skipped, profile, out / "scores")
        sections.append(report.text)
        summary.figures.update(report.figures)
        summary.files.update(report.files)
    summary.table = "\n".join(sections)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tables.md").write_text(summary.table)
    summary.files["tables"] = out / "tables.md"
    summary.seconds = time.perf_counter() - start
    (out / "summary.json").write_text(json.dumps(summary.to_dict(), indent=1))
    return summary


def _report(exp: Experiment, records: list[dict[str, Any]], folder: Path, summary: DilemmaSummary) -> str:
    """Tables (all runs; per layer) and figures (one per algorithm and layer) of one experiment."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [flatten(r) for r in records]
    by = [b for b in exp.by if any(b in r for r in rows)]
    text = summary_table(records, by=by)
    (folder / "summary.md").write_text(text)
    summary.files[f"{exp.name}/summary"] = folder / "summary.md"
    summary.files[f"{exp.name}/summary_csv"] = write_csv(folder / "summary.csv", [s.to_dict() for s in summarize(records, by)])
    if len({r.get("layer") for r in rows}) > 1:
        (folder / "layers.md").write_text(layer_table(records))
        summary.files[f"{exp.name}/layers"] = folder / "layers.md"
    for layer in sorted({r.get("layer") for r in rows}):
        subset = [rec for rec, row in zip(records, rows) if row.get("layer") == layer]
        made: dict[str, Path] = {}
        if exp.complexity:
            made.update(complexity_figure(subset, folder / f"iia_vs_params_layer{layer}"))
        if exp.progression is not None:
            made.update(progression_figure(subset, folder / f"iia_vs_training_layer{layer}", field=exp.progression))
        for key, path in made.items():
            (summary.figures if path.suffix == ".png" else summary.files)[f"{exp.name}/{key}"] = path
    return f"### {exp.name}\n\n{text}"
