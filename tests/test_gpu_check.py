"""benchmarks/gpu_check.py runs end to end (on the CPU here) and a device torch cannot see is named."""

from __future__ import annotations

import json

import pytest
import torch


def test_the_gpu_check_times_a_fit_and_reloads_its_map_on_the_cpu(tmp_path, capsys):
    from conftest import load_benchmark

    script = load_benchmark("gpu_check")
    out = tmp_path / "gpu.json"
    assert script.main(["--device", "cpu", "--cases", "lm", "--sizes", "tiny", "--steps", "2", "--pairs", "128",
                        "--out", str(out)]) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert row["case"] == "lm-tiny" and row["device_ms_per_step"] > 0 and row["cpu_ms_per_step"] > 0
    assert row["test_iia_device"] == row["test_iia_reloaded_cpu"]  # the saved map scores the same on the CPU
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="no CUDA device"):
            script.main(["--device", "cuda"])
