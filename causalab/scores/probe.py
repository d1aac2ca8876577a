"""One measurement that every score repeats: fit an alignment map on some pairs, score it on others.

:class:`ProbeConfig` holds what the scores share (pair counts, block size, fitting
settings, seed); :func:`measure` fits one map family on one (network, algorithm,
site) and returns train and test IIA with the map's parameter count. Hidden states
are cached once per dataset (:func:`causalab.prepare`), so a measurement on the
paper's MLP takes a fraction of a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from causalab.alignment import AlignmentMap
from causalab.causal.counterfactual import CounterfactualDataset
from causalab.causal.task import Task
from causalab.errors import PartitionError, ScoreError
from causalab.intervene import Partition
from causalab.metrics import IIAResult
from causalab.neural.target import Site, Target
from causalab.registry import make_alignment
from causalab.train import FitConfig, FitResult, evaluate, fit_alignment, prepare

Pairs = tuple[CounterfactualDataset, CounterfactualDataset, CounterfactualDataset]


@dataclass
class ProbeConfig:
    """Pair counts, block size and fitting settings shared by the scores.

    ``validate_on="val"`` stops early on held-out validation pairs (the usual fit);
    ``"train"`` stops on the training pairs themselves, so that nothing held out
    leaks into the fit — what a memorisation measurement needs.
    """

    n_train: int = 2_000
    n_val: int = 500
    n_test: int = 2_000
    intervention_size: int = 8
    epochs: int = 10
    batch_size: int = 256
    lr: float = 1e-2
    patience: int = 3
    seed: int = 0
    validate_on: str = "val"
    dtype: torch.dtype = torch.float32

    def __post_init__(self) -> None:
        for name in ("n_train", "n_val", "n_test", "epochs", "batch_size", "patience"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ScoreError(f"ProbeConfig.{name} must be a positive integer, got {v!r}")
        if self.validate_on not in ("val", "train"):
            raise ScoreError(f"ProbeConfig.validate_on must be 'val' or 'train', got {self.validate_on!r}")

    def fit_config(self) -> FitConfig:
        return FitConfig(
            epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, patience=self.patience, seed=self.seed
        )

    def sizes(self) -> list[int]:
        return [self.n_train, self.n_val, self.n_test]


@dataclass
class Measurement:
    """One fitted map: its family spec, complexity, and IIA on its training and test pairs."""

    spec: str
    num_parameters: int
    train: IIAResult
    test: IIAResult
    fit: FitResult
    phi: AlignmentMap | None = field(default=None, repr=False)
    partition: Partition | None = field(default=None, repr=False)
    dtype: torch.dtype = torch.float32
    chance: float = float("nan")

    def score(self, target: Target, site: Site, task: Task, data: CounterfactualDataset) -> IIAResult:
        """IIA of this fitted map on other pairs (e.g. from another part of the input space)."""
        if self.phi is None or self.partition is None:
            raise ScoreError(f"measurement of {self.spec!r} keeps no fitted map to score new pairs with")
        pairs = prepare(target, site, task, data, dtype=self.dtype)
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
        }


def draw_pairs(task: Task, config: ProbeConfig, seed: int | None = None) -> Pairs:
    """Train, validation and test pairs from the task's own counterfactual distribution."""
    gen = torch.Generator().manual_seed(config.seed if seed is None else seed)
    data = task.counterfactuals(sum(config.sizes()), gen)
    train, val, test = data.split(config.sizes())
    return train, val, test


def chance_level(labels: torch.Tensor) -> float:
    """The IIA of always answering the most frequent counterfactual class (NaN for non-class labels)."""
    if labels.dim() != 1 or len(labels) == 0:
        return float("nan")
    return float(torch.bincount(labels.long().cpu()).max()) / len(labels)


def default_partition(task: Task, width: int, size: int) -> Partition:
    """Consecutive blocks of ``size`` coordinates, one per intervened variable."""
    try:
        return Partition.contiguous(task.variables, size, width)
    except PartitionError as exc:
        raise ScoreError(f"task {task.name!r}: {exc}; lower ProbeConfig.intervention_size") from None


def build_map(spec: str | AlignmentMap, width: int, seed: int, dtype: torch.dtype) -> AlignmentMap:
    """A fresh map from a spec string (initialised from ``seed`` without touching the global RNG)."""
    if isinstance(spec, AlignmentMap):
        return spec
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make_alignment(spec, width).to(dtype=dtype)


def describe_spec(spec: str | AlignmentMap) -> str:
    return spec if isinstance(spec, str) else type(spec).__name__


def measure(
    target: Target,
    site: Site,
    task: Task,
    spec: str | AlignmentMap,
    config: ProbeConfig | None = None,
    *,
    pairs: Pairs | None = None,
    partition: Partition | None = None,
) -> Measurement:
    """Fit the map ``spec`` (a spec string such as ``"revnet:blocks=2"``, or a built map) and score it.

    ``pairs`` are (train, validation, test) counterfactual datasets; by default they are
    drawn from ``task`` with ``config``'s sizes and seed. The map is fitted on train and
    stopped early on validation (or on train itself, see :class:`ProbeConfig`).
    """
    config = config or ProbeConfig()
    site = target.check_site(site)
    width = target.width(site)
    train_d, val_d, test_d = pairs if pairs is not None else draw_pairs(task, config)
    phi = build_map(spec, width, config.seed, config.dtype)
    partition = partition or default_partition(task, width, config.intervention_size)
    try:
        partition.check_fits(phi)
    except PartitionError as exc:
        raise ScoreError(f"map {describe_spec(spec)!r}: {exc}") from None
    kw = {"dtype": config.dtype}
    train = prepare(target, site, task, train_d, **kw)
    val = train if config.validate_on == "train" else prepare(target, site, task, val_d, **kw)
    test = prepare(target, site, task, test_d, **kw)
    fit = fit_alignment(target, site, phi, partition, task, train, val, config.fit_config())
    return Measurement(
        spec=describe_spec(spec),
        num_parameters=phi.num_parameters,
        train=evaluate(target, site, phi, partition, task, train),
        test=evaluate(target, site, phi, partition, task, test),
        fit=fit,
        phi=phi,
        partition=partition,
        dtype=config.dtype,
        chance=chance_level(test.labels),
    )
