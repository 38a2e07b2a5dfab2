"""Train one method on one domain pair and write its metrics.

    python -m da_bench.train method=dann data=mnist_mnistm seed=0        (or: da-bench-train ...)
    python -m da_bench.train --help                                      (every config group and option)

The recipe, top to bottom: check the config; lock the run directory; seed; instantiate the datamodule, the
net and the method, callbacks, loggers, trainer; fit (resuming from ckpt_path, or from the run
directory's last good checkpoint when a run is re-launched); score the weights of the last step on the
held-out val splits, then, once, on the source and target test sets (and each validator's picked snapshot:
da_bench/snapshots.py); write metrics.json (with the split sizes). A run whose metrics.json exists is done
and is skipped when launched again (rerun=true archives it and trains anew). Only a run that reached
max_steps with finite losses and weights writes metrics.json.

Exit codes: 0 done (or skipped), 2 a config / data / checkpoint problem, 3 NaN or inf in training, 4 the
run directory is busy or not writable, 130 Ctrl-C, 143 SIGTERM (both checkpoint first; relaunch resumes).
Errors are one line; HYDRA_FULL_ERROR=1 shows the traceback.
"""
from __future__ import annotations

import json
import logging
from contextlib import nullcontext
import os
import sys
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities.exceptions import SIGTERMException

from da_bench import grid, snapshots
from da_bench.callbacks import NonFiniteError, RandomState, TrainingClock, nonfinite_parameters
from da_bench.checkpoints import (AtomicCheckpointIO, check_checkpoint_fits, checkpoint_file, previous_of,
                                  read_checkpoint, resume_checkpoint)
from da_bench.checks import ConfigError, validate_config
from da_bench.devices import claim_gpu_slot
from da_bench.errors import RunInterrupted, one_line
from da_bench.loggers import ResumableCSVLogger, drop_rows_after
from da_bench.provenance import cpu_name, git_commit
from da_bench.run_dir import (RunLock, archive_run, discard_unstarted_run, launched_by_ddp, register_resolvers,
                              writable_run_dir)

log = logging.getLogger("da_bench.train")
register_resolvers()


def device_name(trainer: pl.Trainer) -> str:
    device = trainer.strategy.root_device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    return f"{device.type} x{trainer.world_size} ({name})"


