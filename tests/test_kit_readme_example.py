"""The example in docs/property-testing.md runs as written, and its tests pass."""

import re
from pathlib import Path

import torch

torch.set_num_threads(1)

DOC = Path(__file__).resolve().parents[1] / "docs" / "property-testing.md"


def test_documented_example_runs_and_passes() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 1, "the page should hold exactly one complete example"
    namespace: dict = {"__name__": "property_testing_example"}
    exec(compile(blocks[0], str(DOC), "exec"), namespace)
    tests = [fn for name, fn in namespace.items() if name.startswith("test_") and callable(fn)]
    assert len(tests) == 3
    for test in tests:
        test()
