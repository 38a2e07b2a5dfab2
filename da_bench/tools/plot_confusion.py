"""The target test confusion matrix of finished runs as a picture: rows the true class, columns the predicted
one, each row normalised (the cell's share of that class), counts written in the cells.

    da-bench-plot confusion logs/runs/mnist_mnistm/dann/seed0/defaults [more run dirs] --out dann.png

Reads `confusion/test_tgt` from each run's metrics.json (classification runs); several runs are summed (seeds of
one cell). Needs matplotlib (pip install -e ".[plots]").
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from da_bench.tools.figures import pyplot, save


def summed_confusion(run_dirs: list[Path]) -> list[list[int]]:
    total = None
    for run_dir in run_dirs:
        metrics_file = run_dir / "metrics.json" if run_dir.is_dir() else run_dir
        matrix = json.loads(metrics_file.read_text()).get("confusion/test_tgt")
        if matrix is None:
            sys.exit(f"plot_confusion: {metrics_file} has no confusion/test_tgt (a segmentation run, or one "
                     "written before da_bench recorded it)")
        total = matrix if total is None else [[a + b for a, b in zip(r, s)] for r, s in zip(total, matrix)]
    return total


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run directories (or their metrics.json)")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--title", default=None)
    args = parser.parse_args(argv)
    plt = pyplot("da-bench-plot confusion")
    counts = summed_confusion(args.runs)
    shares = [[c / max(1, sum(row)) for c in row] for row in counts]
    size = len(counts)
    fig, ax = plt.subplots(figsize=(0.45 * size + 2.5, 0.45 * size + 2))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i, row in enumerate(counts):
        for j, count in enumerate(row):
            ax.text(j, i, str(count), ha="center", va="center", fontsize=6,
                    color="white" if shares[i][j] > 0.5 else "black")
    ax.set_xticks(range(size))
    ax.set_yticks(range(size))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    correct = sum(counts[i][i] for i in range(size)) / max(1, sum(map(sum, counts)))
    ax.set_title(args.title or f"target test set: accuracy {correct:.3f} ({len(args.runs)} run(s))", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true class")
    print(f"wrote {save(fig, args.out)}")


if __name__ == "__main__":
    main()
