"""One measurement, one way: sample pairs -> prepare them -> fit the map -> score it -> a :class:`Measurement`.

Every run of causalab goes through :func:`measure`: ``run_experiment`` (and so every
sweep and ``causalab run``) and every score in :mod:`causalab.scores`. The settings it
reads are one :class:`MeasureSettings` (an :class:`~causalab.experiments.ExperimentConfig`
is one, with the pieces to build added); the result is one :class:`Measurement`, which
also writes the results-file record. Hidden states are cached once per dataset
(:func:`causalab.prepare`): the network is frozen.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import platform
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, ClassVar

import torch

from causalab.causal.counterfactual import CounterfactualDataset
from causalab.causal.task import Task
from causalab.errors import ConfigError, ConfigFieldError, DataError, PartitionError, PartitionFieldError
from causalab.fit.construct import fit_constructed, outside_pairs
from causalab.fit.fitting import (
    FitConfig,
    FitResult,
    PreparedPairs,
    evaluate,
    fit_alignment,
    prepare,
)
from causalab.fit.metrics import IIAResult
from causalab.maps.alignment import AlignmentMap
from causalab.maps.intervene import Partition, check_not_empty, default_partition
from causalab.maps.spec import build_map, describe_spec
from causalab.neural.target import Site, Target
from causalab.runtime import RuntimeSettings

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64}
VALIDATE_ON = ("val", "train")
# the outside pairs of a constructed map are drawn with seed ``settings.seed + OUTSIDE_SEED``: a draw of their own
OUTSIDE_SEED = 1_000_003
Pairs = tuple[CounterfactualDataset, CounterfactualDataset, CounterfactualDataset]


def unknown_field(owner: str, unknown: str, names: Iterable[str]) -> ConfigFieldError:
    """The error for a keyword that ``owner`` does not have: it names the valid fields and the one likely meant.

    Python's own ``TypeError`` (``__init__() got an unexpected keyword argument 'epoch'``)
    names neither.

    >>> print(unknown_field("MeasureSettings", "epoch", ["epochs", "seed"]))
    config field 'epoch': MeasureSettings has no field 'epoch' (did you mean 'epochs'?); valid fields: epochs, seed
    """
    names = sorted(names)
    close = difflib.get_close_matches(unknown, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigFieldError(unknown, f"{owner} has no field {unknown!r}{hint}; valid fields: {', '.join(names)}")


# the fitting settings a measurement hands to its FitConfig, given flat (``MeasureSettings(epochs=5)``) or as one
# ``fit=FitConfig(...)``; the FitConfig's seed is the measurement's own (it seeds pairs, map and batch order alike)
FIT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(FitConfig) if f.name != "seed")
# a measurement's fields flat, in the order records keep them (fields added later at the end)
FLAT_ORDER: tuple[str, ...] = ("n_train", "n_val", "n_test", "intervention_size", "epochs", "batch_size", "lr", "patience",
                               "seed", "monitor", "validate_on", "dtype", "device", "warmup_steps", "lr_schedule", "loss",
                               "plateau_factor", "plateau_patience", "plateau_on", "val_every", "min_delta", "max_steps")


@dataclass(frozen=True, init=False)
class MeasureSettings:
    """How to measure: pair counts, block size, seed, precision and device, and how to fit (``fit``, a :class:`FitConfig`).

    ``seed`` seeds the pairs, the map's initialisation and the batch order: a given ``fit``'s
    own seed is replaced by it.
    ``validate_on="val"`` stops early on held-out validation pairs (the usual fit);
    ``"train"`` stops on the training pairs themselves, so that nothing held out leaks
    into the fit: what a memorisation measurement needs. The fitting settings are given
    as ``fit=FitConfig(...)`` or flat, as fields of their own (``epochs=5, lr=1e-3``:
    the defaults are ``FitConfig``'s, except 10 epochs; beside a ``fit``, they change it), and read back as ``settings.fit.epochs``
    (or ``settings.epochs``). Each part checks its own fields once, when it is made: a bad
    measurement field raises :class:`~causalab.errors.ConfigFieldError`, a bad fitting field
    :class:`~causalab.errors.FitSettingError`, both naming the field. Settings are frozen:
    :meth:`replace` gives changed copies.

    >>> s = MeasureSettings(n_train=400, epochs=5)
    >>> s.fit.epochs, s.fit.seed, s.replace(seed=3).fit.seed
    (5, 0, 3)
    """

    n_train: int = 2_000
    n_val: int = 500
    n_test: int = 2_000
    intervention_size: int = 8
    seed: int = 0
    validate_on: str = "val"
    dtype: str = "float32"
    device: str = "cpu"
    fit: FitConfig = field(default_factory=FitConfig)

    FIT_DEFAULTS: ClassVar[dict[str, Any]] = {"epochs": 10}  # where a measurement's fit differs from FitConfig's

    def __init__(self, *, fit: FitConfig | None = None, **values: Any) -> None:
        own = [f.name for f in fields(self) if f.name != "fit"]
        for name in values:
            if name not in own and name not in FIT_FIELDS:
                raise unknown_field(type(self).__name__, name, [*own, *FIT_FIELDS, "fit"])
        flat = {k: v for k, v in values.items() if k in FIT_FIELDS}
        for f in fields(self):
            if f.name != "fit":
                object.__setattr__(self, f.name, values.get(f.name, f.default))
        self._check()
        if fit is None:
            fit = FitConfig(**{**self.FIT_DEFAULTS, **flat, "seed": self.seed})
        elif not isinstance(fit, FitConfig):
            raise ConfigFieldError("fit", f"must be a FitConfig, got {type(fit).__name__}")
        elif flat or fit.seed != self.seed:  # flat fitting fields beside a fit change it; the measurement's seed is its
            fit = dataclasses.replace(fit, **flat, seed=self.seed)
        object.__setattr__(self, "fit", fit)

    def _check(self) -> None:
        """Check and normalise the measurement's own fields (the fitting ones are FitConfig's to check)."""
        if isinstance(self.dtype, torch.dtype):  # accept torch.float64 as well as "float64"
            object.__setattr__(self, "dtype", next((k for k, v in DTYPES.items() if v == self.dtype), str(self.dtype)))
        for name in ("n_train", "n_val", "n_test"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigFieldError(name, f"must be a positive integer, got {v!r}")
        for name in ("seed", "intervention_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                what = ("coordinates per variable: at least 1, at most the hidden width over the number of variables; "
                        "0 only where an explicit partition gives the blocks") if name == "intervention_size" else ""
                raise ConfigFieldError(name, f"must be a non-negative integer{f' ({what})' if what else ''}, got {v!r}")
        if self.validate_on not in VALIDATE_ON:
            raise ConfigFieldError("validate_on", f"must be one of {VALIDATE_ON}, got {self.validate_on!r}")
        if self.dtype not in DTYPES:
            raise ConfigFieldError("dtype", f"must be one of {tuple(DTYPES)}, got {self.dtype!r}")
        if not isinstance(self.device, str) or not self.device.strip():
            raise ConfigFieldError("device", f"must be a non-empty string such as 'cpu' or 'cuda', got {self.device!r}")

    def __getattr__(self, name: str) -> Any:
        """A fitting setting read flat (``settings.epochs`` is ``settings.fit.epochs``)."""
        if name in FIT_FIELDS:
            return getattr(self.fit, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __dir__(self) -> list[str]:  # the flat fitting fields too, for completion
        return sorted({*super().__dir__(), *FIT_FIELDS})

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def to_dict(self) -> dict[str, Any]:
        """Every field flat, the fitting ones included (``max_steps`` too), as a config file writes them
        (in the order results records have always kept them)."""
        return {name: getattr(self.fit if name in FIT_FIELDS else self, name) for name in FLAT_ORDER}

    def replace(self, **changes: Any) -> MeasureSettings:
        """A copy with ``changes`` (flat fields, fitting ones included) applied and checked."""
        return type(self)(**{**self.to_dict(), **changes})

    def sizes(self) -> list[int]:
        return [self.n_train, self.n_val, self.n_test]


@dataclass
class Run:
    """The built pieces of one measurement: the task bound to its network, the checked site, the map and its
    partition (checked to fit the map). ``config`` is the experiment's config where the pieces were built from
    one (:func:`~causalab.experiments.build_run`); :func:`measure_run` measures them without checking again."""

    task: Task
    target: Target
    site: Site
    phi: AlignmentMap
    partition: Partition
    config: Any = None


@dataclass
class Measurement:
    """One fitted map: its spec, complexity, IIA on its training and test pairs, and how the fit went.

    Beside the test IIA it keeps what the IIA is read against: ``chance``, the IIA of always
    answering the most frequent counterfactual class (:func:`chance_level`), and
    ``network_accuracy``, how often the network itself, without intervention, gives the
    algorithm's own output on the test bases (:func:`network_accuracy`). ``config`` is the
    run's config when the measurement is one run of an experiment; :meth:`to_record` then
    writes the results-file record.

    ``outside`` is the IIA on pairs outside the fitting (construction) set, where one was
    measured: always for a constructed map (:func:`measure`), which is built on every pair it
    is scored on; ``outside_dropped`` counts the drawn pairs left out because they were in it.
    """

    spec: str
    num_parameters: int
    train: IIAResult
    test: IIAResult
    fit: FitResult
    phi: AlignmentMap | None = field(default=None, repr=False)
    partition: Partition | None = field(default=None, repr=False)
    dtype: torch.dtype = torch.float32
    chance: float = float("nan")
    network_accuracy: float = float("nan")
    width: int | None = None
    seconds: float = 0.0
    config: Any = None
    map_file: str | None = None  # where the fitted map was saved (run_experiment's save_map), if it was
    runtime: RuntimeSettings | None = None  # the runtime settings the measurement ran with (recorded, not hashed)
    outside: IIAResult | None = None
    outside_dropped: int = 0

    def score(self, target: Target, site: Site, task: Task, data: CounterfactualDataset) -> IIAResult:
        """IIA of this fitted map on other pairs (e.g. from another part of the input space)."""
        if self.phi is None or self.partition is None:
            raise ConfigFieldError("alignment", f"the measurement of {self.spec!r} keeps no fitted map to score new pairs with")
        pairs = prepare(target, site, task, data, dtype=self.dtype, runtime=self.runtime)
        return evaluate(target, site, self.phi, self.partition, task, pairs)

    @property
    def train_iia(self) -> float:
        return self.train.iia

    @property
    def test_iia(self) -> float:
        return self.test.iia

    def to_dict(self) -> dict:
        return {
            "spec": self.spec,
            "num_parameters": self.num_parameters,
            "train": self.train.to_dict(),
            "test": self.test.to_dict(),
            "epochs_run": self.fit.epochs_run,
            "chance": self.chance,
            "network_accuracy": self.network_accuracy,
        }

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready results-file record: config, hash, IIA (overall and per variable set, with 95%
        intervals), the chance level and the network's own accuracy beside it (``None`` where
        undefined), sizes, timing and versions. Needs the run's ``config``."""
        if self.config is None:
            raise ConfigFieldError("config", f"the measurement of {self.spec!r} was not made from a config; it has no record")
        cfg = self.config
        return {
            "config": cfg.to_dict(),
            "hash": cfg.hash(),
            "iia": self.test.iia,
            "test": self.test.to_dict(),
            "chance": _number_or_none(self.chance),
            "network_accuracy": _number_or_none(self.network_accuracy),
            "train_iia": self.train.iia,
            "best_val_iia": self.fit.best_val_iia,
            "epochs_run": self.fit.epochs_run,
            "steps": self.fit.steps,
            "history": self.fit.history,  # per epoch: train loss, train/validation IIA and loss, learning rate
            "num_parameters": self.num_parameters,
            "width": self.width,
            "n_train": cfg.n_train,
            "n_val": cfg.n_val,
            "n_test": cfg.n_test,
            "seconds": self.seconds,
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "versions": versions(),
            **({"runtime": self.runtime.to_record()} if self.runtime is not None else {}),
            **({"map_file": self.map_file} if self.map_file is not None else {}),
            **self._outside_record(),
        }

    def _outside_record(self) -> dict[str, Any]:
        """A constructed map's generalisation and size (only where there is one: other records keep their fields):
        ``outside_iia`` and ``outside`` (IIA per set on pairs it was not built on, and how many drawn pairs were
        left out as in the construction set), ``construction`` (stored points, values and bytes, base-equals-source
        pairs, pairs built on, build seconds, the IIA ceiling)."""
        out: dict[str, Any] = {}
        if self.outside is not None:
            out["outside_iia"] = self.outside.iia
            out["outside"] = {**self.outside.to_dict(), "dropped": self.outside_dropped}
        built = getattr(self.phi, "construction", None) if self.phi is not None and self.phi.constructed else None
        if built is not None:
            out["construction"] = {"points": built.points, "stored_values": built.stored_values, "nbytes": built.nbytes,
                                   "base_equals_source": built.base_equals_source, "pairs": built.pairs,
                                   "seconds": built.seconds, "ceiling": built.ceiling}
        return out


