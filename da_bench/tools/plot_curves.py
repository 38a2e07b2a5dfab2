"""Learning curves of runs or grid cells, one PNG: mean ± std over each group's seeds, source val accuracy solid,
the target val accuracy (an oracle curve: it reads target labels, for watching only) dashed, against epochs of
the source training split, so that schedules with other batch sizes line up.

    da-bench-plot curves --out results/dann_long/curves.png \\
        "DANN 10k, 32 + 32:32:results/runs/2857fb2/mnist_mnistm/dann/seed*/defaults" \\
        "DANN schedule=paper_long, 64 + 64:64:results/runs/0b8ce73/mnist_mnistm/dann/seed*/schedule-paper_long"

Each group is LABEL:BATCH:GLOB, GLOB matching run directories (each with metrics.json and csv/metrics.csv);
BATCH is the per-domain batch size of those runs. Needs matplotlib (pip install -e ".[plots]").
"""
from __future__ import annotations

import argparse
import csv
import glob
import json
import statistics
from pathlib import Path

from da_bench.tools.figures import pyplot, save

CURVES = (("val/src_acc", "-", "source val"), ("val/tgt_acc_oracle", "--", "target val (oracle)"))


def curve(run_dir: Path, key: str) -> dict[int, float]:
    with open(run_dir / "csv" / "metrics.csv", newline="") as f:
        return {int(float(r["step"])): float(r[key]) for r in csv.DictReader(f) if r.get(key)}


def band(curves: list[dict[int, float]]) -> tuple[list[int], list[float], list[float]]:
    """Steps every run has, the mean and the std (0 for one run) over the runs at each."""
    steps = sorted(set.intersection(*(set(c) for c in curves)))
    values = [[c[s] for c in curves] for s in steps]
    return steps, [statistics.mean(v) for v in values], [statistics.stdev(v) if len(v) > 1 else 0.0 for v in values]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("groups", nargs="+", metavar="LABEL:BATCH:GLOB")
    parser.add_argument("--out", required=True, help="the PNG to write")
    parser.add_argument("--title", default=None)
    args = parser.parse_args(argv)
    plt = pyplot("da-bench-plot curves")
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, group in enumerate(args.groups):
        label, batch, pattern = group.split(":", 2)
        runs = [Path(p) for p in sorted(glob.glob(pattern)) if (Path(p) / "csv" / "metrics.csv").exists()]
        if not runs:
            parser.error(f"no run directory with csv/metrics.csv matches {pattern}")
        train_size = json.loads((runs[0] / "metrics.json").read_text())["splits"]["src_train"]
        for key, style, name in CURVES:
            steps, mean, std = band([curve(r, key) for r in runs])
            epochs = [s * int(batch) / train_size for s in steps]
            ax.plot(epochs, mean, style, color=f"C{i}", label=f"{label}: {name} (n={len(runs)})")
            ax.fill_between(epochs, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                            color=f"C{i}", alpha=0.15)
    ax.set_xlabel("epochs of the source training split")
    ax.set_ylabel("accuracy")
    ax.set_title(args.title or "learning curves (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    print(f"wrote {save(fig, args.out)}")


if __name__ == "__main__":
    main()
