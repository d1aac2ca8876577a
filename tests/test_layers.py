"""The folders are the layers: each imports only the layers below it, and no modules import each other.

Read from the source with ``ast`` (nothing is imported to find the edges), counting imports
inside functions too: a lazy import is still an import. ``algorithms/`` and ``alignments/``
are plug-in libraries beside ``causalab``: they import its lower layers, never ``fit/`` or
above. The table is the one in ``docs/design-notes.md`` ("The layers, top down").
"""

from __future__ import annotations

import ast
import functools
import importlib
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("causalab", "algorithms", "alignments")

GROUND = {"causalab.errors", "causalab.files", "causalab.progress", "causalab.threads", "causalab.registry",
          "causalab.runtime"}

# layer -> the layers it may import (itself included: modules of one layer import each other, without circles)
BELOW: dict[str, set[str]] = {"ground": {"ground"}}
BELOW["causal"] = BELOW["ground"] | {"causal"}
BELOW["neural"] = BELOW["causal"] | {"neural"}
BELOW["algorithms"] = BELOW["neural"] | {"algorithms"}
BELOW["maps"] = BELOW["neural"] | {"maps"}
BELOW["alignments"] = BELOW["maps"] | {"alignments"}
BELOW["fit"] = BELOW["maps"] | {"fit"}
BELOW["experiments"] = BELOW["fit"] | {"experiments"}
BELOW["scores"] = BELOW["fit"] | {"scores"}
BELOW["testing"] = BELOW["fit"] | {"testing"}
BELOW["dilemma"] = BELOW["fit"] | {"experiments", "scores", "dilemma"}
BELOW["cli"] = BELOW["dilemma"] | {"testing", "cli"}
# causalab/__init__.py: the public API, re-exported from below, and the built-in plug-ins loaded (they register)
BELOW["face"] = (BELOW["cli"] - {"cli"}) | {"algorithms", "alignments"}

# the loose modules that moved into folders; they answer at the old path for old imports only
OLD_PATHS = {
    "causalab.alignment": "causalab.maps.alignment",
    "causalab.intervene": "causalab.maps.intervene",
    "causalab.nearest": "causalab.maps.nearest",
    "causalab.saved_alignment": "causalab.maps.saved",
    "causalab.construct": "causalab.fit.construct",
    "causalab.measure": "causalab.fit.measure",
    "causalab.metrics": "causalab.fit.metrics",
    "causalab.neuron_search": "causalab.fit.neuron_search",
    "causalab.schedule": "causalab.fit.schedule",
    "causalab.train": "causalab.fit.fitting",
    "causalab.fit.train": "causalab.fit.fitting",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def layer(name: str) -> str:
    top, _, rest = name.partition(".")
    if top in ("algorithms", "alignments"):
        return top
    if name == "causalab":
        return "face"
    if name in GROUND:
        return "ground"
    return rest.split(".")[0]


def imports(path: Path) -> set[str]:
    """The project modules that ``path`` imports, at module level or inside a function."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([node.module] if node.module else []))
            for a in node.names:  # `from pkg import module` imports the module
                found.add(f"{base}.{a.name}" if is_module(f"{base}.{a.name}") else base)
    return {m for m in found if m.split(".")[0] in SCANNED}


@functools.cache
def graph() -> dict[str, set[str]]:
    files = [p for d in SCANNED for p in sorted((ROOT / d).rglob("*.py"))]
    return {module_name(p): imports(p) for p in files}


def test_every_module_has_a_layer():
    known = set(BELOW)
    for name in graph():
        assert layer(name) in known, f"{name} is in no layer of the table; place it (docs/design-notes.md)"


def test_each_layer_imports_only_the_layers_below_it():
    upward = [
        f"{name} ({layer(name)}) imports {target} ({layer(target)})"
        for name, targets in graph().items()
        for target in sorted(targets)
        if target in graph() and layer(target) not in BELOW[layer(name)]
    ]
    assert upward == []


def test_no_import_circles():
    g = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    circles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(g.get(node, ())):
            if nxt == node or nxt not in g:
                continue
            if state.get(nxt) == 1:
                circles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(g):
        if node not in state:
            visit(node, [node])
    assert circles == []


@pytest.mark.parametrize("folder", ["causalab", "algorithms", "alignments", "tests", "benchmarks"])
def test_nothing_in_the_project_imports_an_old_path(folder):
    old = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            old += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names if n in OLD_PATHS]
    assert old == []


@pytest.mark.parametrize("old", sorted(OLD_PATHS))
def test_old_paths_are_the_moved_modules(old):
    import causalab as cl

    assert importlib.import_module(old) is importlib.import_module(OLD_PATHS[old])
    assert callable(cl.measure)  # `import causalab.measure` leaves the function in place


def test_the_console_script_names_the_command_line():
    script = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["causalab"]
    module, _, func = script.partition(":")
    assert layer(module) == "cli"
    assert callable(getattr(importlib.import_module(module), func))


def test_the_registry_imports_no_plug_in_by_a_name_of_its_own():
    """The built-ins register when the package's top imports them: no run-time circle through the registry."""
    source = (ROOT / "causalab" / "registry.py").read_text()
    assert '"algorithms"' not in source and '"alignments"' not in source
    import causalab.registry as registry

    assert "rotation" in registry.ALIGNMENTS.names() and "ioi_pattern" in registry.ALGORITHMS.names()