def intervals_in_calls(cfg: DictConfig) -> dict:
    """The trainer's intervals, which the config counts in updates, in training_step calls (Lightning's
    count), each of updates_per_step updates."""
    updates = cfg.updates_per_step
    return {"val_check_interval": cfg.trainer.val_check_interval // updates,
            "log_every_n_steps": max(1, cfg.trainer.log_every_n_steps // updates)}


def finish_wandb(loggers) -> None:
    """Close the W&B run: each job of a multirun is its own run, even in one process."""
    if any(type(lg).__name__ == "WandbLogger" for lg in loggers):
        import wandb

        wandb.finish()


def train(cfg: DictConfig) -> dict:
    validate_config(cfg)
    out_dir = writable_run_dir(Path(cfg.paths.output_dir))
    with nullcontext() if launched_by_ddp() else RunLock(out_dir):
        return train_locked(cfg, out_dir)


def train_locked(cfg: DictConfig, out_dir: Path) -> dict:
    metrics_file = out_dir / "metrics.json"
    if metrics_file.exists() and not cfg.rerun:
        log.info("already done, skipping: %s", metrics_file)
        return json.loads(metrics_file.read_text())
    if cfg.rerun and not launched_by_ddp() and (archived := archive_run(out_dir)):
        log.info("rerun=true: the earlier run's files moved to %s", archived)
    if cfg.gpu_slots:
        log.info("GPU %d (CUDA_VISIBLE_DEVICES)", claim_gpu_slot(cfg.gpu_slots, jobs_per_gpu=cfg.jobs_per_gpu))
    pl.seed_everything(cfg.seed, workers=True)

    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()  # missing / corrupt files fail here, before a trainer exists
    method = instantiate(cfg.method, net=instantiate(cfg.net), _convert_="all")
    datamodule.expose_target_labels = method.uses_target_labels
    ckpt_path = checkpoint_file(cfg.ckpt_path) if cfg.ckpt_path else resume_checkpoint(out_dir / "checkpoints")
    resumed_step = 0
    if ckpt_path:
        state = read_checkpoint(ckpt_path)
        check_checkpoint_fits(ckpt_path, state, method)
        resumed_step = state["global_step"]
        del state
    clock = TrainingClock()
    callbacks = [clock, RandomState(), *(instantiate(c) for c in (cfg.callbacks or {}).values())]
    if cfg.selection != snapshots.LAST_STEP and not (snapshots.find(callbacks) and snapshots.supported(method)):
        raise ConfigError(f"selection={cfg.selection}: {cfg.names.method} has no snapshot validation "
                          "(no embed(x, domain), or callbacks.snapshots removed); use selection=last_step")
    loggers = [instantiate(c) for c in (cfg.logger or {}).values()]
    datamodule.updates_per_step = cfg.updates_per_step
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                                      plugins=[AtomicCheckpointIO()], **intervals_in_calls(cfg))
    commit = git_commit()
    run_config = OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=True)
    for logger in loggers:
        logger.log_hyperparams({"config": run_config, "commit": commit})

    if ckpt_path:
        for logger in loggers:
            if isinstance(logger, ResumableCSVLogger):
                drop_rows_after(logger.experiment.metrics_file_path, resumed_step)
        log.info("resuming from %s (step %d)", ckpt_path, resumed_step)
    last = out_dir / "checkpoints" / "last.ckpt"
    try:
        trainer.fit(method, datamodule=datamodule, ckpt_path=ckpt_path)
    except SIGTERMException:
        raise RunInterrupted(f"SIGTERM at step {trainer.global_step}; checkpoint {last}. "
                             "Launch the same command again to resume.", 143) from None
    except SystemExit:  # Lightning's answer to Ctrl-C, after the on-exception checkpoint
        raise RunInterrupted(f"interrupted at step {trainer.global_step}; checkpoint {last}. "
                             "Launch the same command again to resume.", 130) from None
    if trainer.global_step < trainer.max_steps:
        raise RunInterrupted(f"stopped at step {trainer.global_step} of {trainer.max_steps}; checkpoint {last}. "
                             "Launch the same command again to resume.", 130)
    if bad := nonfinite_parameters(method):
        raise NonFiniteError(f"non-finite weights ({', '.join(bad[:3])}) at the end of training")
    trainer.save_checkpoint(last, weights_only=False)  # full state: a kill before metrics.json resumes here
    validated = {k: v for per_loader in trainer.validate(method, datamodule=datamodule, verbose=False)
                 for k, v in per_loader.items()}
    tested = {k: v for per_loader in trainer.test(method, datamodule=datamodule, verbose=False)
              for k, v in per_loader.items()}

    selector = snapshots.find(callbacks)
    last = {k: v for k, v in tested.items() if k in (method.target_metric, method.target_metric.replace("tgt", "src"))}
    selections = selector.selections(method, datamodule.test_dataloader(), last) if selector else {}
    metrics = {
        "method": cfg.names.method, "data": cfg.names.data, "net": cfg.names.net, "seed": cfg.seed,
        **{k: float(v) for k, v in {**validated, **tested}.items() if k != "step"},  # step: the loggers' x axis
        "splits": datamodule.split_sizes,
        "steps": trainer.global_step, "max_steps": trainer.max_steps, "wall_s": round(clock.seconds, 2),
        "selection": cfg.selection, "commit": commit, "device": device_name(trainer),
        "visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "resumed_from": str(ckpt_path) if ckpt_path else None,
        "table": cfg.get("table_name"), "overrides": list(cfg.get("overrides_list") or []),
        "target_metric": method.target_metric,
        "selections": selections, "snapshots": selector.history if selector else [],
    }
    if "val/src_acc" in metrics:  # finite, but the source task itself was lost (e.g. WDGRL's zeroed features)
        metrics["collapsed"] = metrics["val/src_acc"] < 2.0 / datamodule.num_classes
        if metrics["collapsed"]:
            log.warning("source val accuracy %.3f is near chance: the run collapsed (recorded, and flagged in "
                        "tables)", metrics["val/src_acc"])
    finish_wandb(loggers)
    if not trainer.is_global_zero:
        return metrics
    tmp = metrics_file.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(metrics, indent=2) + "\n")
    os.replace(tmp, metrics_file)
    # The backup only guards a kill mid-write; a finished run keeps last.ckpt alone (half the disk per run).
    previous_of(out_dir / "checkpoints" / "last.ckpt").unlink(missing_ok=True)
    log.info("%s %.4f (%s) -> %s", metrics["target_metric"], snapshots.reported(metrics), cfg.selection, metrics_file)
    return metrics


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    run_dir = cfg.paths.output_dir
    try:
        metrics = train(cfg)
    except RunInterrupted as err:
        print(f"da_bench: interrupted: {err}", file=sys.stderr)
        grid.record("interrupted", run_dir, str(err))
        grid.report_interrupted()
        sys.exit(err.exit_code)
    except Exception as err:
        found = one_line(err)
        if found is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        message, code = found
        print(f"da_bench: {message}", file=sys.stderr)
        if isinstance(err, ConfigError):
            discard_unstarted_run(run_dir, cfg.paths.log_dir)
        if not grid.in_multirun():
            sys.exit(code)
        grid.record("failed", run_dir, message)  # the grid goes on; GridReport exits 1 at its end
        return None
    grid.record("done", run_dir)
    return snapshots.reported(metrics)


if __name__ == "__main__":
    main()
