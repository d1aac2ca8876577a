"""MLP targets: the paper's classifier (3 x [Linear(16,16)+ReLU], Linear(16,2)), trained or random."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from causalab.causal.task import Task
from causalab.errors import ConfigError, SiteError
from causalab.files import cache_dir, file_lock
from causalab.neural.seeding import seeded
from causalab.neural.target import Site, Target


def relu_mlp(d_in: int, hidden: int, d_out: int, depth: int) -> nn.Sequential:
    """``d_in -> hidden (-> hidden ...) -> d_out`` with ``depth`` ReLU hidden layers."""
    layers: list[nn.Module] = []
    width = d_in
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, d_out))
    return nn.Sequential(*layers)


class MLPTarget(Target):
    """``depth`` hidden layers of ``Linear + ReLU`` and a linear read-out. Sites: hidden layers 1..depth."""

    def __init__(self, input_width: int, hidden: int = 16, depth: int = 3, n_classes: int = 2) -> None:
        super().__init__()
        self.config = {"input_width": input_width, "hidden": hidden, "depth": depth, "n_classes": n_classes}
        self.net = relu_mlp(input_width, hidden, n_classes, depth)
        self.depth = depth
        self.hidden_width = hidden

    def sites(self) -> list[Site]:
        return [Site(k) for k in range(1, self.depth + 1)]

    def check_site(self, site: Site) -> Site:
        if not isinstance(site, Site):
            site = Site(int(site))
        if not 1 <= site.layer <= self.depth:
            raise SiteError(f"MLP has hidden layers 1..{self.depth}; layer {site.layer} does not exist", "layer")
        if site.position is not None:
            raise SiteError(f"an MLP has no token positions; site {site} names position {site.position!r}", "position")
        if site.component != "block_output":
            raise SiteError(f"unknown component {site.component!r}: an MLP's sites are its hidden layers "
                            "(component 'block_output')", "component")
        return site

    def width(self, site: Site) -> int:
        self.check_site(site)
        return self.hidden_width

    def hidden(self, inputs: torch.Tensor, site: Site) -> torch.Tensor:
        site = self.check_site(site)
        return self.net[: 2 * site.layer](inputs)

    def patched_logits(self, inputs: Any, site: Site, h: torch.Tensor) -> torch.Tensor:
        """The layers above the site only: an MLP's upper layers see nothing but ``h``."""
        site = self.check_site(site)
        return self.net[2 * site.layer :](h)

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.net(inputs)

    # --- persistence -------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        meta = {k: str(v) for k, v in self.config.items()}
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(path), metadata=meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> MLPTarget:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        try:
            config = {k: int(meta[k]) for k in ("input_width", "hidden", "depth", "n_classes")}
        except KeyError as exc:
            raise ConfigError(f"{path}: not a causalab MLP checkpoint (missing metadata {exc})") from None
        model = cls(**config)
        model.load_state_dict(load_file(str(path)))
        return model.freeze()


def _input_width(task: Task) -> int:
    if task.input_width is None:
        raise ConfigError(f"task {task.name!r} sets no input_width, so it has no MLP targets")
    return task.input_width


def _hidden(task: Task, hidden: int | None) -> int:
    """The hidden width: given, else the task's ``hidden_width``, else the input width, as in the paper."""
    if hidden is not None:
        return hidden
    return task.hidden_width if task.hidden_width is not None else _input_width(task)


def random_mlp(task: Task, seed: int, hidden: int | None = None, depth: int = 3, dtype: torch.dtype = torch.float32) -> MLPTarget:
    """The task's MLP at random initialisation (PyTorch's default init) from ``seed``; the caller's
    random stream is left where it was (:func:`~causalab.neural.seeding.seeded`).

    Parameters
    ----------
    task : Task
        Sets the input width (``task.input_width``), the hidden width (``task.hidden_width``,
        unless ``hidden``) and the number of classes.
    seed : int
        The initialisation's seed.
    hidden : int, optional
        The hidden width.
    depth : int
        Hidden layers (each ``Linear + ReLU``), the sites ``Site(1)`` .. ``Site(depth)``.
    dtype : torch.dtype
        The weights' dtype.

    Returns
    -------
    MLPTarget
        The frozen network.

    Examples
    --------
    >>> import causalab as cl
    >>> net = cl.random_mlp(cl.make_task("both_equality_relations"), seed=0)
    >>> net.depth, net.width(cl.Site(1)), len(net.sites())
    (3, 16, 3)
    """
    with seeded(seed):
        model = MLPTarget(_input_width(task), _hidden(task, hidden), depth, task.n_classes).to(dtype)
    return model.freeze()


