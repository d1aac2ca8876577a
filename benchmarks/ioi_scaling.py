"""The IOI scaling figure from committed records: where would the RevNet align the pattern?

Test and train IIA of the shared-names RevNet (8, 64) fits of ``ioi_steps`` on random
Pythia-like LMs, against the distinct sentences fitted on, the width and the fitting steps,
beside the MLP read-out's held-out accuracy of the pattern at the same site
(``benchmarks/ioi_pattern_probe.py --out``). Reads only records; nothing is fitted.

    python benchmarks/ioi_scaling.py --out docs/dilemma_ioi_scaling
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from causalab.dilemma.figures import ioi_scaling_figure

RESULTS = Path(__file__).resolve().parent / "dilemma" / "results"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", type=Path, default=RESULTS / "ioi_steps.jsonl")
    p.add_argument("--probes", type=Path, default=RESULTS / "ioi_pattern_probe.jsonl")
    p.add_argument("--out", type=Path, default=Path("results/ioi_scaling"), help="file stem: .png, .csv and .json")
    args = p.parse_args(argv)
    if not args.records.is_file():
        p.error(f"--records {args.records}: no such results file (a sweep's .jsonl, e.g. {RESULTS / 'ioi_steps.jsonl'})")
    probes = read_jsonl(args.probes) if args.probes.exists() else []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    files = ioi_scaling_figure(read_jsonl(args.records), probes, args.out)
    if not files:
        print(f"no shared-names RevNet fit on a random LM in {args.records}")
        return 1
    for name, path in files.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
