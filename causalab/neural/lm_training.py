"""Training a small causal LM from scratch on generated text, keeping checkpoints along the way.

Checkpoints are ``save_pretrained`` folders (safetensors weights, config, tokenizer)
named ``step{N}`` under one run folder, so any of them loads with
:func:`causalab.neural.lm.from_pretrained` and a training-progression experiment
can walk them in order.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from causalab.errors import FitError
from causalab.progress import Progress
from causalab.progress import report as report_progress

# sample(n, generator) -> {"input_ids": (n, T), "attention_mask": (n, T)}; right-padded token ids
BatchSampler = Callable[[int, torch.Generator], dict]
# evaluate(model) -> accuracy in [0, 1]
Evaluator = Callable[[torch.nn.Module], float]


def lm_loss(model: torch.nn.Module, batch: dict, answer_weight: float = 0.0) -> torch.Tensor:
    """Next-token cross-entropy over real (unpadded) tokens; ``answer_weight`` adds weight to each row's last token."""
    ids, mask = batch["input_ids"], batch["attention_mask"]
    logits = model(input_ids=ids, use_cache=False).logits[:, :-1]
    target, keep = ids[:, 1:], mask[:, 1:].to(logits.dtype)
    if answer_weight:
        last = mask.long().sum(1) - 2  # index (in the shifted frame) of the final token
        keep = keep.clone()
        keep[torch.arange(ids.shape[0]), last] += answer_weight
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="none")
    return (ce * keep.reshape(-1)).sum() / keep.sum()


def train_causal_lm(
    model: torch.nn.Module,
    sample: BatchSampler,
    out_dir: str | os.PathLike,
    *,
    tokenizer: Any = None,
    steps: int = 3000,
    batch_size: int = 64,
    lr: float = 3e-3,
    warmup: int = 100,
    weight_decay: float = 0.01,
    answer_weight: float = 0.0,
    checkpoints: Sequence[int] = (0, 250, 500, 1000),
    evaluate: Evaluator | None = None,
    eval_every: int = 250,
    target_accuracy: float | None = None,
    seed: int = 0,
    progress: Callable[[dict], None] | None = None,
) -> dict:
    """AdamW with warm-up and cosine decay; saves ``step{N}`` checkpoints and ``final``.

    Stops early once ``evaluate(model) >= target_accuracy`` (checked every
    ``eval_every`` steps). ``progress`` receives each evaluation's record; every 5% of
    the steps a :class:`causalab.progress.Progress` (task ``LM training``, with the loss)
    goes to :func:`causalab.progress.report`. Returns a report with the history and wall time.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, betas=(0.9, 0.98))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + torch.cos(torch.tensor(torch.pi * (step - warmup) / max(steps - warmup, 1))).item())

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    wanted = set(checkpoints)
    saved: list[int] = []

    def save(name: str) -> None:
        folder = out / name
        tmp = out / f".{name}.tmp{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        with contextlib.redirect_stderr(io.StringIO()):  # transformers draws a progress bar; library code stays quiet
            model.save_pretrained(str(tmp))
            if tokenizer is not None:
                tokenizer.save_pretrained(str(tmp))
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)

    history: list[dict] = []
    start = time.perf_counter()
    step, accuracy = 0, None
    every = max(1, steps // 20)
    model.train()
    while True:
        if step in wanted:
            model.eval()
            save(f"step{step}")
            saved.append(step)
            model.train()
        if evaluate is not None and step > 0 and (step % eval_every == 0 or step == steps):
            model.eval()
            with torch.no_grad():
                accuracy = float(evaluate(model))
            model.train()
            record = {"step": step, "accuracy": accuracy, "seconds": time.perf_counter() - start}
            history.append(record)
            if progress is not None:
                progress(record)
            if target_accuracy is not None and accuracy >= target_accuracy:
                break
        if step >= steps:
            break
        loss = lm_loss(model, sample(batch_size, g), answer_weight)
        if not torch.isfinite(loss):
            raise FitError(f"non-finite language-model loss at step {step}; lower the learning rate (now {lr})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        step += 1
        if step % every == 0 or step == steps:
            known = f", accuracy {accuracy:.3f}" if accuracy is not None else ""
            report_progress(Progress("LM training", step, steps, time.perf_counter() - start, f"loss {loss.item():.3f}{known}"))
    model.eval()
    save("final")
    report = {"steps": step, "accuracy": accuracy, "seconds": time.perf_counter() - start,
              "checkpoints": saved, "history": history}
    (out / "final" / "training_report.json").write_text(json.dumps(report, indent=1))
    return report
