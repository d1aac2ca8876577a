"""The dilemma benchmark's generalisation-aware scores (``docs/scores.md``), from its records plus a few cheap fits.

Each scored experiment pairs a *real* network with its *controls* of the same
architecture: ``mlp_maps`` the trained MLP with the random-init MLPs,
``ioi_progression`` the LM's last training step with its initialisation (step 0),
``ioi_scale`` the IOI LM trained here with random LMs of its shape, ``ioi_steps`` and ``ioi_regime`` the
4-layer IOI LM trained here with its initialisation (step 0).
From the sweep's records alone, per map: IIA on both, selectivity against the
control networks (Newcombe interval from the recorded counts; controls pooled over
seeds) and the complexity frontier (the smallest map reaching the threshold on each);
where the sweep also ran the task with disjoint names (``ioi_scale``), the
disjoint-names IIA of both networks and the shared - disjoint gap on the real one.
Random networks are never re-fitted here: their fits need the sweep's own budget.

What the records cannot give is measured on the real network with small fits
(:class:`ScorePlan`, per profile) and cached in ``scores/measurements.jsonl`` so a
rerun resumes: selectivity against a control algorithm, out-of-distribution IIA
(the task's own split; IOI's disjoint names) and sample efficiency.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from causalab.dilemma.figures import scores_figure
from causalab.errors import CausalabError
from causalab.experiments.build import build_run
from causalab.experiments.config import ExperimentConfig, stable_hash
from causalab.experiments.report import format_table
from causalab.experiments.store import ResultStore
from causalab.experiments.summary import write_csv
from causalab.fit.fitting import FitResult
from causalab.fit.measure import Measurement, MeasureSettings
from causalab.fit.metrics import IIAResult, Score
from causalab.scores import (
    Difference,
    Frontier,
    FrontierComparison,
    control_algorithm_selectivity,
    ood_iia,
    sample_efficiency,
    selectivity,
)


@dataclass(frozen=True)
class ScorePlan:
    """The extra fits of a profile's scores step (all on the real network)."""

    probe: dict[str, Any]  # MeasureSettings fields for the control-algorithm and OOD fits
    specs: tuple[str, ...] | None  # maps for those fits; None: every map of the sweep
    efficiency_specs: tuple[str, ...]  # maps for the sample-efficiency curves (none: no curve)
    efficiency_sizes: tuple[int, ...] = ()
    efficiency_probe: dict[str, Any] = field(default_factory=dict)
    control_seeds: tuple[int, ...] = (0,)
    threshold: float = 0.9
    every_group: bool = False  # every (algorithm, layer) of the records; else only the first


_MEMORISE = {"validate_on": "train", "epochs": 50, "patience": 5, "lr": 1e-2}
PLANS: dict[str, ScorePlan] = {
    "smoke": ScorePlan({"n_train": 128, "n_val": 64, "n_test": 256, "epochs": 1}, ("rotation",), ("rotation",), (32, 128),
                       {"n_val": 64, "n_test": 256, "epochs": 2, "patience": 1, "validate_on": "train"}),
    "quick": ScorePlan({"n_train": 2_000, "n_val": 500, "n_test": 2_000, "epochs": 10}, None,
                       ("rotation", "revnet:blocks=10,hidden=16"), (50, 200, 1_000, 4_000),
                       {"n_val": 500, "n_test": 2_000, **_MEMORISE}, control_seeds=(0, 1)),
    "full": ScorePlan({"n_train": 20_000, "n_val": 2_000, "n_test": 10_000, "epochs": 20}, None,
                      ("rotation", "revnet:blocks=10,hidden=16"), (50, 200, 1_000, 5_000, 20_000),
                      {"n_val": 2_000, "n_test": 10_000, **_MEMORISE}, control_seeds=(0, 1, 2), every_group=True),
}


@dataclass(frozen=True)
class Source:
    """How one experiment's records split into the real network and its controls."""

    experiment: str
    real_label: str
    control_label: str
    split: Callable[[list[dict[str, Any]]], tuple[list[dict[str, Any]], list[dict[str, Any]]]]
    ood_task: str | None = None  # a task whose split holds inputs apart (None: the records' own task)
    control_algorithm: bool = True
    efficiency: bool = True
    disjoint_algorithm: str | None = None  # recorded runs of this algorithm give the disjoint-names IIA (no OOD fit)
    ood: bool = True  # an out-of-distribution fit where no disjoint-names runs were recorded


