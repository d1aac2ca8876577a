"""Importing causalab leaves the process's torch threads alone; the CLI and workers set them."""

import subprocess
import sys

import pytest

from causalab.errors import ConfigError
from causalab.threads import ENV, thread_count


def test_import_keeps_the_callers_thread_count():
    code = "import torch; torch.set_num_threads(2); import causalab, causalab.scores, causalab.dilemma; print(torch.get_num_threads())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "2"


def test_thread_count_reads_the_argument_then_the_environment(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert thread_count() == 1
    monkeypatch.setenv(ENV, "3")
    assert thread_count() == 3
    assert thread_count(2) == 2


@pytest.mark.parametrize("bad", ["zero", "0", "-1", "1.5"])
def test_bad_thread_count_is_named(monkeypatch, bad):
    monkeypatch.setenv(ENV, bad)
    with pytest.raises(ConfigError, match=ENV if not bad.lstrip("-").isdigit() else "positive integer"):
        thread_count()