def accuracy(model: MLPTarget, x: torch.Tensor, y: torch.Tensor, batch_size: int = 65536) -> float:
    with torch.no_grad():
        correct = sum(
            int((model.logits(x[i : i + batch_size]).argmax(-1) == y[i : i + batch_size]).sum())
            for i in range(0, len(x), batch_size)
        )
    return correct / max(len(x), 1)


def train_mlp(
    task: Task,
    seed: int,
    *,
    hidden: int | None = None,
    depth: int = 3,
    samples: int = 2_097_152,
    epoch_size: int = 131_072,
    batch_size: int = 1024,
    lr: float = 1e-3,
    patience: int = 2,
    n_test: int = 20_000,
    checkpoints: Sequence[int] = (),
) -> tuple[MLPTarget, dict]:
    """Train the task's MLP on the algorithm's own input-output pairs (Adam, early stopping on validation accuracy).

    This is what ``target="trained"`` does for any task with an ``input_width``, a user's own
    included (through :func:`trained_mlp`, which caches the result per ``task.family``, seed and
    options); call it directly for a network that is not cached, or to read the training report.
    Each epoch draws ``epoch_size`` fresh inputs from the algorithm (:meth:`Task.factual`: the
    task's encoding of the inputs and its labels of the outputs) until ``samples`` are seen or
    validation accuracy has not improved for ``patience`` epochs.

    Parameters
    ----------
    task : the task whose algorithm labels the data; ``task.input_width`` sets the input,
        ``task.n_classes`` the output.
    seed : seeds the initialisation and the data.
    hidden, depth : ``depth`` hidden layers of width ``hidden`` (default ``task.hidden_width``,
        else the input width, as in the paper), each Linear + ReLU.
    samples, epoch_size, batch_size, lr, patience : the training budget and rule.
    n_test : the size of the validation set and of the test set.
    checkpoints : sample counts at which copies of the weights are kept
        (``report["checkpoints"]``), for training-progression experiments.

    Returns
    -------
    The frozen model with the best validation accuracy, and a report: ``val_accuracy``,
    ``test_accuracy``, ``samples_seen``, ``history`` (per epoch) and ``checkpoints``.

    Raises
    ------
    ConfigError : the task sets no ``input_width`` (it has no MLP).

    Examples
    --------
    >>> import causalab as cl
    >>> task = cl.make_task("left_equality_relation")
    >>> model, report = cl.train_mlp(task, seed=0, samples=4096, epoch_size=2048, n_test=500)
    >>> model.width(cl.Site(layer=1)), report["samples_seen"], 0.0 <= report["test_accuracy"] <= 1.0
    (16, 4096, True)

    See also
    --------
    trained_mlp : the cached network ``target="trained"`` builds; random_mlp : the same
    architecture untrained.
    """
    gen = torch.Generator().manual_seed(10_000 + seed)
    with seeded(seed):  # the initialisation; training draws from ``gen`` only
        model = MLPTarget(_input_width(task), _hidden(task, hidden), depth, task.n_classes)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    x_val, y_val = task.factual(n_test, gen)
    x_test, y_test = task.factual(n_test, gen)
    best, best_acc, bad, seen = None, -1.0, 0, 0
    kept: dict[int, dict] = {}
    pending = sorted(checkpoints)
    if pending and pending[0] == 0:
        kept[0] = {k: v.clone() for k, v in model.state_dict().items()}
        pending.pop(0)
    history = []
    while seen < samples:
        x, y = task.factual(min(epoch_size, samples - seen), gen)
        model.train()
        for i in range(0, len(x), batch_size):
            opt.zero_grad()
            loss = loss_fn(model.logits(x[i : i + batch_size]), y[i : i + batch_size])
            loss.backward()
            opt.step()
            seen += len(x[i : i + batch_size])
            while pending and seen >= pending[0]:
                kept[pending.pop(0)] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.eval()
        acc = accuracy(model, x_val, y_val)
        history.append({"samples": seen, "val_accuracy": acc})
        if acc > best_acc:
            best, best_acc, bad = {k: v.clone() for k, v in model.state_dict().items()}, acc, 0
        else:
            bad += 1
            if bad >= patience:
                break
    model.load_state_dict(best)
    model.freeze()
    report = {"val_accuracy": best_acc, "test_accuracy": accuracy(model, x_test, y_test), "samples_seen": seen,
              "history": history, "checkpoints": kept}
    return model, report


