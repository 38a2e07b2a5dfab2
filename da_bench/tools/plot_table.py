"""A results table as a picture: one panel per pair, a bar per method (mean over seeds, ± std as an error bar,
the mean and n written on it) and the paper's number as a black mark where the paper reports one.

    da-bench-plot table results/survey/table.csv --out results/survey/table.png

Reads the CSV that da-bench-tables writes (method, data, mean, std, n, paper). Needs matplotlib
(pip install -e ".[plots]").
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from da_bench.tools.figures import pyplot, save


def read_table(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    missing = {"method", "data", "mean", "std", "n", "paper"} - set(rows[0] if rows else {})
    if missing:
        sys.exit(f"plot_table: {path} is not a make_tables CSV (no {', '.join(sorted(missing))} column)")
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", type=Path, help="a CSV written by da-bench-tables")
    parser.add_argument("--out", type=Path, default=None, help="the PNG (default: beside the CSV)")
    parser.add_argument("--xlabel", default="target test accuracy")
    args = parser.parse_args(argv)
    plt = pyplot("da-bench-plot table")
    rows = [r for r in read_table(args.table) if r["mean"]]
    pairs = list(dict.fromkeys(r["data"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cell = {(r["data"], r["method"]): r for r in rows}
    fig, axes = plt.subplots(1, len(pairs), sharey=True, squeeze=False,
                             figsize=(3.2 * len(pairs) + 1.5 + 0.065 * max(map(len, methods)),  # room for the labels
                                      0.32 * len(methods) + 1.4))
    for ax, pair in zip(axes[0], pairs):
        for y, method in enumerate(methods):
            r = cell.get((pair, method))
            if r is None:
                continue
            ax.barh(y, float(r["mean"]), xerr=float(r["std"] or 0), color=f"C{y % 10}", capsize=2, height=0.7)
            ax.text(float(r["mean"]) + float(r["std"] or 0) + 0.02, y, f"{float(r['mean']):.3f} (n={r['n']})",
                    va="center", fontsize=7)  # right of the bar: short bars have no room inside
            if r["paper"]:
                ax.plot([float(r["paper"])] * 2, [y - 0.4, y + 0.4], color="black", lw=2)
        ax.set_title(pair, fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_xlabel(args.xlabel, fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(range(len(methods)), methods, fontsize=8)
    axes[0][0].invert_yaxis()
    stem = args.table.stem  # results/<table>/table.csv, or table_<rule>.csv: name the folder, and the rule
    name = f"{args.table.parent.name}{f' ({stem[6:]})' if stem != 'table' else ''}" if stem.startswith("table") else stem
    fig.suptitle(f"{name}: mean ± std over seeds; black: the paper's number", fontsize=10)
    out = args.out or args.table.with_suffix(".png")
    print(f"wrote {save(fig, out)}")


if __name__ == "__main__":
    main()
