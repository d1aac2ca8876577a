"""The API reference builds from the docstrings, and every public name is in it."""

import importlib.util
from pathlib import Path

import causalab

ROOT = Path(__file__).resolve().parents[1]


def _builder():
    """docs/build_api.py imported as a module (docs/ is not a package)."""
    spec = importlib.util.spec_from_file_location("build_api", ROOT / "docs" / "build_api.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_api_reference_builds_with_every_public_name(tmp_path):
    builder = _builder()
    defects = builder.build(tmp_path)
    assert defects == [], defects
    for module in builder.MODULES:
        page = tmp_path / (module.replace(".", "/") + ".html")
        assert page.exists(), f"no reference page for {module}"
    package = (tmp_path / "causalab.html").read_text()
    # `causalab.pyvene` is pyvene itself, a module of its own project
    missing = [name for name in causalab.__all__ if name != "pyvene" and f'id="{name}"' not in package]
    assert not missing, f"public names without an entry in the reference: {missing}"
    assert (tmp_path / "search.js").exists()  # the reference is searchable


def test_every_public_name_has_a_docstring():
    undocumented = [name for name in causalab.__all__ if name != "pyvene" and not (getattr(causalab, name).__doc__ or "").strip()]
    assert not undocumented, undocumented
