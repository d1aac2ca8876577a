"""Fitting an alignment map on counterfactual pairs, with the network frozen.

The network never changes, so hidden states at the site are computed once per
dataset (:func:`prepare`) and reused every epoch; only the layers above the site
run in the loop (``Target.patched_logits``).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.nn.utils import parametrize

from causalab.causal.counterfactual import CounterfactualDataset
from causalab.causal.task import Task
from causalab.errors import DataError, FitError, FitSettingError
from causalab.fit.metrics import IIAResult, iia_from_correct
from causalab.fit.neuron_search import greedy_neuron_blocks
from causalab.fit.schedule import ReduceOnPlateau
from causalab.maps.alignment import FITTINGS, AlignmentMap
from causalab.maps.intervene import Partition, interchange
from causalab.neural.resume_cache import ResumeCache
from causalab.neural.target import Site, Target
from causalab.progress import Progress, report
from causalab.runtime import RuntimeSettings


def index_inputs(inputs: Any, idx: torch.Tensor | slice) -> Any:
    """Row-index network inputs: a tensor, or a mapping of tensors (token ids and masks)."""
    if isinstance(inputs, torch.Tensor):
        if isinstance(idx, torch.Tensor) and idx.dim() == 1 and not idx.is_floating_point() and idx.dtype != torch.bool:
            return inputs.index_select(0, idx.to(inputs.device))  # a copy per row, not an element-wise gather
        return inputs[idx]
    if isinstance(inputs, Mapping):
        return {k: index_inputs(v, idx) for k, v in inputs.items()}
    raise TypeError(f"network inputs must be a tensor or a mapping of tensors, got {type(inputs).__name__}")


def inputs_to(inputs: Any, device: torch.device | str, dtype: torch.dtype | None = None) -> Any:
    if isinstance(inputs, torch.Tensor):
        if dtype is not None and inputs.is_floating_point():
            inputs = inputs.to(dtype)
        return inputs.to(device)
    return {k: inputs_to(v, device, dtype) for k, v in inputs.items()}


def _rows(inputs: Any) -> int:
    if isinstance(inputs, torch.Tensor):
        return inputs.shape[0]
    return _rows(next(iter(inputs.values())))


@dataclass
class PreparedPairs:
    """Counterfactual pairs with cached hidden states at one site."""

    base_inputs: Any
    h_base: torch.Tensor
    h_sources: dict[str, torch.Tensor]
    labels: torch.Tensor
    set_index: torch.Tensor
    intervention_sets: list[tuple[str, ...]]
    # what the target keeps to resume above the site (Target.resume_cache), rows as base_inputs
    resume: ResumeCache | None = None

    def __len__(self) -> int:
        return self.h_base.shape[0]

    def subset(self, idx: torch.Tensor | slice) -> PreparedPairs:
        """The pairs at ``idx``, with everything they cache."""
        return PreparedPairs(index_inputs(self.base_inputs, idx), self.h_base[idx],
                             {v: h[idx] for v, h in self.h_sources.items()}, self.labels[idx], self.set_index[idx],
                             list(self.intervention_sets), self.resume_rows(idx))

    def resume_rows(self, idx: torch.Tensor | slice) -> ResumeCache | None:
        """The resume cache of the pairs at ``idx`` (``None`` when the target keeps none)."""
        return None if self.resume is None else self.resume.rows(idx)

    def base_logits(self, target: Target, site: Site, idx: torch.Tensor | slice, h: torch.Tensor) -> torch.Tensor:
        """``target.patched_logits`` on the bases at ``idx`` with ``h`` at ``site``, resuming from the cache if any."""
        inputs, resume = index_inputs(self.base_inputs, idx), self.resume_rows(idx)
        if resume is None:
            return target.patched_logits(inputs, site, h)
        return target.patched_logits(inputs, site, h, resume=resume)

    def intervened(self) -> dict[str, torch.Tensor]:
        """Per variable, the rows that intervene on it (elsewhere its source is the base itself)."""
        if getattr(self, "_intervened", None) is None:
            sets = {v: torch.tensor([v in s for s in self.intervention_sets], device=self.set_index.device)
                    for v in self.h_sources}
            self._intervened = {v: m[self.set_index] for v, m in sets.items()}
        return self._intervened


@torch.no_grad()
def hidden_states(target: Target, inputs: Any, site: Site, batch_size: int = 8192,
                  resume: ResumeCache | None = None) -> torch.Tensor:
    """The hidden states at ``site``, ``batch_size`` rows at a time (read from ``resume`` where it holds them)."""
    n = _rows(inputs)
    parts = []
    for i in range(0, n, batch_size):
        rows = slice(i, i + batch_size)
        batch = index_inputs(inputs, rows)
        parts.append(target.hidden(batch, site) if resume is None else target.hidden(batch, site, resume=resume.rows(rows)))
    return torch.cat(parts) if parts else torch.zeros(0, target.width(site))


def prepare(
    target: Target,
    site: Site,
    task: Task,
    data: CounterfactualDataset,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    batch_size: int = 8192,
    progress: Callable[[Progress], None] | None = None,
    runtime: RuntimeSettings | None = None,
) -> PreparedPairs:
    """Encode a dataset and cache the hidden states of bases and sources at ``site``.

    Beside the base inputs the pairs carry whatever the target caches to resume from
    ``site`` (:meth:`Target.resume_cache`, e.g. an LM's residual stream after the site's
    block), within the ``runtime`` settings' cache budget (default: from the environment).
    After the bases and after each variable's sources, a :class:`~causalab.progress.Progress`
    goes to ``progress`` (default: :func:`causalab.progress.report`).

    Parameters
    ----------
    target : Target
        The frozen network.
    site : Site
        Where hidden states are read and patched.
    task : Task
        Encodes the pairs' inputs for the network and labels them.
    data : CounterfactualDataset
        The pairs (``task.counterfactuals(n, generator)``).
    device, dtype : optional
        Where and in which dtype the cached inputs and hidden states are kept.
    batch_size : int
        Rows per forward pass while caching.
    progress : callable, optional
        Receives a :class:`~causalab.progress.Progress` after each part.
    runtime : RuntimeSettings, optional
        The LM cache's budget and dtype, compilation (default: from the environment).

    Returns
    -------
    PreparedPairs
        The encoded pairs, their labels and the cached hidden states (``h_base``, and per
        variable the sources'), ready for :func:`fit_alignment` and :func:`evaluate`.

    Raises
    ------
    SiteError
        A site the target does not have.

    Examples
    --------
    >>> import torch, causalab as cl
    >>> task = cl.make_task("both_equality_relations")
    >>> target, site = cl.build_target(task, "oracle", 0), cl.Site(1)
    >>> data = task.counterfactuals(600, torch.Generator().manual_seed(0))
    >>> train, val = (cl.prepare(target, site, task, d) for d in data.split([400, 200]))
    >>> len(train), tuple(train.h_base.shape)
    (400, (400, 16))
    """
    if len(data) == 0:
        raise DataError(f"no pairs to prepare for {task.name!r} at {site}: the dataset is empty")
    emit, start, parts = progress or report, time.perf_counter(), 1 + len(data.sources)
    base_inputs = _finite(inputs_to(task.encode(data.base), device, dtype), task, "base inputs")
    resume = target.resume_cache(base_inputs, site, runtime)
    h_base = _finite(hidden_states(target, base_inputs, site, batch_size, resume), task, f"base hidden states at {site}")
    emit(Progress("caching hidden states", 1, parts, time.perf_counter() - start, f"{h_base.shape[0]} pairs"))
    h_sources = {}
    for var, src in data.sources.items():
        inputs = _finite(inputs_to(task.encode(src), device, dtype), task, f"source inputs of {var!r}")
        h_sources[var] = _finite(hidden_states(target, inputs, site, batch_size), task, f"{var!r} source hidden states at {site}")
        emit(Progress("caching hidden states", len(h_sources) + 1, parts, time.perf_counter() - start, f"{h_base.shape[0]} pairs"))
    labels = task.labels(data).to(device)
    return PreparedPairs(base_inputs, h_base, h_sources, labels, data.set_index.to(device), list(data.intervention_sets),
                         resume)


def _finite(values: Any, task: Task, what: str) -> Any:
    """``values`` (a tensor or a dict of them), checked finite: NaN inputs would otherwise pass silently."""
    tensors = values.items() if isinstance(values, dict) else [("", values)]
    for key, v in tensors:
        if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all()):
            bad = ~torch.isfinite(v.reshape(v.shape[0], -1)).all(1) if v.dim() else torch.tensor([True])
            rows = torch.nonzero(bad).flatten()[:5].tolist()
            where = f" ({key!r})" if key else ""
            raise DataError(f"{task.name!r}: the {what}{where} are not finite (NaN or inf) in rows {rows}; "
                            "check the task's encoding and the network (the alignment map is not involved yet)")
    return values


def patched_logits(
    target: Target, site: Site, phi: AlignmentMap, partition: Partition, pairs: PreparedPairs, idx: torch.Tensor | slice
) -> torch.Tensor:
    rows = {v: m[idx] for v, m in pairs.intervened().items()}
    h = interchange(phi, pairs.h_base[idx], {v: hs[idx] for v, hs in pairs.h_sources.items()}, partition, rows)
    return pairs.base_logits(target, site, idx, h)


@torch.no_grad()
def evaluate(
    target: Target,
    site: Site,
    phi: AlignmentMap,
    partition: Partition,
    task: Task,
    pairs: PreparedPairs,
    batch_size: int = 8192,
    with_loss: bool = False,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> IIAResult:
    """IIA: does the intervened network's output match the algorithm's counterfactual label?

    With ``with_loss`` the result also carries the mean counterfactual loss (``.loss``):
    the task's own, or ``loss_fn``.

    Parameters
    ----------
    target, site, phi, partition, task
        As for :func:`fit_alignment`.
    pairs : PreparedPairs
        The pairs to score (from :func:`prepare`).
    batch_size : int
        Rows per pass.
    with_loss : bool
        Also compute the mean counterfactual loss.
    loss_fn : callable, optional
        ``loss_fn(logits, labels)`` in place of the task's loss.

    Returns
    -------
    IIAResult
        ``iia``, the Wilson interval (``overall.interval``), and IIA per intervention set
        (``to_dict()["per_set"]``).

    Examples
    --------
    >>> import torch, causalab as cl
    >>> task = cl.make_task("both_equality_relations")
    >>> target, site = cl.build_target(task, "oracle", 0), cl.Site(1)   # V1 in neurons 0-7, V2 in 8-15
    >>> pairs = cl.prepare(target, site, task, task.counterfactuals(300, torch.Generator().manual_seed(0)))
    >>> partition = cl.Partition({"V1": range(8), "V2": range(8, 16)}, 16)
    >>> cl.evaluate(target, site, cl.make_alignment("identity", 16), partition, task, pairs).iia
    1.0
    """
    if len(pairs) == 0:
        raise DataError(f"no pairs to score {task.name!r} on: IIA of zero pairs is undefined")
    loss_fn = loss_fn or task.loss
    was_training = phi.training
    phi.eval()
    correct, loss = [], 0.0
    for i in range(0, len(pairs), batch_size):
        idx = slice(i, i + batch_size)
        with parametrize.cached():
            logits = patched_logits(target, site, phi, partition, pairs, idx)
        if not torch.isfinite(logits).all():
            raise FitError(
                f"the intervened network produced non-finite logits under {type(phi).__name__}; "
                "the alignment map's inverse is unstable on these hidden states (try float64 or a bounded map)"
            )
        correct.append(task.correct(logits, pairs.labels[idx]))
        if with_loss:
            loss += float(loss_fn(logits, pairs.labels[idx])) * logits.shape[0]
    phi.train(was_training)
    c = torch.cat(correct) if correct else torch.zeros(0, dtype=torch.bool)
    result = iia_from_correct(c, pairs.set_index, pairs.intervention_sets)
    if with_loss:
        result.loss = loss / max(len(pairs), 1)
    return result


def train_step(
    target: Target,
    site: Site,
    phi: AlignmentMap,
    partition: Partition,
    task: Task,
    pairs: PreparedPairs,
    idx: torch.Tensor | slice,
    opt: torch.optim.Optimizer,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """One optimiser step on the rows ``idx``; returns the (detached) loss. The fit loop's whole inner step.

    The loss is the task's own unless ``loss_fn`` is given. Parametrized weights (a
    rotation's orthogonal matrix) are computed once per step, not once per call of phi.
    """
    loss_fn = loss_fn or task.loss
    with parametrize.cached():
        loss = loss_fn(patched_logits(target, site, phi, partition, pairs, idx), pairs.labels[idx])
    if not torch.isfinite(loss):
        raise FitError(
            f"non-finite loss ({loss.item()}) fitting {type(phi).__name__}; "
            "lower the learning rate, use float64, or bound the map's scale"
        )
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


MONITORS = ("iia", "loss")
LR_SCHEDULES = ("constant", "cosine", "plateau", "reduce_on_plateau")
PLATEAU_ON = ("train_loss", "val_loss")
LOSSES = ("task", "pair")


def pair_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy between two tokens only: ``labels`` ``(B, 2)`` holds the expected token, then its competitor.

    IOI's labels are (expected name, other name): this is the paper's two-name loss, blind
    to every other token, where the full-vocabulary loss rewards raising both names.
    """
    if labels.dim() != 2 or labels.shape[1] != 2:
        raise FitError(f"loss 'pair' needs two token ids per row (expected, competitor), got labels of shape "
                       f"{tuple(labels.shape)}; use loss 'task' for this task")
    two = logits.gather(1, labels.long())
    return torch.nn.functional.cross_entropy(two, torch.zeros(len(two), dtype=torch.long, device=two.device))


@dataclass
class FitConfig:
    """Optimiser and stopping settings for :func:`fit_alignment`."""

    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-2
    patience: int = 3
    min_delta: float = 1e-4
    max_steps: int | None = None
    seed: int = 0
    # what early stopping watches on the validation pairs: "iia" (must rise by min_delta) or
    # "loss" (must fall by min_delta). On a network where the map first has to find any signal,
    # IIA sits at chance for many epochs while the loss already falls: "loss" keeps fitting.
    monitor: str = "iia"
    # the learning rate rises linearly over the first warmup_steps steps, then follows lr_schedule:
    # "constant"; "cosine" (to 0 at the last step: epochs x steps per epoch, or max_steps); "plateau"
    # (halved after every validation check in which the monitored score did not improve);
    # "reduce_on_plateau" (PyTorch's ReduceLROnPlateau: multiplied by plateau_factor once the
    # epoch's mean plateau_on loss has not improved for more than plateau_patience epochs)
    warmup_steps: int = 0
    lr_schedule: str = "constant"
    plateau_factor: float = 0.5
    plateau_patience: int = 10
    plateau_on: str = "train_loss"
    # validation checks: 0 = once per epoch (patience in epochs, the best map kept when the score
    # beats the best by min_delta); N = every N steps (patience in checks; the best map kept on any
    # improvement, the patience count reset only by one beyond min_delta, as the paper's code does)
    val_every: int = 0
    # "task": the task's own loss (full-vocabulary cross-entropy for IOI); "pair": cross-entropy
    # between the two label tokens only (labels (B, 2), see pair_loss)
    loss: str = "task"

    def __post_init__(self) -> None:
        """Every fitting setting checked here, once: a run's config holds its fitting fields as a
        ``FitConfig`` (``MeasureSettings.fit``), so a bad value fails with the same
        :class:`FitSettingError` naming the field, whichever way it came in."""
        for name in ("epochs", "batch_size", "patience"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise FitSettingError(name, f"must be a positive integer, got {v!r}")
        for name, what in (("warmup_steps", ""), ("val_every", " (0: once per epoch)"), ("plateau_patience", "")):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise FitSettingError(name, f"must be a non-negative integer{what}, got {v!r}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not 0 < self.lr < math.inf:
            raise FitSettingError("lr", f"must be a positive finite number, got {self.lr!r}")
        if isinstance(self.plateau_factor, bool) or not isinstance(self.plateau_factor, (int, float)) \
                or not 0 < self.plateau_factor < 1:
            raise FitSettingError("plateau_factor", "must lie strictly between 0 and 1 (the rate is multiplied by it), "
                                  f"got {self.plateau_factor!r}")
        if isinstance(self.min_delta, bool) or not isinstance(self.min_delta, (int, float)) \
                or not 0 <= self.min_delta < math.inf:
            raise FitSettingError("min_delta", "must be a non-negative number (the gain early stopping counts), "
                                  f"got {self.min_delta!r}")
        if self.monitor not in MONITORS:
            raise FitSettingError("monitor", f"must be one of {MONITORS} (what early stopping watches), got {self.monitor!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise FitSettingError("lr_schedule", f"must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.loss not in LOSSES:
            raise FitSettingError("loss", f"must be one of {LOSSES} (the task's own loss, or the two-token "
                                  f"cross-entropy), got {self.loss!r}")
        if self.plateau_on not in PLATEAU_ON:
            raise FitSettingError("plateau_on", f"must be one of {PLATEAU_ON} (the loss reduce_on_plateau watches), "
                                  f"got {self.plateau_on!r}")
        if self.max_steps is not None and (not isinstance(self.max_steps, int) or isinstance(self.max_steps, bool)
                                           or self.max_steps < 1):
            raise FitSettingError("max_steps", f"must be a positive integer or absent (no step budget), got {self.max_steps!r}")
        # lr = 1 and lr = 1.0 are the same fit (and the same run, with the same hash)
        self.lr, self.plateau_factor, self.min_delta = float(self.lr), float(self.plateau_factor), float(self.min_delta)

    def lr_at(self, step: int, total: int, plateau_scale: float = 1.0) -> float:
        """The learning rate of step ``step`` (0-based) of ``total``, after the plateau halvings so far."""
        lr = self.lr * plateau_scale
        if step < self.warmup_steps:
            return lr * (step + 1) / self.warmup_steps
        if self.lr_schedule == "cosine":
            span = max(total - self.warmup_steps, 1)
            return lr * 0.5 * (1 + math.cos(math.pi * min(step - self.warmup_steps, span) / span))
        return lr


@dataclass
class FitResult:
    best_val_iia: float
    epochs_run: int
    steps: int
    stopped_early: bool
    history: list[dict] = field(default_factory=list)


def adam(params: list[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
    """Adam, fused into one kernel per step where this torch build has it (CPU: torch >= 2.4)."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr)


def fit_by_search(
    target: Target, site: Site, phi: AlignmentMap, partition: Partition, task: Task, val: PreparedPairs,
    config: FitConfig,
) -> FitResult:
    """Greedy neuron search for a map that declares ``fitting = "search"`` (``identity:search=greedy``).

    Candidates are scored on the validation pairs by what early stopping watches
    (``config.monitor``: the loss, as the paper does, or IIA with the loss breaking
    ties; the loss is ``config.loss``'s); the chosen neurons are put at ``partition``'s
    coordinates (``phi.assign``).
    """
    phi.reset()
    loss_fn = pair_loss if config.loss == "pair" else task.loss

    def score(blocks: dict[str, list[int]]) -> tuple[tuple[float, ...], dict]:
        result = evaluate(target, site, phi, Partition(blocks, phi.width), task, val, with_loss=True, loss_fn=loss_fn)
        key = (-result.loss,) if config.monitor == "loss" else (result.iia, -result.loss)
        return key, {"val_iia": result.iia, "val_loss": result.loss}

    sizes = {v: len(b) for v, b in partition.blocks.items()}
    neurons, history = greedy_neuron_blocks(phi.width, sizes, score)
    phi.assign(partition, neurons)
    best = history[-1]["val_iia"] if history else evaluate(target, site, phi, partition, task, val).iia
    return FitResult(best, len(history), sum(h["candidates"] for h in history), False, history)


def fit_alignment(
    target: Target,
    site: Site,
    phi: AlignmentMap,
    partition: Partition,
    task: Task,
    train: PreparedPairs,
    val: PreparedPairs,
    config: FitConfig | None = None,
    progress: Callable[[dict], None] | None = None,
) -> FitResult:
    """Fit ``phi``'s parameters (only) by cross-entropy on counterfactual labels.

    The loss, warmup and learning-rate schedule come from ``config``; each epoch's
    record in ``history`` holds the training loss, IIA and loss on the validation pairs
    and on as many training pairs (``train_iia``, ``train_eval_loss``), and the learning
    rate: the learning curves. ``progress`` receives each epoch's record; a
    :class:`~causalab.progress.Progress` (task ``fitting``; an early stop ends it before
    ``total``) goes to :func:`causalab.progress.report`.
    The map's ``fit_statistics`` (a fitted standardisation; a no-op by default) first
    gets the training base hidden states; a map declaring ``fitting = "search"`` is
    fitted by :func:`fit_by_search` instead of gradient steps. Early stopping on validation IIA (or loss, with
    ``monitor="loss"``) restores the best map. A non-finite loss raises
    :class:`FitError`; so does a network whose weights changed during the fit.

    Parameters
    ----------
    target : Target
        The frozen network (its weights are checked unchanged after the fit).
    site : Site
        The site the pairs were prepared at.
    phi : AlignmentMap
        The map to fit, in place.
    partition : Partition
        Which of ``phi``'s coordinates each variable owns.
    task : Task
        Its loss and correctness test score the intervened outputs.
    train, val : PreparedPairs
        Fitting and validation pairs from :func:`prepare`.
    config : FitConfig, optional
        Epochs, batch size, learning rate and its schedule, early stopping, loss.
    progress : callable, optional
        Receives each epoch's (or check's) record.

    Returns
    -------
    FitResult
        ``history`` (one record per epoch or check: losses, IIA, learning rate),
        ``epochs_run``, ``steps``, ``stopped_early``, ``best_val_iia``.

    Raises
    ------
    FitError
        A non-finite loss, a network whose weights changed, a map declaring an unknown way
        of fitting.
    PartitionError
        A partition that does not fit the map.

    Examples
    --------
    >>> import torch, causalab as cl
    >>> task = cl.make_task("both_equality_relations")
    >>> target, site = cl.build_target(task, "oracle", 0), cl.Site(1)
    >>> data = task.counterfactuals(600, torch.Generator().manual_seed(0))
    >>> train, val = (cl.prepare(target, site, task, d) for d in data.split([400, 200]))
    >>> _ = torch.manual_seed(0)
    >>> phi = cl.make_alignment("rotation", 16)
    >>> partition = cl.Partition.contiguous(task.variables, size=8, width=16)
    >>> fit = cl.fit_alignment(target, site, phi, partition, task, train, val, cl.FitConfig(epochs=2, batch_size=100))
    >>> fit.epochs_run, sorted(fit.history[-1])[:4]
    (2, ['epoch', 'lr', 'steps', 'train_eval_loss'])
    """
    config = config or FitConfig()
    if len(train) == 0:
        raise DataError(f"no training pairs to fit {type(phi).__name__} on for {task.name!r}")
    partition.check_fits(phi)
    phi.fit_statistics(train.h_base)  # e.g. a standardisation in front of a non-linear map; a no-op by default
    before = target.fingerprint()
    if phi.constructed:  # Theorem 1's map is built from every pair it is scored on, which fit_alignment does not have
        raise FitError(f"{type(phi).__name__} is constructed, not fitted: build it with causalab.construct_alignment "
                       "(measure, run_experiment and `causalab run` do so with the train, validation and test pairs)")
    if phi.fitting not in FITTINGS:
        raise FitError(f"{type(phi).__name__} declares fitting={phi.fitting!r}; AlignmentMap.fitting is one of {FITTINGS}")
    if phi.fitting == "search":  # a map fitted by searching neurons, not by gradients
        return fit_by_search(target, site, phi, partition, task, val, config)
    params = [p for p in phi.parameters() if p.requires_grad]
    if not params:  # identity and other fixed maps: nothing to fit
        iia = evaluate(target, site, phi, partition, task, val).iia
        return FitResult(iia, 0, 0, False, [{"epoch": 0, "val_iia": iia}])
    opt = adam(params, config.lr)
    gen = torch.Generator().manual_seed(config.seed)
    by_loss = config.monitor == "loss"
    loss_fn = pair_loss if config.loss == "pair" else task.loss
    # learning curves: IIA and loss per epoch on the validation pairs and on as many training pairs
    train_probe = train.subset(slice(0, max(1, min(len(train), len(val)))))
    per_epoch = math.ceil(len(train) / config.batch_size)
    total_steps = config.epochs * per_epoch if config.max_steps is None else min(config.max_steps, config.epochs * per_epoch)
    scheduled = config.warmup_steps > 0 or config.lr_schedule != "constant"
    plateau_scale = 1.0

    def score() -> tuple[dict, float]:
        """(this epoch's curve points, what early stopping maximises)."""
        result = evaluate(target, site, phi, partition, task, val, with_loss=True, loss_fn=loss_fn)
        on_train = evaluate(target, site, phi, partition, task, train_probe, with_loss=True, loss_fn=loss_fn)
        points = {"val_iia": result.iia, "val_loss": result.loss, "train_iia": on_train.iia,
                  "train_eval_loss": on_train.loss}
        return points, (-result.loss if by_loss else result.iia)

    points, best_score = score()
    best_iia = points["val_iia"]
    best_state = copy.deepcopy(phi.state_dict())
    history = [{"epoch": 0, "steps": 0, **points, "lr": config.lr_at(0, total_steps) if scheduled else config.lr}]
    by_steps = config.val_every > 0
    on_plateau = ReduceOnPlateau(config.plateau_factor, config.plateau_patience) \
        if config.lr_schedule == "reduce_on_plateau" else None
    bad, steps, stopped, gate = 0, 0, False, best_score
    epoch, start, lr = 0, time.perf_counter(), config.lr
    since = [0.0, 0]  # training loss summed and rows counted since the last check

    def check(record: dict) -> bool:
        """Score, record, keep the best map; True when early stopping ends the fit."""
        nonlocal best_iia, best_score, best_state, bad, gate, plateau_scale
        points, val_score = score()
        record.update(train_loss=float(since[0]) / max(since[1], 1), **points, steps=steps, lr=lr)
        since[:] = [0.0, 0]
        history.append(record)
        if progress is not None:
            progress(record)
        improved = val_score > best_score + config.min_delta
        if by_steps:  # the paper's rule: keep any better map; only a gain beyond min_delta resets patience
            if val_score > best_score:
                best_iia, best_score, best_state = points["val_iia"], val_score, copy.deepcopy(phi.state_dict())
            improved = val_score > gate + config.min_delta
            gate = val_score if improved else gate
        elif improved:
            best_iia, best_score, best_state = points["val_iia"], val_score, copy.deepcopy(phi.state_dict())
        bad = 0 if improved else bad + 1
        if not improved and config.lr_schedule == "plateau":
            plateau_scale *= 0.5
        return bad >= config.patience

    for epoch in range(1, config.epochs + 1):
        phi.train()
        perm = torch.randperm(len(train), generator=gen).to(train.h_base.device)
        epoch_loss, epoch_rows = 0.0, 0
        for i in range(0, len(train), config.batch_size):
            idx = perm[i : i + config.batch_size]
            if scheduled:
                scale = plateau_scale * (on_plateau.scale if on_plateau is not None else 1.0)
                lr = config.lr_at(steps, total_steps, scale)
                for group in opt.param_groups:
                    group["lr"] = lr
            try:
                loss = train_step(target, site, phi, partition, task, train, idx, opt, loss_fn)
            except FitError as exc:
                raise FitError(f"{exc} (epoch {epoch}, step {steps})") from None
            steps += 1
            weighted = loss.double() * len(idx)  # a tensor: no per-step conversion to a Python float
            epoch_loss, epoch_rows = epoch_loss + weighted, epoch_rows + len(idx)
            since[0], since[1] = since[0] + weighted, since[1] + len(idx)
            last = config.max_steps is not None and steps >= config.max_steps
            if by_steps and (steps % config.val_every == 0 or last):
                stopped = check({"epoch": epoch})
                phi.train()
                if stopped:
                    break
            if last:
                break
        if not by_steps:
            stopped = check({"epoch": epoch})
        if on_plateau is not None:
            watched = float(epoch_loss) / max(epoch_rows, 1) if config.plateau_on == "train_loss" \
                else history[-1]["val_loss"]
            on_plateau.step(watched)
        report(Progress("fitting", epoch, config.epochs, time.perf_counter() - start,
                        f"val iia {history[-1]['val_iia']:.3f}"))
        if stopped or (config.max_steps is not None and steps >= config.max_steps):
            break
    if by_steps and history[-1]["steps"] != steps:  # the steps after the last check count too
        check({"epoch": epoch})
    phi.load_state_dict(best_state)
    after = target.fingerprint()
    if before.shape != after.shape or not torch.equal(before, after):
        raise FitError("the network's weights changed while fitting the alignment map; the target must stay frozen")
    return FitResult(best_iia, epoch, steps, stopped, history)
