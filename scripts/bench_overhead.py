#!/usr/bin/env python
"""Framework overhead per training step: da_bench's DANN next to a plain PyTorch loop of the same update.

    python scripts/bench_overhead.py                       # CPU, MNIST -> MNIST-M, 300 timed steps, 3 rounds
    python scripts/bench_overhead.py --threads 1 --out results/bench/overhead.md

Three paths, measured in turns (plain, bare, full; `--rounds` times) in one process on the same resident data:
- plain: a hand-written loop (random batches of 32 + 32 by index, DANN's forward, gradient reversal with
  lambda_p, the annealed learning rate, SGD with momentum), no framework;
- bare: da_bench's DANN LightningModule under a Trainer with no logger, checkpoint or progress bar;
(all three with the recipe's weight layout: channels-last unless `--nchw`, i.e. ~callbacks.channels_last);
- full: the recipe's trainer and callbacks as configured (CSV logger, checkpoints every 1,000 steps, progress bar,
  FiniteGuard, snapshots; validation off), i.e. what a user's run pays per step;
- full xK (with `--updates-per-step K`): the same with `updates_per_step=K`, K updates per Lightning step.
Each timing skips --warmup steps. The ratio full / plain is issue #12's CPU criterion (<= 1.10).
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from pytorch_lightning.callbacks import Timer  # noqa: E402

from da_bench.callbacks import ChannelsLast  # noqa: E402
from da_bench.checkpoints import AtomicCheckpointIO  # noqa: E402
from da_bench.losses import dann_lambda  # noqa: E402
from da_bench.provenance import cpu_name, git_commit  # noqa: E402
from da_bench.run_dir import register_resolvers  # noqa: E402
from da_bench.recipe import intervals_in_calls  # noqa: E402
from scripts.bench import StepTimer  # noqa: E402


def config(args, out_dir: str, steps: int, extra=()):
    overrides = [*extra, "method=dann", f"data={args.pair}", *(["~callbacks.channels_last"] if args.nchw else []), f"paths.data_dir={args.data_dir}", f"paths.output_dir={out_dir}",
                 f"paths.log_dir={out_dir}", f"trainer.max_steps={steps}", "trainer.val_check_interval=1000000"]
    with initialize_config_dir(str(REPO / "da_bench" / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return cfg


def plain(cfg, datamodule, args) -> float:
    method = instantiate(cfg.method, net=instantiate(cfg.net), _convert_="all")
    if not args.nchw:
        method.to(memory_format=torch.channels_last)
    net, domain_loss, total = method.net, method.domain_loss, cfg.trainer.max_steps
    hp = cfg.method
    optimizer = torch.optim.SGD(method.parameters(), lr=hp.optimizer.lr, momentum=hp.optimizer.momentum)
    (xs, ys), (xt, _) = datamodule.splits["src_train"], datamodule.splits["tgt_train"]
    batch, g = datamodule.batch_size, torch.Generator().manual_seed(0)

    def step(i: int) -> None:
        a, b = torch.randint(len(xs), (batch,), generator=g), torch.randint(len(xt), (batch,), generator=g)
        x_s, y_s, x_t = datamodule.normalise(xs[a]), ys[a], datamodule.normalise(xt[b])
        features = net.encoder(torch.cat([x_s, x_t]))
        p = i / total
        loss = F.cross_entropy(net.classifier(features[:batch]), y_s)
        loss = loss + domain_loss(features[:batch], features[batch:], dann_lambda(p, hp.gamma))[0]
        for group in optimizer.param_groups:
            group["lr"] = hp.optimizer.lr / (1 + hp.lr_schedule.alpha * p) ** hp.lr_schedule.beta
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for i in range(args.warmup):
        step(i)
    start = time.perf_counter()
    for i in range(args.warmup, total):
        step(i)
    return (time.perf_counter() - start) / (total - args.warmup) * 1000


def lightning(cfg, datamodule, args, full: bool) -> float:
    runner = instantiate(cfg.runner, updates_per_step=cfg.updates_per_step)
    method = instantiate(cfg.method, net=instantiate(cfg.net), runner=runner, _convert_="all")
    timer = StepTimer(args.warmup)
    if full:
        callbacks = [timer, Timer(), *(instantiate(c) for c in cfg.callbacks.values())]
        trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=[instantiate(c) for c in cfg.logger.values()],
                              plugins=[AtomicCheckpointIO()], limit_val_batches=0, **intervals_in_calls(cfg))
    else:
        trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=cfg.trainer.max_steps, max_epochs=-1, logger=False,
                             enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                             limit_val_batches=0, num_sanity_val_steps=0,
                             callbacks=[timer, *([] if args.nchw else [ChannelsLast()])])
    trainer.fit(method, datamodule=datamodule)
    return 1000 / timer.steps_per_s


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pair", default="mnist_mnistm")
    parser.add_argument("--steps", type=int, default=300, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--updates-per-step", type=int, default=1, metavar="K",
                        help="also time the full recipe with updates_per_step=K (a 'full xK' row)")
    parser.add_argument("--nchw", action="store_true", help="every path with NCHW weights (the recipe without "
                        "callbacks.channels_last)")
    parser.add_argument("--data-dir", default=os.environ.get("DA_BENCH_DATA", "data"))
    parser.add_argument("--out", default=None, help="write the table here (markdown)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    register_resolvers()
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    pl.seed_everything(0, verbose=False)
    tmp = tempfile.mkdtemp(prefix="da_bench_overhead_")
    cfg = config(args, tmp, args.warmup + args.steps)
    k = args.updates_per_step
    datamodules = {}
    for updates in {1, k}:  # each datamodule built with the K its runs use
        datamodules[updates] = instantiate(cfg.data, updates_per_step=updates)
        datamodules[updates].prepare_data()
        datamodules[updates].setup()
    datamodule = datamodules[1]
    times = {"plain": [], "bare": [], "full": [], **({f"full x{k}": []} if k > 1 else {})}
    for r in range(args.rounds):
        times["plain"].append(plain(cfg, datamodule, args))
        times["bare"].append(lightning(cfg, datamodule, args, full=False))
        times["full"].append(lightning(config(args, f"{tmp}/full{r}", args.warmup + args.steps), datamodule, args, True))
        if k > 1:
            cfg_k = config(args, f"{tmp}/full{r}x{k}", args.warmup + args.steps, [f"updates_per_step={k}"])
            times[f"full x{k}"].append(lightning(cfg_k, datamodules[k], args, True))
        print(" | ".join(f"{k} {v[-1]:.2f} ms" for k, v in times.items()), flush=True)
    median = {k: statistics.median(v) for k, v in times.items()}
    # each round times the three paths back to back: its own ratio is less exposed to slow drifts of the machine
    per_round = {k: [t / p for t, p in zip(v, times["plain"])] for k, v in times.items()}
    rows = [f"| {k} | {median[k]:.2f} | {', '.join(f'{t:.2f}' for t in v)} | {median[k] / median['plain']:.3f} | "
            f"{statistics.median(per_round[k]):.3f} ({min(per_round[k]):.3f}-{max(per_round[k]):.3f}) |"
            for k, v in times.items()]
    text = (f"# Framework overhead per step (DANN, {args.pair})\n\n"
            f"Command: `python scripts/bench_overhead.py {' '.join(argv if argv is not None else sys.argv[1:])}`\n"
            f"Commit: {git_commit()}; {cpu_name()}; torch {torch.__version__}, {args.threads} thread(s); batch "
            f"{datamodule.batch_size} + {datamodule.batch_size}; {args.warmup} warm-up + {args.steps} timed steps, "
            f"{args.rounds} rounds in turns; weights {'NCHW' if args.nchw else 'channels-last'}.\n\n"
            f"| path | median ms / step | rounds | median / plain's median | per-round / plain: median (range) |\n"
            f"|---|---|---|---|---|\n"
            + "\n".join(rows) + "\n")
    print("\n" + text)
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
