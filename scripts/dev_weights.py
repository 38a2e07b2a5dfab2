#!/usr/bin/env python
"""How usable are IWCV's and DEV's importance weights on a finished run? For each snapshot whose weights the run
kept (the steps some rule picked, from checkpoints/last.ckpt), recompute the features of the val splits and of
the training samples, fit `domain_weights` as a snapshot does, and print the weights' effective sample size
(ESS = (sum w)^2 / sum w^2, as a share of source val), their max / mean and mean (DEV assumes a mean of about 1),
and DEV and IWCV. ESS near 100 % = weights near uniform; a few
per cent = a handful of source samples carry the estimate.

    DA_BENCH_DATA=../shared/data python scripts/dev_weights.py logs/runs/mnist_mnistm/dann/seed0/defaults
    python scripts/dev_weights.py RUN_DIR --decays 1e4,1e3,1e2,10,1,0.1    # another decay grid than DEV's

The run directory needs .hydra/config.yaml and checkpoints/last.ckpt, and the data.
"""
import argparse
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from da_bench.checkpoints import read_checkpoint
from da_bench.run_dir import register_resolvers
from da_bench.snapshots import SAME_AS_MODEL, outputs
from da_bench.validators import DECAYS, Snapshot, dev, domain_weights, iwcv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--decays", default=",".join(map(str, DECAYS)),
                        help="the domain classifier's weight decays to choose from (default: DEV's nine)")
    args = parser.parse_args()
    decays = tuple(float(d) for d in args.decays.split(","))
    register_resolvers()
    cfg = OmegaConf.load(args.run_dir / ".hydra" / "config.yaml")
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    method = instantiate(cfg.method, net=instantiate(cfg.net), _convert_="all")
    checkpoint = read_checkpoint(args.run_dir / "checkpoints" / "last.ckpt")
    (state,) = [v for k, v in checkpoint["callbacks"].items() if "SnapshotSelection" in k]
    print(f"{args.run_dir}: step {checkpoint['global_step']}; decays {decays}")
    for step, weights in sorted(state["weights"].items()):
        method.load_state_dict(checkpoint["state_dict"] if weights == SAME_AS_MODEL else weights)
        method.eval()
        (fs, zs, ys), (ft, zt, _) = (outputs(method, loader, d)
                                     for loader, d in zip(datamodule.val_dataloader(), ("src", "tgt")))
        (trs, _, _), (trt, _, _) = (outputs(method, loader, d)
                                    for loader, d in zip(datamodule.train_sample_dataloaders(), ("src", "tgt")))
        w = domain_weights(trs, trt, fs, decays=decays).double()
        snapshot = Snapshot(src_features=fs, src_logits=zs, src_labels=ys, tgt_features=ft, tgt_logits=zt,
                            src_train_features=trs, tgt_train_features=trt, source_weights=w.float())
        ess = (w.sum() ** 2 / w.square().sum() / len(w)).item()
        picked = sorted(rule for rule, pick in state["best"].items() if pick["step"] == step)
        print(f"step {step}: ESS {100 * ess:.1f} % of {len(w)}, max/mean {(w.max() / w.mean()).item():.3g}, "
              f"mean {w.mean().item():.3g}, dev {dev(snapshot):.4f}, iwcv {iwcv(snapshot):.4f}; picked by "
              f"{', '.join(picked)}", flush=True)


if __name__ == "__main__":
    main()