def _number_or_none(x: float) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


def versions() -> dict[str, str]:
    """Versions that can change a result: the record keeps them beside the numbers."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        mine = version("causalab")
    except PackageNotFoundError:  # pragma: no cover - running from a tree that was never installed
        mine = "unknown"
    return {"causalab": mine, "torch": torch.__version__, "python": platform.python_version()}


def checked_settings(settings: Any) -> MeasureSettings:
    """``settings`` if it is a :class:`MeasureSettings`; otherwise a :class:`~causalab.errors.ConfigError` saying what to pass.

    >>> checked_settings(MeasureSettings(n_train=10)).n_train
    10
    """
    if isinstance(settings, MeasureSettings):
        return settings
    hint = (" (an ExperimentConfig holds one: pass config.measure)" if isinstance(getattr(settings, "measure", None),
                                                                               MeasureSettings) else "")
    raise ConfigError(f"measurement settings must be a MeasureSettings{hint}, got {type(settings).__name__}")


def draw_pairs(task: Task, settings: MeasureSettings, seed: int | None = None) -> Pairs:
    """Train, validation and test pairs from the task (its own split where it has one, see :meth:`Task.splits`)."""
    settings = checked_settings(settings)
    gen = torch.Generator().manual_seed(settings.seed if seed is None else seed)
    train, val, test = task.splits(settings.sizes(), gen)
    return train, val, test


def chance_level(labels: torch.Tensor, changed: torch.Tensor | None = None) -> float:
    """The IIA of the best answer that ignores the source: what an IIA is read against.

    Class labels ``(B,)``: always answering the most frequent counterfactual class. Two-way
    labels ``(B, 2)`` (IOI's [expected name, the base's other name], scored by which of the two
    wins): always keeping the base's own answer or always switching to the other, whichever
    scores more; ``changed`` says per pair whether the counterfactual differs from the base's
    output. NaN where neither applies.

    >>> chance_level(torch.tensor([0, 1, 1, 1]))
    0.75
    >>> chance_level(torch.zeros(4, 2), changed=torch.tensor([True, False, False, False]))
    0.75
    """
    if len(labels) == 0:
        return float("nan")
    if labels.dim() == 1:
        return float(torch.bincount(labels.long().cpu()).max()) / len(labels)
    if labels.dim() == 2 and labels.shape[1] == 2 and changed is not None and len(changed) == len(labels):
        share = float(changed.float().mean())
        return max(share, 1.0 - share)
    return float("nan")


@torch.no_grad()
def network_accuracy(
    target: Target, site: Site, task: Task, data: CounterfactualDataset, pairs: PreparedPairs, batch_size: int = 8192
) -> float:
    """How often the network, without intervention, gives the algorithm's own output on the bases of ``data``.

    The algorithm's output on each base is labelled as a counterfactual whose value is the
    base's own (for IOI: ``[the base's answer, its other name]``) and scored by
    ``task.correct`` on the network's logits. ``pairs`` are ``data`` prepared at ``site``: the
    logits come from :meth:`Target.patched_logits` with the cached, unchanged base state, so
    an LM runs only the blocks above the site, once per base.
    """
    if len(pairs) == 0:
        return float("nan")
    labels = task.labels(dataclasses.replace(data, counterfactual_outputs=data.base_outputs)).to(pairs.labels.device)
    correct = []
    for i in range(0, len(pairs), batch_size):
        idx = slice(i, i + batch_size)
        logits = pairs.base_logits(target, site, idx, pairs.h_base[idx])
        correct.append(task.correct(logits, labels[idx]))
    return float(torch.cat(correct).float().mean())


def _changed(task: Task, data: CounterfactualDataset) -> torch.Tensor:
    """Per pair, whether the counterfactual output differs from the base's."""
    return data.counterfactual_outputs[task.output] != data.base_outputs[task.output]


