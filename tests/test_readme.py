"""The README's Python examples run as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_python_examples_run(capsys):
    blocks = python_blocks()
    assert blocks, "the README has no python examples"
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    out = capsys.readouterr().out
    assert "IIA 1.000" in out  # the oracle holds V2 in neurons 8-15 exactly
    # the saved map on the oracle MLP and a map on a language model, each run by pyvene and by causalab
    scores = re.findall(r"IIA in pyvene ([\d.]+), in causalab ([\d.]+)", out)
    assert len(scores) == 2 and all(ours == theirs for ours, theirs in scores), scores
    assert "nnsight" not in out  # pyvene comes through cl.pyvene, without its import notice
