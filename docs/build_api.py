"""Build the API reference from the docstrings: ``python docs/build_api.py [OUT]`` (default ``docs/api``).

It documents the public modules with pdoc (HTML, one page per module, searchable) and exits
non-zero when a documented name does not resolve or a module fails to import.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# the public surface: the package (its __all__), each layer's package, and the plug-in libraries
MODULES = [
    "causalab",
    "causalab.causal",
    "causalab.neural",
    "causalab.maps",
    "causalab.fit",
    "causalab.experiments",
    "causalab.scores",
    "causalab.testing",
    "causalab.dilemma",
    "algorithms",
    "alignments",
]


def build(out: Path) -> list[str]:
    """Write the reference under ``out``; return pdoc's warnings that are defects (names that do not resolve)."""
    sys.path.insert(0, str(ROOT))
    import pdoc

    import causalab

    for name in causalab._PYVENE_EXPORTS:  # imported on first use; pdoc reads module attributes
        getattr(causalab, name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pdoc.pdoc(*MODULES, output_directory=out)
    # annotations of inherited dataclass fields are read in the subclass's module: noise, not a defect
    messages = [str(w.message) for w in caught]
    return [m for m in messages
            if ("does not resolve" in m or "import" in m.lower()) and "type annotation" not in m]


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "api"
    defects = build(target)
    for message in defects:
        print(message, file=sys.stderr)
    print(f"API reference: {target / 'index.html'}")
    sys.exit(1 if defects else 0)
