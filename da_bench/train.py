"""Train one method on one domain pair and write its metrics.

    python -m da_bench.train method=dann data=mnist_mnistm seed=0        (or: da-bench-train ...)
    python -m da_bench.train --help                                      (every config group and option)

The command, top to bottom: check the config; lock the run directory; skip a run whose metrics.json
exists (rerun=true archives it and trains anew); claim a GPU slot (launcher=per_gpu); then the recipe,
da_bench/recipe.py: seed, build, fit (or resume), score on the val splits, then once on the test sets,
write metrics.json. Only a run that reached max_steps with finite losses and weights writes it.
This module does not import torch or Lightning (the recipe does, ~5 s on a small CPU): `--help` and a
config error answer in about a second, and a grid skips its finished runs as fast.

Exit codes: 0 done (or skipped), 2 a config / data / checkpoint problem, 3 NaN or inf in training, 4 the
run directory is busy or not writable, 130 Ctrl-C, 143 SIGTERM (both checkpoint first; relaunch resumes).
Errors are one line; HYDRA_FULL_ERROR=1 shows the traceback.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from contextlib import nullcontext
from pathlib import Path

import hydra
from omegaconf import DictConfig

from da_bench import grid
from da_bench.checks import validate_config
from da_bench.devices import claim_gpu_slot
from da_bench.errors import ConfigError, RunInterrupted
from da_bench.report import one_line
from da_bench.rules import objective
from da_bench.run_dir import (RunLock, archive_run, discard_unstarted_run, launched_by_ddp, mark_failed,
                              register_resolvers, run_state, writable_run_dir)

log = logging.getLogger("da_bench.train")
register_resolvers()


def train(cfg: DictConfig) -> dict:
    validate_config(cfg)
    if cfg.get("dry_run"):
        state, detail = run_state(Path(cfg.paths.output_dir))
        log.info("dry run: %s %s%s", state, cfg.paths.output_dir, f" ({detail})" if detail else "")
        grid.record(cfg, state, detail)
        discard_unstarted_run(cfg.paths.output_dir, cfg.paths.log_dir)
        return {"dry_run": state}
    out_dir = writable_run_dir(Path(cfg.paths.output_dir))
    with nullcontext() if launched_by_ddp() else RunLock(out_dir):
        metrics_file = out_dir / "metrics.json"
        if metrics_file.exists() and not cfg.rerun:
            log.info("already done, skipping: %s", metrics_file)
            return json.loads(metrics_file.read_text())
        if cfg.rerun and not launched_by_ddp() and (archived := archive_run(out_dir)):
            log.info("rerun=true: the earlier run's files moved to %s", archived)
        if cfg.gpu_slots:  # before torch starts CUDA
            gpu = claim_gpu_slot(cfg.gpu_slots, jobs_per_gpu=cfg.jobs_per_gpu)
            if gpu is None:
                log.warning("launcher=per_gpu: this host has no NVIDIA GPU; the job runs on the CPU with %s threads",
                            cfg.cpus_per_job or "torch's default")
            else:
                log.info("GPU %d (CUDA_VISIBLE_DEVICES)", gpu)
        from da_bench import recipe  # torch and Lightning (~5 s): only a run that trains waits for them

        return recipe.run(cfg, out_dir)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    run_dir = cfg.paths.output_dir
    try:
        metrics = train(cfg)
    except RunInterrupted as err:
        stop(cfg, f"interrupted: {err}", err.exit_code)
    except KeyboardInterrupt:  # Ctrl-C before training started (the recipe answers the later ones)
        discard_unstarted_run(run_dir, cfg.paths.log_dir)
        stop(cfg, "interrupted before training started (Ctrl-C): nothing was trained", 130)
    except SystemExit as requeue:  # submitit's, after its checkpoint hook: the cluster requeues this job
        grid.record(cfg, "requeued", f"exit {requeue.code}")
        raise
    except Exception as err:
        found = one_line(err)
        if os.environ.get("HYDRA_FULL_ERROR") == "1" or (found is None and not grid.in_multirun()):
            raise
        if found is None:  # a bug, in one job of a grid: its traceback goes to the job's log, the grid goes on
            log.exception("unexpected error in this job")
            found = (f"unexpected {type(err).__name__}: {err}".splitlines()[0], 1)
        message, code = found
        print(f"da_bench: {message}", file=sys.stderr)
        if isinstance(err, ConfigError):
            discard_unstarted_run(run_dir, cfg.paths.log_dir)
        elif code != 4:  # 4: the directory is busy (another process's) or cannot be written
            mark_failed(Path(run_dir), message)
        if not grid.in_multirun():
            sys.exit(code)
        grid.record(cfg, "failed", message)  # the grid goes on; GridReport exits 1 at its end
        return None
    if "dry_run" in metrics:
        return None
    grid.record(cfg, "done")
    if cfg.optimized_metric == "oracle":
        log.warning("optimized_metric=oracle: the value a sweeper optimises reads target (val) labels")
    return objective(metrics, cfg.optimized_metric)


def stop(cfg: DictConfig, message: str, code: int) -> None:
    """An interruption: its line, the grid's summary so far, and its exit code (the grid stops with it)."""
    print(f"da_bench: {message}", file=sys.stderr)
    grid.record(cfg, "interrupted", message)
    grid.report_interrupted(cfg)
    sys.exit(code)


if __name__ == "__main__":
    main()