def measure(
    target: Target,
    site: Site,
    task: Task,
    spec: str | AlignmentMap,
    settings: MeasureSettings | None = None,
    *,
    pairs: Pairs | None = None,
    partition: Partition | None = None,
    progress: Callable[[dict], None] | None = None,
    runtime: RuntimeSettings | None = None,
    outside: CounterfactualDataset | None = None,
) -> Measurement:
    """Fit the map ``spec`` (a spec string such as ``"revnet:blocks=2"``, or a built map) and score it.

    ``pairs`` are (train, validation, test) counterfactual datasets; by default they are
    drawn from ``task`` with the settings' sizes and seed. The map is fitted on train and
    stopped early on validation (or on train itself, see :class:`MeasureSettings`);
    ``progress`` receives each epoch's record. ``runtime`` (default: read once from the
    environment, :meth:`RuntimeSettings.from_env`) sets the LM cache's budget and dtype and
    compilation; the measurement keeps it for its record. Raises
    :class:`~causalab.errors.ConfigFieldError` for a block size the map cannot hold.

    A constructed map (``"constructed"``, the paper's Theorem 1) is built, not fitted, on the
    train, validation and test pairs together, so its test IIA says nothing about new pairs:
    it is also scored on ``outside`` pairs (by default ``n_test`` test pairs drawn with seed
    ``settings.seed + OUTSIDE_SEED``), less any that are in the construction set
    (:func:`~causalab.fit.construct.outside_pairs`), into ``Measurement.outside`` and
    ``phi.construction.outside_iia``; :class:`~causalab.errors.DataError` if none is left.
    For a fitted map, ``outside`` pairs, if given, are scored the same way.

    Parameters
    ----------
    target : Target
        The frozen network.
    site : Site
        Where hidden states are read and patched.
    task : Task
        The algorithm bound to the network: pairs, encoding, labels, loss.
    spec : str or AlignmentMap
        The map: a spec string (built from ``settings.seed``) or a built map.
    settings : MeasureSettings, optional
        Data sizes, seed, fitting settings, intervention size, dtype and device.
    pairs : (CounterfactualDataset, CounterfactualDataset, CounterfactualDataset), optional
        Train, validation and test pairs in place of the task's own draw.
    partition : Partition, optional
        The variables' blocks (default: ``settings.intervention_size`` consecutive coordinates each).
    progress : callable, optional
        Receives each epoch's (or check's) record.
    runtime : RuntimeSettings, optional
        The LM cache's budget and dtype, compilation.
    outside : CounterfactualDataset, optional
        Pairs to score the map on beside the test pairs (for a constructed map: pairs it was not built on).

    Returns
    -------
    Measurement
        Train and test IIA (with intervals and per intervention set), ``chance``,
        ``network_accuracy``, the fitted map and partition, the fit's history, ``outside`` where
        scored, and ``to_record()``.

    Raises
    ------
    ConfigFieldError
        An intervention size or partition the map cannot hold, naming the field.
    DataError
        A constructed map's outside pairs all lie in its construction set.

    Examples
    --------
    >>> import causalab as cl
    >>> task = cl.make_task("both_equality_relations")
    >>> oracle, site = cl.build_target(task, "oracle", 0), cl.Site(1)
    >>> settings = cl.MeasureSettings(n_train=400, n_val=100, n_test=400, epochs=1)
    >>> partition = cl.Partition({"V1": range(8), "V2": range(8, 16)}, 16)
    >>> result = cl.measure(oracle, site, task, "identity", settings, partition=partition)
    >>> result.test.iia, result.num_parameters
    (1.0, 0)
    """
    settings = checked_settings(settings or MeasureSettings())
    site = target.check_site(site)
    task.check_position(site.position, target.positions)
    width = target.width(site)
    phi = build_map(spec, width, settings.seed, settings.torch_dtype, settings.device)
    field = "partition" if partition is not None else "intervention_size"
    partition = check_not_empty(partition) if partition is not None else default_partition(
        task, width, settings.intervention_size)
    try:
        partition.check_fits(phi)
    except PartitionError as exc:
        raise PartitionFieldError(field, f"map {describe_spec(spec)!r}: {exc}") from None
    result = measure_run(Run(task, target, site, phi, partition), settings, pairs=pairs, progress=progress,
                         runtime=runtime, outside=outside)
    result.spec = describe_spec(spec)
    return result


