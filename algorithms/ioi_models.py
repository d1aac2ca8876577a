"""The language models of the IOI task family: random Pythia-like models, the IOI models trained here
(recipes per size, checkpoints on disk) and saved or hub models.

The task itself (algorithms, encoding, scoring) is :mod:`algorithms.ioi`; its tasks name
:func:`build_target` as their target builder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from algorithms import ioi_data as data
from causalab.causal.algorithm import Values
from causalab.errors import ConfigError, ConfigFieldError
from causalab.files import cache_dir, file_lock


def tokenizer():
    from causalab.neural.wordlevel import word_level_tokenizer

    return word_level_tokenizer(data.VOCAB)


def with_answer(values: Values) -> dict[str, torch.Tensor]:
    """Training text: the sentence followed by its indirect object (right-padded, one column longer)."""
    enc = data.token_ids(values)
    ids = F.pad(enc["input_ids"], (0, 1), value=data.PAD)
    rows = torch.arange(ids.shape[0])
    ids[rows, enc["pos_last"] + 1] = data.NAME_TOKENS[data.indirect_object(values)]
    mask = F.pad(enc["attention_mask"], (0, 1))
    mask[rows, enc["pos_last"] + 1] = 1
    return {"input_ids": ids, "attention_mask": mask}


def ioi_accuracy(target, n: int = 2000, seed: int = 12345, top1: bool = False) -> float:
    """Held-out factual IOI accuracy: IO's logit beats S's (or, with ``top1``, IO is the argmax)."""
    g = torch.Generator().manual_seed(seed)
    values = data.sample_sentences(n, g)
    io = data.NAME_TOKENS[data.indirect_object(values)]
    s = data.NAME_TOKENS[values["s2"]]
    with torch.no_grad():
        logits = target.logits(data.token_ids(values))
    if top1:
        return float((logits.argmax(-1) == io).float().mean())
    return float((logits.gather(1, io[:, None]) > logits.gather(1, s[:, None])).float().mean())


# Training recipes per model size (causalab.neural.lm.SIZES). "small" (2 layers) is the default;
# "4x128" (4 layers, width 128) has middle layers that carry the ABAB/ABBA pattern.
TRAIN_RECIPES: dict[str, dict[str, Any]] = {
    "small": dict(steps=1500, batch_size=64, lr=3e-3, answer_weight=4.0,
                  checkpoints=(0, 100, 200, 300, 400, 500, 1000), target_accuracy=None, eval_every=100),
    "4x128": dict(steps=3000, batch_size=64, lr=1e-3, answer_weight=4.0,
                  checkpoints=(0, 250, 500, 1000, 2000), target_accuracy=None, eval_every=250),
}
DEFAULT_SIZE = "small"
TRAIN_RECIPE = dict(size=DEFAULT_SIZE, **TRAIN_RECIPES[DEFAULT_SIZE])


def trained_lm_dir(seed: int = 0, cache: str | os.PathLike | None = None, size: str = DEFAULT_SIZE) -> Path:
    """The run folder of the IOI model of ``size`` trained from ``seed`` (one folder per size and seed)."""
    return (Path(cache) if cache is not None else cache_dir()) / f"ioi-gpt_neox-{size}-seed{seed}"


def train_ioi_lm(seed: int = 0, cache: str | os.PathLike | None = None, progress=None, size: str = DEFAULT_SIZE,
                 **overrides: Any) -> dict:
    """Train a GPT-NeoX of ``size`` on IOI text from scratch; checkpoints go to :func:`trained_lm_dir`.

    Sizes with a recipe in :data:`TRAIN_RECIPES` use it; other sizes of
    :data:`causalab.neural.lm.SIZES` use the default size's recipe. ``overrides``
    replace recipe entries (steps, lr, checkpoints, ...).
    """
    from transformers import AutoModelForCausalLM

    from causalab.neural.lm import SIZES, LMTarget, lm_config
    from causalab.neural.lm_training import train_causal_lm
    from causalab.neural.seeding import seeded

    if size not in SIZES:
        raise ConfigError(f"unknown LM size {size!r} for the trained IOI model; known sizes: {', '.join(SIZES)}")
    recipe = {**TRAIN_RECIPES.get(size, TRAIN_RECIPES[DEFAULT_SIZE]), **overrides}
    with seeded(seed):  # the initialisation; training draws from its own generator
        model = AutoModelForCausalLM.from_config(lm_config("gpt_neox", size, vocab_size=len(data.VOCAB)))
    target = LMTarget(model)
    return train_causal_lm(
        model, lambda n, g: with_answer(data.sample_sentences(n, g)), trained_lm_dir(seed, cache, size),
        tokenizer=tokenizer(), evaluate=lambda m: ioi_accuracy(target), seed=seed, progress=progress, **recipe,
    )


def build_target(kind: str, seed: int, *, dtype: torch.dtype = torch.float32, dry: bool = False, engine: str = "hook",
                 **options: Any):
    """``random`` (size, arch, init, vocab_size), ``trained`` (size, step: int or "final"; cache) or ``pretrained`` (path, revision).

    ``dry`` builds a network of the architecture without training one: for ``trained``,
    the random initialisation of its size (a trained model of that size is trained
    and cached on first use otherwise).
    """
    from causalab.neural.build import check_target_options
    from causalab.neural.lm import ARCHS, ENGINES, SIZES, from_pretrained, random_lm
    from causalab.neural.pythia_init import INITS

    # every option checked by name (the builders' own keyword parameters) and value, before anything is built
    if kind in ("random", "trained", "pretrained"):
        builder, skip, extra = {
            "random": (random_lm, ("tokenizer", "path_or_name"), {"vocab_size": _vocab_size}),
            "trained": (train_ioi_lm, ("progress",), {"step": _step, "engine": None}),
            "pretrained": (from_pretrained, ("path_or_name",), {"path": _path, "revision": _revision}),
        }[kind]
        check_target_options({**options, "engine": engine}, builder, target=f"IOI's {kind!r} language model",
                             skip=skip, extra=extra, choices={"size": ("LM size", tuple(SIZES)),
                                                              "arch": ("LM architecture", ARCHS),
                                                              "init": ("init", INITS), "engine": ("engine", ENGINES)})
    if kind == "random":
        vocab = options.pop("vocab_size", len(data.VOCAB))
        return random_lm(vocab, tokenizer=tokenizer(), seed=seed, dtype=dtype, engine=engine, **options)
    if kind == "trained":
        step = options.pop("step", "final")
        cache = options.pop("cache", None)
        size = options.pop("size", DEFAULT_SIZE)
        if dry:
            return random_lm(len(data.VOCAB), tokenizer=tokenizer(), seed=seed, dtype=dtype, engine=engine, size=size)
        folder = trained_lm_dir(seed, cache, size)
        folder.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(folder.parent / f"{folder.name}.lock"):  # concurrent workers wait for one training run
            if not (folder / "final").exists():
                train_ioi_lm(seed, cache, size=size)
        ckpt = folder / ("final" if step == "final" else f"step{int(step)}")
        if not ckpt.exists():
            have = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
            raise ConfigError(f"no checkpoint {ckpt.name!r} of the trained IOI model of size {size!r}; available: {have}")
        return from_pretrained(ckpt, dtype=dtype, engine=engine)
    if kind == "pretrained":
        if "path" not in options:
            raise ConfigError("target 'pretrained' needs target_options path (a local folder or hub name)")
        return from_pretrained(options.pop("path"), options.pop("revision", None), dtype=dtype, engine=engine, **options)
    raise ConfigError(f"unknown target kind {kind!r} for IOI; use 'random', 'trained' or 'pretrained'")


def _vocab_size(name: str, vocab: Any) -> None:
    if isinstance(vocab, bool) or not isinstance(vocab, int) or vocab < len(data.VOCAB):
        raise ConfigFieldError(f"target_options.{name}", f"must be an integer >= {len(data.VOCAB)} (the IOI words; ids "
                               f"beyond them are never read, as in a model with a larger vocabulary), got {vocab!r}")


def _step(name: str, step: Any) -> None:
    if step != "final" and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
        raise ConfigFieldError(f"target_options.{name}", f"must be a training step (a non-negative integer) or "
                                                         f"'final', got {step!r}")


def _path(name: str, path: Any) -> None:
    if not isinstance(path, str) or not path.strip():
        raise ConfigFieldError(f"target_options.{name}", f"must be a local folder or a hub name, got {path!r}")


def _revision(name: str, revision: Any) -> None:
    if revision is not None and (not isinstance(revision, str) or not revision.strip()):
        raise ConfigFieldError(f"target_options.{name}", f"must be a hub revision (a branch, tag or commit such as "
                                                         f"'step0'), got {revision!r}")
