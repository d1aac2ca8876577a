"""Learning curves of the IOI regime fits: the long plateau at chance, then the jump.

Reads ``benchmarks/dilemma/results/ioi_regime.jsonl`` (``causalab/dilemma/sweeps/ioi_regime.toml``)
and draws validation IIA (solid), train IIA (dashed) and validation loss against fitting
steps for the core profile's random-LM fits of one size (layers 3 and 4, up to 30 epochs), one
line per run labelled by what differs between them::

    python benchmarks/ioi_regime_figure.py --out docs/dilemma_ioi_regime_curves

Nothing is fitted; a results file without such fits is a usage error.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from causalab.experiments.figures import learning_curves_figure

RESULTS = Path(__file__).resolve().parent / "dilemma" / "results" / "ioi_regime.jsonl"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=Path, default=RESULTS)
    p.add_argument("--out", type=Path, default=Path("dilemma_ioi_regime_curves"), help="output stem (PNG + numbers)")
    p.add_argument("--size", default="14m", help="which random model's fits (target_options.size)")
    args = p.parse_args(argv)
    if not args.records.exists():
        raise SystemExit(f"no results file {str(args.records)!r}")
    records = [json.loads(line) for line in args.records.read_text().splitlines() if line.strip()]
    chosen = [r for r in records if r["config"]["target"] == "random"
              and r["config"]["target_options"].get("size") == args.size and r["config"].get("layer") in (3, 4)
              and r["config"].get("epochs", 0) <= 30]
    if not chosen:
        print(f"no random {args.size} fits with step-wise validation in {args.records}")
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    files = learning_curves_figure(chosen, args.out)
    for path in files.values():
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
