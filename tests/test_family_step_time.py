"""benchmarks/family_step_time.py at smoke size: a step on the fast path of a Llama-like family, timed."""

import pytest
from conftest import load_benchmark


@pytest.mark.parametrize("arch", ["gpt_neox", "qwen3"])
def test_a_step_is_timed_on_the_fast_path(arch):
    row = load_benchmark("family_step_time").step_time(arch, "tiny", batch=16, n_pairs=32, steps=2, reps=1, warmup=1,
                                                       layer=1)
    assert row["path"] == "resume" and row["cache"] == "window" and row["step_ms"] > 0
