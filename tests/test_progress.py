"""Progress where people look: lines with elapsed and remaining time when stderr is not a terminal."""

from __future__ import annotations

import doctest
import io
import re
import subprocess
import sys
import textwrap

import pytest
import torch

import causalab.progress
from causalab.cli.progress import RunProgress, StepLines, clock
from causalab.experiments import ExperimentConfig, run_experiment
from causalab.progress import Progress, listen, report

torch.set_num_threads(1)
TINY = {"n_train": 128, "n_val": 64, "n_test": 128, "epochs": 1, "batch_size": 64}
RUN_LINE = re.compile(r"^(?P<desc>\S+): (?P<done>\d+)/(?P<total>\d+) runs \((?P<pct>\d+)%\) in (?P<m>\d+):(?P<s>\d\d)"
                      r"(?P<left>, ~\d+:\d\d left)?; last: (?P<note>.*)$")


def test_the_module_example_runs():
    assert doctest.testmod(causalab.progress).failed == 0


def test_clock():
    assert [clock(s) for s in (0, 59.6, 75, 3725)] == ["0:00", "1:00", "1:15", "1:02:05"]


def test_sweep_prints_one_line_per_finished_run_into_a_pipe(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text(textwrap.dedent(f"""
        [base]
        algorithm = "both_equality_relations"
        target = "oracle"
        {chr(10).join(f"{k} = {v}" for k, v in TINY.items())}
        [grid]
        alignment = ["identity", "rotation", "rotation:rank=16"]
    """))
    proc = subprocess.run([sys.executable, "-m", "causalab.cli", "sweep", str(f), "--results", str(tmp_path / "r.jsonl"),
                           "--workers", "1"], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    lines = [m for m in map(RUN_LINE.match, proc.stderr.splitlines()) if m]
    assert [int(m["done"]) for m in lines] == [1, 2, 3] and {m["total"] for m in lines} == {"3"}
    assert [int(m["pct"]) for m in lines] == [33, 66, 100]
    elapsed = [60 * int(m["m"]) + int(m["s"]) for m in lines]
    assert elapsed == sorted(elapsed)
    assert [bool(m["left"]) for m in lines] == [True, True, False]  # an estimate until the last run
    assert all(re.search(r"oracle L1 s0 iia=\d\.\d{3}$", m["note"]) for m in lines)
    assert not RUN_LINE.search(proc.stdout)  # stdout keeps the summary only


def test_long_sweeps_print_every_percent_or_every_half_minute():
    out = io.StringIO()
    bar = RunProgress(1000, "big", stream=out)
    for _ in range(1000):
        bar.advance("x")
    lines = out.getvalue().splitlines()
    assert len(lines) == 101 and lines[0].startswith("big: 1/1000 runs (0%)") and lines[1].startswith("big: 10/1000 runs (1%)")
    assert lines[-1].startswith("big: 1000/1000 runs (100%)")
    out = io.StringIO()
    slow = RunProgress(1000, "slow", stream=out, every_seconds=0.0)  # the time rule alone: a line per run
    for _ in range(5):
        slow.advance()
    assert len(out.getvalue().splitlines()) == 5


def test_step_lines_wait_for_long_steps_and_throttle():
    lines: list[str] = []
    show = StepLines(lines.append, after=5.0, every=10.0)
    show(Progress("LM training", 1, 10, 1.0))  # too early to matter
    show(Progress("LM training", 2, 10, 6.0, "loss 1.000"))
    show(Progress("LM training", 3, 10, 7.0))  # within 10 s of the last line
    show(Progress("LM training", 10, 10, 8.0))  # the last one always shows
    assert lines == ["  LM training: 2/10 (20%) in 0:06, ~0:24 left; loss 1.000", "  LM training: 10/10 (100%) in 0:08"]


def test_lm_training_reports_every_five_percent(tmp_path):
    from transformers import AutoModelForCausalLM

    from causalab.neural.lm import lm_config
    from causalab.neural.lm_training import train_causal_lm

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(lm_config("gpt_neox", "tiny", vocab_size=16, max_positions=8))

    def sample(n, g):
        return {"input_ids": torch.randint(0, 16, (n, 6), generator=g), "attention_mask": torch.ones(n, 6, dtype=torch.long)}

    events: list[Progress] = []
    with listen(events.append):
        train_causal_lm(model, sample, tmp_path, steps=40, batch_size=4, warmup=2, checkpoints=())
    report(Progress("after", 1, 1, 0.0))  # the listener is gone once the block ends
    assert [e.done for e in events] == list(range(2, 41, 2)) and {e.total for e in events} == {40}
    assert {e.task for e in events} == {"LM training"} and all(re.fullmatch(r"loss \d+\.\d{3}", e.detail) for e in events)
    assert [e.elapsed for e in events] == sorted(e.elapsed for e in events)
    assert events[-1].remaining == 0.0 and events[0].remaining > 0


def test_caching_and_fitting_report_to_a_callback_or_the_listeners():
    import causalab as cl
    from algorithms.hierarchical_equality import oracle_mlp

    task, target, site = cl.make_task("both_equality_relations"), oracle_mlp(), cl.Site(1)
    data = task.counterfactuals(50, torch.Generator().manual_seed(0))
    given: list[Progress] = []
    cl.prepare(target, site, task, data, progress=given.append)
    parts = 1 + len(data.sources)  # the bases, then each variable's sources
    assert [(e.done, e.total) for e in given] == [(i, parts) for i in range(1, parts + 1)]
    assert {e.detail for e in given} == {"50 pairs"}
    heard: list[Progress] = []
    with listen(heard.append):
        run_experiment(ExperimentConfig(algorithm="both_equality_relations", alignment="rotation", target="oracle",
                                        **(TINY | {"epochs": 2})))
    caching = [e for e in heard if e.task == "caching hidden states"]
    assert len(caching) == 3 * parts  # train, validation and test pairs
    fitting = [e for e in heard if e.task == "fitting"]
    assert [(e.done, e.total) for e in fitting] == [(1, 2), (2, 2)] and fitting[0].detail.startswith("val iia 0.")


def test_sweep_events_carry_elapsed_time_and_an_estimate(tmp_path):
    from causalab.experiments import run_sweep

    configs = [ExperimentConfig(algorithm="both_equality_relations", alignment=a, target="oracle", **TINY)
               for a in ("identity", "rotation")]
    events = []
    run_sweep(configs, tmp_path / "r.jsonl", workers=1, progress=events.append)
    start, *done = events
    assert start.kind == "start" and start.remaining is None and start.elapsed < 1.0
    assert [e.finished for e in done] == [1, 2] and done[0].elapsed <= done[1].elapsed
    assert done[0].remaining == pytest.approx(done[0].elapsed) and done[1].remaining == 0.0
