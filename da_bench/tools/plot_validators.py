"""Each validator's score against target accuracy over a run's snapshots: one PNG per run.

    da-bench-plot validators logs/runs/mnist_mnistm/dann/seed0/defaults --out results/selection

For every metrics.json found (a file or the directories searched), a grid of panels, one per rule: x = the
snapshot's target *val* accuracy (the oracle's score, read with target labels, for the plot only), y = the
rule's score, points joined in step order, the rule's pick circled. A rule whose score rises with target
accuracy is a useful validator on that run. Needs matplotlib (pip install -e ".[plots]").
"""
import argparse
import math
from pathlib import Path

from da_bench.tables import find_runs, order_rules
from da_bench.tools.figures import pyplot, save


def plot_run(run: dict, out_dir: Path) -> Path:
    plt = pyplot("da-bench-plot validators")
    history = run["snapshots"]
    rules = [r for r in order_rules(history[0]) if r not in ("step", "oracle")]
    target = [h["oracle"] for h in history]
    cols = 4
    fig, axes = plt.subplots(math.ceil(len(rules) / cols), cols, figsize=(3.2 * cols, 2.8 * math.ceil(len(rules) / cols)),
                             squeeze=False)
    for ax, rule in zip(axes.flat, rules):
        scores = [h[rule] for h in history]
        ax.plot(target, scores, "-", color="0.75", zorder=1)
        points = ax.scatter(target, scores, c=[h["step"] for h in history], cmap="viridis", s=14, zorder=2)
        pick = run["selections"].get(rule, {}).get("step")
        for h in history:
            if h["step"] == pick:
                ax.scatter([h["oracle"]], [h[rule]], s=90, facecolors="none", edgecolors="red", zorder=3)
        ax.set_title(rule, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(rules):]:
        ax.axis("off")
    fig.colorbar(points, ax=axes, label="step", shrink=0.6)
    fig.supxlabel("target val accuracy (oracle, plot only)", fontsize=9)
    fig.suptitle(f"{run['method']} {run['data']} seed {run['seed']}: validator score vs target accuracy "
                 f"({len(history)} snapshots; red: the rule's pick)", fontsize=10)
    return save(fig, out_dir / f"{run['data']}_{run['method']}_seed{run['seed']}.png", dpi=110, tight=False)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", nargs="+", help="directories searched for metrics.json (or the files)")
    parser.add_argument("--out", default="validator_plots", help="where the PNGs go (default: validator_plots)")
    args = parser.parse_args(argv)
    runs = [r for r in find_runs(args.run_dirs) if r.get("snapshots") and "oracle" in r["snapshots"][0]]
    if not runs:
        parser.error(f"no metrics.json with snapshot scores (and the oracle's) under {args.run_dirs}")
    for run in runs:
        print(f"wrote {plot_run(run, Path(args.out))}")


if __name__ == "__main__":
    main()