def _by_target(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return ([r for r in records if r["config"]["target"] == "trained"],
            [r for r in records if r["config"]["target"] == "random"])


def _by_step(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    steps = [r["config"]["target_options"].get("step") for r in records]
    last = max((s for s in steps if s is not None), default=None)
    if not last:
        return [], []
    return ([r for r, s in zip(records, steps) if s == last], [r for r, s in zip(records, steps) if s == 0])


def _trained_by_step(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The trained LM's final weights (no ``step``, or ``"final"``) against its initialisation (``step`` 0);
    random LMs left out."""
    trained = [r for r in records if r["config"]["target"] == "trained"]
    steps = [r["config"]["target_options"].get("step") for r in trained]
    return [r for r, s in zip(trained, steps) if s in (None, "final")], [r for r, s in zip(trained, steps) if s == 0]


SOURCES: tuple[Source, ...] = (
    Source("mlp_maps", "trained MLP", "random MLP", _by_target),
    Source("ioi_progression", "IOI LM, last step", "IOI LM, step 0", _by_step, ood_task="ioi_pattern_disjoint",
           control_algorithm=False, efficiency=False),
    Source("ioi_scale", "trained IOI LM", "random LM", _by_target, control_algorithm=False, efficiency=False,
           disjoint_algorithm="ioi_pattern_disjoint"),
    Source("ioi_steps", "IOI LM trained here", "its step 0", _trained_by_step, control_algorithm=False, efficiency=False,
           disjoint_algorithm="ioi_pattern_disjoint"),
    # under the paper's data regime (task_options); records only: its disjoint-name and other controls are
    # benchmarks/ioi_controls.py's, scored on the saved maps
    Source("ioi_regime", "IOI LM trained here", "its step 0", _trained_by_step, control_algorithm=False,
           efficiency=False, ood=False),
)


def record_measurement(records: Sequence[dict[str, Any]]) -> Measurement:
    """One measurement from the records of one map (several seeds: counts summed), for the scores library."""

    def score(d: dict[str, Any]) -> Score:
        return Score(round(d["iia"] * d["n"]), d["n"])

    def total(scores: list[Score]) -> Score:
        return Score(sum(s.correct for s in scores), sum(s.n for s in scores))

    overall = total([score(r["test"]["overall"]) for r in records])
    sets = dict.fromkeys(k for r in records for k in r["test"].get("per_set", {}))
    per_set = {k: total([score(r["test"]["per_set"][k]) for r in records if k in r["test"]["per_set"]]) for k in sets}
    train = total([score({"iia": r["train_iia"], "n": r["config"]["n_train"]}) for r in records])
    fit = FitResult(best_val_iia=records[0].get("best_val_iia", math.nan), epochs_run=records[0].get("epochs_run", 0),
                    steps=records[0].get("steps", 0), stopped_early=False)
    return Measurement(spec=records[0]["config"]["alignment"], num_parameters=records[0]["num_parameters"],
                       train=IIAResult(train), test=IIAResult(overall, per_set), fit=fit)


@dataclass
class Group:
    """One (experiment, algorithm, layer): per-map selectivity against control networks, and the frontier."""

    source: Source
    algorithm: str
    layer: int
    config: ExperimentConfig  # the first real run's: which network the extra fits use
    maps: dict[str, dict[str, Any]]  # spec -> real / controls measurements and the selectivity
    frontier: FrontierComparison
    extras: dict[str, Any] = field(default_factory=dict)  # kind -> spec -> result dict (or "error")


def record_groups(source: Source, records: list[dict[str, Any]], threshold: float) -> list[Group]:
    """Scores from the records alone, per (algorithm, layer) with both real and control runs."""
    real_all, control_all = source.split(records)
    groups = []
    keys = dict.fromkeys((r["config"]["algorithm"], r["config"]["layer"]) for r in real_all
                         if r["config"]["algorithm"] != source.disjoint_algorithm)
    for alg, layer in keys:
        def mine(rs, algorithm=alg, layer=layer):
            return [r for r in rs if (r["config"]["algorithm"], r["config"]["layer"]) == (algorithm, layer)]

        real, control = mine(real_all), mine(control_all)
        disjoint = (mine(real_all, source.disjoint_algorithm), mine(control_all, source.disjoint_algorithm))
        maps: dict[str, dict[str, Any]] = {}
        for spec in dict.fromkeys(r["config"]["alignment"] for r in real):
            ours = [r for r in real if r["config"]["alignment"] == spec]
            theirs = [r for r in control if r["config"]["alignment"] == spec]
            if not theirs:
                continue
            controls = {s: record_measurement([r for r in theirs if r["config"]["target_seed"] == s])
                        for s in dict.fromkeys(r["config"]["target_seed"] for r in theirs)}  # seed -> measurement
            maps[spec] = {"real": record_measurement(ours), "controls": controls,
                          "selectivity": selectivity(record_measurement(ours), list(controls.values()),
                                                     kind="random_network")}
            apart = [[r for r in side if r["config"]["alignment"] == spec] for side in disjoint]
            if all(apart):  # disjoint names on both networks
                maps[spec]["disjoint"] = {"real": record_measurement(apart[0]), "control": record_measurement(apart[1])}
        if not maps:
            continue
        controls_by_seed: dict[int, list[Measurement]] = {}
        for m in maps.values():
            for seed, c in m["controls"].items():
                controls_by_seed.setdefault(seed, []).append(c)
        frontier = FrontierComparison(
            Frontier(source.real_label, [m["real"] for m in maps.values()]),
            [Frontier(f"{source.control_label} (seed {s})", ms) for s, ms in controls_by_seed.items()],
            threshold,
        )
        groups.append(Group(source, alg, layer, ExperimentConfig.from_dict(real[0]["config"]), maps, frontier))
    return groups


def _key(kind: str, group: Group, spec: str, settings: dict[str, Any]) -> dict[str, Any]:
    c = group.config
    return {"kind": kind, "algorithm": c.algorithm, "layer": c.layer, "position": c.position, "target": c.target,
            "target_seed": c.target_seed, "target_options": c.target_options, "spec": spec, **settings,
            **({"task_options": c.task_options} if c.task_options else {})}  # set only where a run has them


def measure_extras(group: Group, plan: ScorePlan, store: ResultStore) -> None:
    """The fits the records lack, on the group's real network; cached in ``store`` by what they measure."""
    c = group.config
    specs = [s for s in (plan.specs or group.maps) if s in group.maps]
    probe = {"intervention_size": c.intervention_size, "seed": c.seed, **plan.probe}
    jobs: list[tuple[str, str, dict[str, Any]]] = []
    if group.source.control_algorithm:
        jobs += [("control_algorithm", s, {"probe": probe, "control_seeds": list(plan.control_seeds)}) for s in specs]
    if group.source.disjoint_algorithm is None and group.source.ood:
        jobs += [("ood", s, {"probe": probe, "ood_task": group.source.ood_task}) for s in specs]
    if group.source.efficiency:
        eff = {"intervention_size": c.intervention_size, "seed": c.seed, **plan.efficiency_probe}
        jobs += [("sample_efficiency", s, {"probe": eff, "sizes": list(plan.efficiency_sizes)})
                 for s in plan.efficiency_specs]
    cached = {r["hash"]: r for r in store.records()}
    built: dict[str, Any] = {}
    for kind, spec, settings in jobs:
        key = _key(kind, group, spec, settings)
        h = stable_hash(key)
        if h not in cached:
            try:
                result = _measure(kind, spec, settings, c, built)
            except (CausalabError, ImportError) as exc:
                group.extras.setdefault(kind, {})[spec] = {"error": f"{type(exc).__name__}: {exc}"}
                continue
            cached[h] = {"hash": h, "key": key, "result": result}
            store.append(cached[h])
        group.extras.setdefault(kind, {})[spec] = cached[h]["result"]


def _measure(kind: str, spec: str, settings: dict[str, Any], c: ExperimentConfig, built: dict[str, Any]) -> Any:
    task_name = settings.get("ood_task") or c.algorithm
    if task_name not in built:  # built by the one run builder: the run's task options, target options, dtype, device, site
        options = c.task_options if task_name == c.algorithm else {}
        built[task_name] = build_run(c.replace(algorithm=task_name, task_options=options))
    run = built[task_name]
    task, target, site = run.task, run.target, run.site
    measured = MeasureSettings(**settings["probe"])  # the key keeps its name: it is part of the cached hashes
    if kind == "control_algorithm":
        return control_algorithm_selectivity(task, spec, site, target=target, control_seeds=settings["control_seeds"],
                                             settings=measured).to_dict()
    if kind == "ood":
        return ood_iia(target, site, task, spec, measured).to_dict()
    return [p.to_dict() for p in sample_efficiency(target, site, task, spec, settings["sizes"], measured)]


def _ci(d: dict[str, Any]) -> str:
    return f"{d['estimate']:+.3f} [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}]"


def _params(n: int | None, frontier: Frontier) -> str:
    if n is None:
        return f"not reached (largest map tried: {max(m.num_parameters for m in frontier.points):,} params)"
    spec = min((m for m in frontier.points if m.num_parameters == n), key=lambda m: m.spec).spec
    return f"{n:,} params ({spec})"


def score_rows(group: Group) -> list[dict[str, Any]]:
    """One flat row per map: IIAs, the three differences with their intervals, the OOD IIAs."""
    rows = []
    for spec, m in group.maps.items():
        sel = m["selectivity"].difference.to_dict()
        row = {"experiment": group.source.experiment, "algorithm": group.algorithm, "layer": group.layer, "map": spec,
               "params": m["real"].num_parameters, "iia_real": m["real"].test.iia,
               "iia_control": sel["b"]["iia"], "control_seeds": len(m["controls"]),
               "selectivity_network": sel["estimate"], "selectivity_network_ci_low": sel["ci_low"],
               "selectivity_network_ci_high": sel["ci_high"]}
        alg = group.extras.get("control_algorithm", {}).get(spec, {})
        if "selectivity" in alg:
            row.update(control_variable=alg["variable"], selectivity_algorithm=alg["selectivity"]["estimate"],
                       selectivity_algorithm_ci_low=alg["selectivity"]["ci_low"],
                       selectivity_algorithm_ci_high=alg["selectivity"]["ci_high"])
        if "disjoint" in m:
            gap = Difference(m["real"].test.overall, m["disjoint"]["real"].test.overall).to_dict()
            row.update(iia_disjoint_real=m["disjoint"]["real"].test.iia, iia_disjoint_control=m["disjoint"]["control"].test.iia,
                       ood_gap=gap["estimate"], ood_gap_ci_low=gap["ci_low"], ood_gap_ci_high=gap["ci_high"])
        ood = group.extras.get("ood", {}).get(spec, {})
        if "gap" in ood:
            row.update(ood_iia_in=ood["in_distribution"]["overall"]["iia"],
                       ood_iia_out=ood["out_of_distribution"]["overall"]["iia"], ood_gap=ood["gap"]["estimate"],
                       ood_gap_ci_low=ood["gap"]["ci_low"], ood_gap_ci_high=ood["gap"]["ci_high"])
        rows.append(row)
    return rows


def group_text(group: Group) -> str:
    """Markdown: the per-map table, the frontier, the sample-efficiency curve, and any fit that failed."""
    src = group.source
    header = ["map", "params", f"IIA {src.real_label}", f"IIA {src.control_label}", "selectivity vs control networks",
              "selectivity vs control algorithm",
              "IIA shared / disjoint names" if src.disjoint_algorithm else "IIA in / out of distribution",
              "OOD gap (in - out)"]
    body = []
    for spec, m in group.maps.items():
        sel = m["selectivity"].difference.to_dict()
        alg = group.extras.get("control_algorithm", {}).get(spec, {})
        ood = group.extras.get("ood", {}).get(spec, {})
        if "disjoint" in m:  # the sweep's own disjoint-names runs: IIA on both networks, the real one's gap
            d = m["disjoint"]
            ood = {"in_distribution": {"overall": {"iia": m["real"].test.iia}},
                   "out_of_distribution": {"overall": {"iia": d["real"].test.iia}},
                   "gap": Difference(m["real"].test.overall, d["real"].test.overall).to_dict(),
                   "control": d["control"].test.iia}
        body.append([
            spec, f"{m['real'].num_parameters:,}", f"{m['real'].test.iia:.3f}",
            f"{sel['b']['iia']:.3f} ({len(m['controls'])} seed{'s' * (len(m['controls']) > 1)})", _ci(sel),
            f"{_ci(alg['selectivity'])} ({alg['variable']})" if "selectivity" in alg else "-",
            (f"{ood['in_distribution']['overall']['iia']:.3f} / {ood['out_of_distribution']['overall']['iia']:.3f}"
             + (f" (control {ood['control']:.3f})" if "control" in ood else "") if "gap" in ood else "-"),
            _ci(ood["gap"]) if "gap" in ood else "-",
        ])
    f = group.frontier
    lines = [f"#### {src.experiment}: {group.algorithm}, layer {group.layer}", "", format_table(header, body),
             f"Smallest map reaching IIA {f.threshold}: {src.real_label} {_params(f.real_complexity, f.real)}; "
             f"{src.control_label} {_params(f.control_complexity, f.controls[0])}.", ""]
    curves = {s: pts for s, pts in group.extras.get("sample_efficiency", {}).items() if isinstance(pts, list)}
    if curves:
        lines += [f"Sample efficiency on the {src.real_label} (early stopping on the fitting pairs):", "",
                  format_table(["map", "fitting pairs", "train IIA", "test IIA", "train - test"],
                               [[spec, f"{p['n_pairs']:,}", f"{p['train']['overall']['iia']:.3f}",
                                 f"{p['test']['overall']['iia']:.3f}", _ci(p["gap"])]
                                for spec, pts in curves.items() for p in pts])]
    for kind, results in group.extras.items():
        for spec, result in results.items():
            if isinstance(result, dict) and "error" in result:
                lines.append(f"- {kind} for {spec} not measured: {result['error']}")
    return "\n".join(lines).rstrip() + "\n"


def curve_points(group: Group) -> list[dict[str, Any]]:
    """The sample-efficiency curve as flat points (for the figure and its numbers)."""
    out = []
    for spec, points in group.extras.get("sample_efficiency", {}).items():
        if isinstance(points, list):
            out += [{"experiment": group.source.experiment, "algorithm": group.algorithm, "layer": group.layer,
                     "map": spec, "n_pairs": p["n_pairs"], "train_iia": p["train"]["overall"]["iia"],
                     "test_iia": p["test"]["overall"]["iia"], "chance": p.get("chance")} for p in points]
    return out


@dataclass
class ScoresReport:
    text: str
    files: dict[str, Path] = field(default_factory=dict)
    figures: dict[str, Path] = field(default_factory=dict)


def write_scores(
    records: dict[str, list[dict[str, Any]]], skipped: dict[str, str], profile: str, folder: Path
) -> ScoresReport:
    """Score every source experiment that has records; say why the others are missing. Writes into ``folder``."""

    plan = PLANS.get(profile, PLANS["quick"])
    folder.mkdir(parents=True, exist_ok=True)
    store = ResultStore(folder / "measurements.jsonl")
    sections, rows, curves, notes = [], [], [], []
    for source in SOURCES:
        recs = records.get(source.experiment, [])
        groups = record_groups(source, recs, plan.threshold) if recs else []
        if not groups:
            why = skipped.get(source.experiment) or ("no runs with both a real network and its controls" if recs
                                                     else "not run")
            notes.append(f"- {source.experiment}: no scores ({why}).")
            continue
        for group in groups if plan.every_group else groups[:1]:
            measure_extras(group, plan, store)
            sections.append(group_text(group))
            rows += score_rows(group)
            curves += curve_points(group)
    text = "\n".join(["### scores", "", *sections, *notes]).rstrip() + "\n"
    report = ScoresReport(text)
    (folder / "scores.md").write_text(text)
    report.files["scores/table"] = folder / "scores.md"
    if rows:
        report.files["scores/csv"] = write_csv(folder / "scores.csv", rows)
    (folder / "scores.json").write_text(json.dumps({"plan": asdict(plan), "rows": rows, "sample_efficiency": curves},
                                                   indent=1, default=str))
    report.files["scores/json"] = folder / "scores.json"
    report.files["scores/measurements"] = store.path
    if rows:
        for key, path in scores_figure(rows, curves, folder / "scores_figure").items():
            (report.figures if path.suffix == ".png" else report.files)[f"scores/{key}"] = path
    return report