def measure_run(
    run: Run,
    settings: MeasureSettings,
    *,
    pairs: Pairs | None = None,
    progress: Callable[[dict], None] | None = None,
    runtime: RuntimeSettings | None = None,
    outside: CounterfactualDataset | None = None,
) -> Measurement:
    """Measure a run whose pieces are built and checked already: draw pairs, prepare them, fit ``run.phi``, score it.

    What :func:`measure` does after checking its pieces, and what
    :func:`~causalab.experiments.run_experiment` calls with the pieces
    :func:`~causalab.experiments.build_run` built from a config: nothing is checked or built
    twice. ``settings`` is the measurement's (``config.measure``); its ``fit`` is handed to
    :func:`~causalab.fit.fitting.fit_alignment` whole. The other arguments are :func:`measure`'s.

    Parameters
    ----------
    run : Run
        The task bound to its network, the checked site, the built map and its partition
        (checked to fit the map).
    settings : MeasureSettings
        Pair counts, seed, dtype, device and the fitting settings.
    pairs : (CounterfactualDataset, CounterfactualDataset, CounterfactualDataset), optional
        Train, validation and test pairs in place of the task's own draw.
    progress : callable, optional
        Receives each epoch's (or check's) record.
    runtime : RuntimeSettings, optional
        The LM cache's budget and dtype, compilation.
    outside : CounterfactualDataset, optional
        Pairs to score the map on beside the test pairs.

    Returns
    -------
    Measurement
        As :func:`measure`'s; its ``spec`` is the config's alignment where the run has a config.

    Examples
    --------
    >>> import causalab as cl
    >>> task = cl.make_task("left_equality_relation")
    >>> oracle = cl.build_target(task, "oracle", 0)
    >>> phi = cl.make_alignment("identity", 16)
    >>> run = cl.Run(task, oracle, cl.Site(1), phi, cl.Partition({"V1": range(8)}, 16))
    >>> cl.measure_run(run, cl.MeasureSettings(n_train=400, n_val=100, n_test=400, epochs=1)).test.iia
    1.0
    """
    start = time.perf_counter()
    settings = checked_settings(settings)
    runtime = runtime if runtime is not None else RuntimeSettings.from_env()
    target, site, task, phi, partition = run.target, run.site, run.task, run.phi, run.partition
    dtype = settings.torch_dtype
    train_d, val_d, test_d = pairs if pairs is not None else draw_pairs(task, settings)
    kw = {"device": settings.device, "dtype": dtype, "runtime": runtime}
    train = prepare(target, site, task, train_d, **kw)
    val = train if settings.validate_on == "train" else prepare(target, site, task, val_d, **kw)
    test = prepare(target, site, task, test_d, **kw)
    if phi.constructed:  # Theorem 1's map: built, not fitted, on every pair it is scored on (test pairs included)
        fit = fit_constructed(target, site, task, phi, partition, [(train_d, train), (val_d, val), (test_d, test)],
                              seed=settings.seed, loss=settings.fit.loss)
    else:
        fit = fit_alignment(target, site, phi, partition, task, train, val, settings.fit, progress=progress)
    test_iia = evaluate(target, site, phi, partition, task, test)
    train_iia = evaluate(target, site, phi, partition, task, train)
    outside_iia, dropped = None, 0
    if outside is None and phi.constructed:
        outside = task.splits(settings.sizes(), torch.Generator().manual_seed(settings.seed + OUTSIDE_SEED))[2]
    if outside is not None:
        built_on = (train_d, test_d) if settings.validate_on == "train" else (train_d, val_d, test_d)
        outside, dropped = outside_pairs(task, outside, built_on)
        if len(outside) == 0:
            raise DataError(f"every outside pair of {task.name!r} is in the construction set ({dropped} drawn); "
                            "the task's input space is too small to score the map on pairs it was not built on")
        outside_iia = evaluate(target, site, phi, partition, task, prepare(target, site, task, outside, **kw))
        if phi.constructed:
            phi.construction.outside_iia = outside_iia.iia
            fit.history[0]["construction"]["outside_iia"] = outside_iia.iia
    return Measurement(
        spec=run.config.build.alignment if run.config is not None else describe_spec(phi),
        num_parameters=phi.num_parameters, train=train_iia, test=test_iia, fit=fit,
        phi=phi, partition=partition, dtype=dtype, chance=chance_level(test.labels, _changed(task, test_d)),
        network_accuracy=network_accuracy(target, site, task, test_d, test), width=partition.width, seconds=time.perf_counter() - start,
        runtime=runtime, config=run.config,
        outside=outside_iia, outside_dropped=dropped,
    )
