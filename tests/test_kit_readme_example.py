"""The README's property-testing example runs as written, and its tests pass."""

import re
from pathlib import Path

import torch

torch.set_num_threads(1)

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "### 3. Property-test it"


def test_documented_example_runs_and_passes() -> None:
    text = README.read_text()
    assert SECTION in text, "the README lost its property-testing section"
    section = text.split(SECTION, 1)[1].split("\n### ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the section should hold exactly one complete example"
    namespace: dict = {"__name__": "property_testing_example"}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    tests = [fn for name, fn in namespace.items() if name.startswith("test_") and callable(fn)]
    assert len(tests) == 3
    for test in tests:
        test()
