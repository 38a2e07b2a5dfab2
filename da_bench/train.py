"""Train one method on one domain pair and write its metrics.

    python -m da_bench.train method=dann data=mnist_mnistm seed=0        (or: da-bench-train ...)
    python -m da_bench.train --help                                      (every config group and option)

The recipe, top to bottom: seed; instantiate the datamodule, the net and the method, callbacks, loggers,
trainer; fit (resuming from ckpt_path, or from the run directory's last.ckpt when a run is re-launched);
score the weights of the last step on the held-out val splits, then, once, on the source and target test
sets; write metrics.json (with the split sizes). A run whose
metrics.json exists is done and is skipped when launched again (rerun=true trains it anew).
"""
from __future__ import annotations

import json
import logging
import os
import platform
import sys
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from da_bench.callbacks import TrainingClock
from da_bench.data.files import DataError
from da_bench.devices import claim_gpu_slot
from da_bench.provenance import git_commit
from da_bench.run_dir import register_resolvers

log = logging.getLogger("da_bench.train")


class RunInterrupted(RuntimeError):
    """Training stopped before max_steps (Ctrl-C, SIGTERM): no metrics are written, last.ckpt is."""
register_resolvers()


def device_name(trainer: pl.Trainer) -> str:
    device = trainer.strategy.root_device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    return f"{device.type} x{trainer.world_size} ({name})"


def finish_wandb(loggers) -> None:
    """Close the W&B run: each job of a multirun is its own run, even in one process."""
    if any(type(lg).__name__ == "WandbLogger" for lg in loggers):
        import wandb

        wandb.finish()


def train(cfg: DictConfig) -> dict:
    out_dir = Path(cfg.paths.output_dir)
    metrics_file = out_dir / "metrics.json"
    if metrics_file.exists() and not cfg.rerun:
        log.info("already done, skipping: %s", metrics_file)
        return json.loads(metrics_file.read_text())
    if cfg.gpu_slots:
        log.info("GPU slot %d (CUDA_VISIBLE_DEVICES)", claim_gpu_slot(cfg.gpu_slots))
    pl.seed_everything(cfg.seed, workers=True)

    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()  # missing / corrupt files fail here, before a trainer exists
    method = instantiate(cfg.method, net=instantiate(cfg.net), _convert_="all")
    datamodule.expose_target_labels = method.uses_target_labels
    clock = TrainingClock()
    callbacks = [clock, *(instantiate(c) for c in (cfg.callbacks or {}).values())]
    loggers = [instantiate(c) for c in (cfg.logger or {}).values()]
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    commit = git_commit()
    run_config = OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=True)
    for logger in loggers:
        logger.log_hyperparams({"config": run_config, "commit": commit})

    last = out_dir / "checkpoints" / "last.ckpt"
    ckpt_path = cfg.ckpt_path or (str(last) if last.exists() else None)
    if ckpt_path:
        log.info("resuming from %s", ckpt_path)
    trainer.fit(method, datamodule=datamodule, ckpt_path=ckpt_path)
    trainer.save_checkpoint(last)
    if trainer.interrupted or trainer.global_step < trainer.max_steps:
        raise RunInterrupted(f"stopped at step {trainer.global_step} of {trainer.max_steps}; saved {last}. "
                             f"Run the same command again to resume.")
    validated = {k: v for per_loader in trainer.validate(method, datamodule=datamodule, verbose=False)
                 for k, v in per_loader.items()}
    tested = {k: v for per_loader in trainer.test(method, datamodule=datamodule, verbose=False)
              for k, v in per_loader.items()}

    metrics = {
        "method": cfg.names.method, "data": cfg.names.data, "net": cfg.names.net, "seed": cfg.seed,
        **{k: float(v) for k, v in {**validated, **tested}.items()},
        "splits": datamodule.split_sizes,
        "steps": trainer.global_step, "max_steps": trainer.max_steps, "wall_s": round(clock.seconds, 2),
        "selection": cfg.selection, "commit": commit, "device": device_name(trainer),
        "visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "resumed_from": ckpt_path, "table": cfg.get("table_name"),
        "overrides": list(cfg.get("overrides_list") or []), "target_metric": method.target_metric,
    }
    finish_wandb(loggers)
    if not trainer.is_global_zero:
        return metrics
    metrics_file.parent.mkdir(parents=True, exist_ok=True)
    metrics_file.write_text(json.dumps(metrics, indent=2) + "\n")
    log.info("%s %.4f -> %s", metrics["target_metric"], metrics[metrics["target_metric"]], metrics_file)
    return metrics


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    try:
        metrics = train(cfg)
    except DataError as err:
        print(f"da_bench: data error: {err}", file=sys.stderr)
        sys.exit(2)
    except InstantiationException as err:
        if not isinstance(err.__cause__, ValueError):
            raise
        print(f"da_bench: config error: {err.__cause__}", file=sys.stderr)  # e.g. a method that does not fit the data
        sys.exit(2)
    except RunInterrupted as err:
        print(f"da_bench: interrupted: {err}", file=sys.stderr)
        sys.exit(130)
    return metrics[metrics["target_metric"]]


if __name__ == "__main__":
    main()
