"""Source and target features of finished runs side by side: a 2-D PCA of each run's features (the layer the
validators read, `Method.embed`) on up to --samples images of each domain's test set, source in one colour,
target in another, and each run's proxy A-distance (Ben-David et al. 2007): 2 (1 - 2 err) of a logistic
regression telling the domains apart on the full features (fitted on half of them, err on the other half).
Lower = the domains are harder to tell apart. Typical use: a source-only run beside an adapted one.

    da-bench-plot features logs/runs/mnist_mnistm/source_only/seed0/defaults \\
        logs/runs/mnist_mnistm/dann/seed0/defaults --out features.png

Each run directory needs its .hydra/config.yaml and checkpoints/last.ckpt (and the data, DA_BENCH_DATA).
Needs matplotlib (pip install -e ".[plots]").
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from da_bench.checkpoints import rebuild_finished_run
from da_bench.tools.figures import pyplot, save
from da_bench.validators import _fit_logistic


def run_features(run_dir: Path, samples: int) -> tuple[str, torch.Tensor, torch.Tensor]:
    """(method name, source features, target features) of the run's weights on its pair's test sets."""
    cfg, datamodule, method, _ = rebuild_finished_run(run_dir)
    method.eval()
    features = []
    with torch.no_grad():
        for loader, domain in zip(datamodule.test_dataloader(), ("src", "tgt")):
            parts, seen = [], 0
            for x, _ in loader:
                parts.append(method.embed(x, domain)[0].float())
                seen += len(x)
                if seen >= samples:
                    break
            features.append(torch.cat(parts)[:samples])
    return cfg.method._target_.rsplit(".", 1)[-1], features[0], features[1]


def proxy_a_distance(src: torch.Tensor, tgt: torch.Tensor) -> float:
    x = torch.cat([src, tgt]).double()
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    y = torch.cat([torch.zeros(len(src)), torch.ones(len(tgt))]).double()
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    fit, held = order[: len(x) // 2], order[len(x) // 2:]
    w, b = _fit_logistic(x[fit], y[fit], decay=1.0, balance=0.0)
    error = ((x[held] @ w + b > 0).double() != y[held]).double().mean().item()
    return 2 * (1 - 2 * error)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run directories")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--samples", type=int, default=1000, help="test images per domain (default 1000)")
    args = parser.parse_args(argv)
    plt = pyplot("da-bench-plot features")
    fig, axes = plt.subplots(1, len(args.runs), figsize=(4.2 * len(args.runs), 4.2), squeeze=False)
    for ax, run_dir in zip(axes[0], args.runs):
        name, src, tgt = run_features(run_dir, args.samples)
        both = torch.cat([src, tgt])
        _, _, v = torch.pca_lowrank(both, q=2, center=True)
        flat = (both - both.mean(0)) @ v[:, :2]
        ax.scatter(*flat[: len(src)].T, s=3, alpha=0.5, label="source test")
        ax.scatter(*flat[len(src):].T, s=3, alpha=0.5, label="target test")
        ax.set_title(f"{name}: proxy A-distance {proxy_a_distance(src, tgt):.2f}\n{run_dir.parent.name}/"
                     f"{run_dir.name}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][0].legend(fontsize=7, markerscale=3)
    print(f"wrote {save(fig, args.out)}")


if __name__ == "__main__":
    main()
