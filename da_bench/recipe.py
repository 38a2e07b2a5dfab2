"""The recipe of one training run, top to bottom. da_bench/train.py, the command line, calls `run` once the
config is checked and the run directory is locked; this module imports torch and Lightning, that one does not.

Seed; instantiate the datamodule, the update runner (both with updates_per_step), the net and the method
(with the runner), callbacks, loggers, trainer; fit (resuming from
ckpt_path, or from the run directory's last good checkpoint when a run is re-launched); score the weights
of the last step on the held-out val splits, then, once, on the source and target test sets (and each
validator's picked snapshot: da_bench/snapshots.py); write metrics.json (with the split sizes). Only a run
that reached max_steps with finite losses and weights writes metrics.json.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Timer
from pytorch_lightning.utilities.exceptions import SIGTERMException

from da_bench import snapshots
from da_bench.callbacks import LastCheckpoint, RandomState, RunIdentity, SigtermFlag, nonfinite_parameters
from da_bench.checkpoints import (AtomicCheckpointIO, check_checkpoint_belongs, check_checkpoint_fits, checkpoint_file,
                                  previous_of, read_checkpoint, resume_checkpoint)
from da_bench.errors import ConfigError, NonFiniteError, RunInterrupted
from da_bench.loggers import ResumableCSVLogger, drop_rows_after, publish_to_wandb
from da_bench.provenance import cpu_name, git_commit
from da_bench.rules import LAST_STEP, reported
from da_bench.run_dir import FAILED_MARK, launched_by_ddp
from da_bench.tables import paper_numbers

log = logging.getLogger("da_bench.train")


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


def run(cfg: DictConfig, out_dir: Path) -> dict:
    """Train, score and write out_dir/metrics.json; returns the metrics."""
    with SigtermFlag() as sigterm:
        return _run(cfg, out_dir, sigterm)


def _run(cfg: DictConfig, out_dir: Path, sigterm: SigtermFlag) -> dict:
    if cfg.get("cpus_per_job"):  # parallel jobs on one machine would otherwise each take every core
        torch.set_num_threads(int(cfg.cpus_per_job))
    pl.seed_everything(cfg.seed, workers=True)

    datamodule = instantiate(cfg.data, updates_per_step=cfg.updates_per_step,
                             expose_target_labels=get_class(cfg.method._target_).uses_target_labels)
    datamodule.prepare_data()  # missing / corrupt files fail here, before a trainer exists
    runner = instantiate(cfg.runner, updates_per_step=cfg.updates_per_step)
    method = instantiate(cfg.method, net=instantiate(cfg.net), runner=runner, _convert_="all")
    ckpt_path = checkpoint_file(cfg.ckpt_path) if cfg.ckpt_path else resume_checkpoint(out_dir / "checkpoints")
    identity = {"method": cfg.names.method, "data": cfg.names.data, "net": cfg.names.net, "seed": cfg.seed,
                "max_steps": cfg.trainer.max_steps}
    resumed_step = 0
    if ckpt_path:
        state = read_checkpoint(ckpt_path)
        check_checkpoint_fits(ckpt_path, state, method)
        check_checkpoint_belongs(ckpt_path, state, identity)
        resumed_step = state["global_step"]
        del state
    clock = Timer()  # training seconds (validation included), summed over a resumed run's segments
    callbacks = [clock, RandomState(), RunIdentity(identity),
                 *(instantiate(c) for c in (cfg.callbacks or {}).values())]
    if cfg.selection != LAST_STEP and not snapshots.find(callbacks):
        raise ConfigError(f"selection={cfg.selection}: callbacks.snapshots was removed, so there are no snapshots "
                          "to select from; use selection=last_step")
    loggers = [instantiate(c) for c in (cfg.logger or {}).values()]
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                                      plugins=[AtomicCheckpointIO()], **intervals_in_calls(cfg))
    commit = git_commit()
    run_config = OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=True)
    for logger in loggers:
        logger.log_hyperparams({"config": run_config, "commit": commit})

    for logger in loggers if not launched_by_ddp() else []:  # rank 0 owns the curve
        if isinstance(logger, ResumableCSVLogger):  # a fresh start drops a killed attempt's rows as well
            drop_rows_after(logger.experiment.metrics_file_path, resumed_step if ckpt_path else -1)
    if ckpt_path:
        log.info("resuming from %s (step %d)", ckpt_path, resumed_step)
    last_ckpt = out_dir / "checkpoints" / "last.ckpt"
    resume = f"checkpoint {last_ckpt}. Launch the same command again to resume."
    phase = "before training"
    try:
        sigterm.check()
        phase = "in training"
        trainer.fit(method, datamodule=datamodule, ckpt_path=ckpt_path)
        if trainer.global_step < trainer.max_steps:
            raise RunInterrupted(f"stopped at step {trainer.global_step} of {trainer.max_steps}; {resume}", 130)
        if bad := nonfinite_parameters(method):
            raise NonFiniteError(f"non-finite weights ({', '.join(bad[:3])}) at the end of training")
        if not any(isinstance(c, LastCheckpoint) for c in callbacks):  # it saved the finished state already
            trainer.save_checkpoint(last_ckpt, weights_only=False)  # full state: a kill before metrics.json resumes here
        phase = "while testing the trained weights"
        sigterm.check()
        validated = {k: v for per_loader in trainer.validate(method, datamodule=datamodule, verbose=False)
                     for k, v in per_loader.items()}
        sigterm.check()
        tested = {k: v for per_loader in trainer.test(method, datamodule=datamodule, verbose=False)
                  for k, v in per_loader.items()}
        sigterm.check()
        selector = snapshots.find(callbacks)
        last_scores = {k: v for k, v in tested.items()
                       if k in (method.target_metric, method.target_metric.replace("tgt", "src"))}
        selections = selector.selections(method, datamodule.test_dataloader(), last_scores) if selector else {}
        sigterm.check()
    except SIGTERMException:  # Lightning's, or ours from sigterm.check(); the training state is in last_ckpt
        raise RunInterrupted(f"SIGTERM {phase} at step {trainer.global_step}; {resume}", 143) from None
    except KeyboardInterrupt:
        raise RunInterrupted(f"interrupted {phase} at step {trainer.global_step}; {resume}", 130) from None
    except SystemExit as stop:
        if not isinstance(stop.__context__, KeyboardInterrupt):
            # submitit's exit after its checkpoint hook requeued the job (a time limit or preemption): its exit
            # code tells the cluster to requeue, and the requeued job resumes from last_ckpt
            log.warning("stopped by the launcher %s at step %d (exit %s); %s", phase, trainer.global_step,
                        stop.code, resume)
            raise
        raise RunInterrupted(f"interrupted {phase} at step {trainer.global_step}; {resume}", 130) from None
    metrics = {
        "method": cfg.names.method, "data": cfg.names.data, "net": cfg.names.net, "seed": cfg.seed,
        **{k: float(v) for k, v in {**validated, **tested}.items() if k != "step"},  # step: the loggers' x axis
        "splits": datamodule.split_sizes,
        "steps": trainer.global_step, "max_steps": trainer.max_steps, "wall_s": round(clock.time_elapsed("train"), 2),
        "selection": cfg.selection, "optimized_metric": cfg.get("optimized_metric"), "commit": commit, "device": device_name(trainer),
        "threads": torch.get_num_threads(),
        "visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "resumed_from": str(ckpt_path) if ckpt_path else None,
        "table": cfg.get("table_name"), "overrides": list(cfg.get("overrides_list") or []),
        "target_metric": method.target_metric,
        **({"confusion/test_tgt": confusion} if (confusion := getattr(method.task, "test_confusion", None)) else {}),
        "selections": selections, "snapshots": selector.history if selector else [],
    }
    if "val/src_acc" in metrics:  # finite, but the source task itself was lost (e.g. WDGRL's zeroed features)
        metrics["collapsed"] = metrics["val/src_acc"] < 2.0 / datamodule.num_classes
        if metrics["collapsed"]:
            log.warning("source val accuracy %.3f is near chance: the run collapsed (recorded, and flagged in "
                        "tables)", metrics["val/src_acc"])
    if not trainer.is_global_zero:
        finish_wandb(loggers)
        return metrics
    metrics_file = out_dir / "metrics.json"
    tmp = metrics_file.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(metrics, indent=2) + "\n")
    os.replace(tmp, metrics_file)
    (out_dir / FAILED_MARK).unlink(missing_ok=True)  # an earlier attempt's failure is not this run's state
    paper, _ = paper_numbers(cfg.get("table_name"))
    publish_to_wandb(loggers, metrics, out_dir, paper.get((cfg.names.data, cfg.names.method)))
    finish_wandb(loggers)
    # The backup only guards a kill mid-write; a finished run keeps last.ckpt alone (half the disk per run).
    previous_of(last_ckpt).unlink(missing_ok=True)
    log.info("%s %.4f (%s) -> %s", metrics["target_metric"], reported(metrics), cfg.selection, metrics_file)
    return metrics
