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

from causalab.experiments.figures import pyplot, write_numbers

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
    for path in draw(chosen, args.out).values():
        print(path)
    return 0


def label(record: dict) -> str:
    c = record["config"]
    options = c.get("task_options") or {}
    data = f"{options.get('roles', 'random')} roles"
    if options.get("split") == "names":
        data += ", unseen test names"
    if options.get("hold_out"):
        data += ", fillers held out"
    spec = c["alignment"].replace("revnet:blocks=8,hidden=64", "RevNet (8, 64)")
    schedule = "" if c.get("lr_schedule", "constant") == "constant" else f", {c['lr_schedule']} schedule"
    return f"{data}, {spec}, layer {c['layer']}{schedule}, seed {c['seed']}: test {record['iia']:.2f}"


def draw(records: list[dict], stem: Path) -> dict[str, Path]:
    """Validation IIA (solid), train IIA (dashed) and validation loss against steps, one colour per run."""
    plt = pyplot()
    fig, (ax_iia, ax_loss) = plt.subplots(1, 2, figsize=(12, 4.2 + 0.18 * len(records)))
    rows = []
    for k, record in enumerate(records):
        curve = [h for h in record["history"] if "val_iia" in h]
        xs = [h.get("steps", 0) for h in curve]
        colour = f"C{k % 10}"
        ax_iia.plot(xs, [h["val_iia"] for h in curve], color=colour, marker=".", label=label(record))
        ax_iia.plot(xs, [h.get("train_iia") for h in curve], color=colour, ls="--", lw=0.8)
        ax_loss.plot(xs, [h.get("val_loss") for h in curve], color=colour, marker=".")
        rows += [{"run": label(record), "hash": record["hash"], "steps": x, "val_iia": h["val_iia"],
                  "train_iia": h.get("train_iia"), "val_loss": h.get("val_loss")} for x, h in zip(xs, curve)]
    ax_iia.set_ylim(0, 1.05)
    ax_iia.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax_iia.set_ylabel("IIA (validation solid, train dashed)")
    ax_loss.set_ylabel("validation loss (full-vocabulary cross-entropy)")
    for ax in (ax_iia, ax_loss):
        ax.set_xlabel("fitting steps")
        ax.grid(alpha=0.3)
    fig.suptitle("IOI pattern on a random Pythia-like LM: the plateau and the jump", fontsize=10)
    legend_h = (0.18 * len(records) + 0.3) / (4.2 + 0.18 * len(records))
    fig.tight_layout(rect=(0, legend_h, 1, 1))
    fig.legend(*ax_iia.get_legend_handles_labels(), loc="lower center", fontsize=7.5, frameon=False, ncol=1)
    png = stem.with_suffix(".png")
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return {"curves": png, **write_numbers(stem, rows, {"x": "steps", "y": ["val_iia", "train_iia", "val_loss"],
                                                        "series": "run"})}


if __name__ == "__main__":
    raise SystemExit(main())
