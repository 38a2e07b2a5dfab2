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
from dataclasses import replace
from pathlib import Path

from da_bench.checkpoints import rebuild_finished_run
from da_bench.snapshots import SAME_AS_MODEL, evaluate
from da_bench.validators import DECAYS, dev, domain_weights, iwcv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--decays", default=",".join(map(str, DECAYS)),
                        help="the domain classifier's weight decays to choose from (default: DEV's nine)")
    args = parser.parse_args()
    decays = tuple(float(d) for d in args.decays.split(","))
    _, datamodule, method, checkpoint = rebuild_finished_run(args.run_dir)
    datamodule.setup("fit")
    final_weights = {k: v.clone() for k, v in method.state_dict().items()}
    (state,) = [v for k, v in checkpoint["callbacks"].items() if "SnapshotSelection" in k]
    print(f"{args.run_dir}: step {checkpoint['global_step']}; decays {decays}")
    for step, weights in sorted(state["weights"].items()):
        method.load_state_dict(final_weights if weights == SAME_AS_MODEL else weights)
        val = evaluate(None, method, datamodule.val_dataloader())  # no trainer: full precision
        train = evaluate(None, method, datamodule.train_sample_dataloaders())
        w = domain_weights(train.src_features, train.tgt_features, val.src_features, decays=decays).double()
        snapshot = replace(val, tgt_labels=None, src_train_features=train.src_features,
                           tgt_train_features=train.tgt_features, source_weights=w.float())
        ess = (w.sum() ** 2 / w.square().sum() / len(w)).item()
        picked = sorted(rule for rule, pick in state["best"].items() if pick["step"] == step)
        print(f"step {step}: ESS {100 * ess:.1f} % of {len(w)}, max/mean {(w.max() / w.mean()).item():.3g}, "
              f"mean {w.mean().item():.3g}, dev {dev(snapshot):.4f}, iwcv {iwcv(snapshot):.4f}; picked by "
              f"{', '.join(picked)}", flush=True)


if __name__ == "__main__":
    main()
