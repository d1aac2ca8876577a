"""Importing pyvene through causalab prints nothing and leaves the warning filters as they were."""

import subprocess
import sys

CHECK = """
import warnings
import causalab as cl
before = list(warnings.filters)
pv = cl.pyvene          # pyvene itself, imported by causalab
cl.to_pyvene            # the export, from the same import
import pyvene
assert pyvene is pv
assert warnings.filters == before, [f for f in warnings.filters if f not in before]
"""


def test_importing_pyvene_through_causalab_is_silent_and_restores_warning_filters():
    done = subprocess.run([sys.executable, "-W", "default", "-c", CHECK], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""  # no "nnsight is not detected ..."