def trained_mlp(
    task: Task,
    seed: int,
    *,
    cache: str | os.PathLike | None = None,
    checkpoint: int | None = None,
    **train_kwargs: Any,
) -> MLPTarget:
    """The task family's trained MLP for ``seed``, trained once and cached as safetensors.

    ``checkpoint`` (a count of training samples) gives instead the copy of the same
    training run after that many samples (0 is its initialisation), for
    training-progression experiments. The run that makes one checkpoint saves every
    point of its schedule (0, each ``epoch_size`` samples, and ``checkpoint``), so the
    other checkpoints cost nothing; concurrent workers wait for one run (a file lock).

    Parameters
    ----------
    task : Task
        The task whose input-output behaviour the MLP learns (one network per ``task.family``).
    seed : int
        The network's seed (initialisation and training data).
    cache : str or os.PathLike, optional
        Where trained networks are kept (default ``$CAUSALAB_CACHE``, else ``~/.cache/causalab``).
    checkpoint : int, optional
        Samples seen: the same run's network after that many.
    **train_kwargs
        :func:`train_mlp`'s options (``samples``, ``hidden``, ``depth``, ``lr``, ...); they
        key the cache.

    Returns
    -------
    MLPTarget
        The frozen network.

    Examples
    --------
    >>> import tempfile, torch, causalab as cl
    >>> task, folder = cl.make_task("both_equality_relations"), tempfile.mkdtemp()
    >>> net = cl.trained_mlp(task, 0, cache=folder, samples=4096, epoch_size=2048)
    >>> again = cl.trained_mlp(task, 0, cache=folder, samples=4096, epoch_size=2048)   # read from the cache
    >>> all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), again.state_dict().values()))
    True
    """
    samples = train_kwargs.get("samples", _default("samples"))
    if checkpoint is not None and (isinstance(checkpoint, bool) or not isinstance(checkpoint, int)
                                   or not 0 <= checkpoint <= samples):
        raise ConfigError(f"target_options.checkpoint must be a sample count in 0..{samples} (target_options.samples), "
                          f"got {checkpoint!r}")
    folder = Path(cache) if cache is not None else cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    tag = "-".join(f"{k}{v}" for k, v in sorted(train_kwargs.items()))
    stem = f"mlp-{task.family}-seed{seed}{'-' + tag if tag else ''}"
    path = _checkpoint_path(folder, stem, checkpoint)
    if path.exists():
        return MLPTarget.load(path)
    if checkpoint is None:
        model, _ = train_mlp(task, seed, **train_kwargs)
        _save(model, path)
        return model
    with file_lock(folder / f"{stem}.lock"):
        if path.exists():  # another worker trained it while this one waited
            return MLPTarget.load(path)
        epoch = train_kwargs.get("epoch_size", _default("epoch_size"))
        schedule = sorted({0, checkpoint, *range(epoch, samples + 1, epoch), *train_kwargs.pop("checkpoints", ())})
        model, report = train_mlp(task, seed, checkpoints=schedule, **train_kwargs)
        for k, state in report["checkpoints"].items():
            copy = MLPTarget(**model.config)
            copy.load_state_dict(state)
            _save(copy.freeze(), _checkpoint_path(folder, stem, k))
        final = _checkpoint_path(folder, stem, None)
        if not final.exists():
            _save(model, final)
    if not path.exists():
        raise ConfigError(
            f"target_options.checkpoint {checkpoint}: training stopped early after {report['samples_seen']} samples; "
            "raise target_options.patience (or lower the checkpoint) to reach it"
        )
    return MLPTarget.load(path)


def _default(name: str) -> Any:
    import inspect

    return inspect.signature(train_mlp).parameters[name].default


def _checkpoint_path(folder: Path, stem: str, checkpoint: int | None) -> Path:
    return folder / (f"{stem}.safetensors" if checkpoint is None else f"{stem}-at{checkpoint}.safetensors")


def _save(model: MLPTarget, path: Path) -> None:
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    model.save(tmp)
    os.replace(tmp, path)
