"""benchmarks/family_step_time.py at smoke size: a step on the fast path of a Llama-like family, timed."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _benchmark():
    spec = importlib.util.spec_from_file_location("family_step_time", ROOT / "benchmarks" / "family_step_time.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("arch", ["gpt_neox", "qwen3"])
def test_a_step_is_timed_on_the_fast_path(arch):
    row = _benchmark().step_time(arch, "tiny", batch=16, n_pairs=32, steps=2, reps=1, warmup=1, layer=1)
    assert row["path"] == "resume" and row["cache"] == "window" and row["step_ms"] > 0
