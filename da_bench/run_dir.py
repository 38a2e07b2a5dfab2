"""Run directories derived from a run's overrides, so a relaunched grid finds its finished runs.

<log_dir>/runs/<data>/<method>/seed<seed>/<suffix>, where the suffix lists the run's other overrides
(those that change what is measured: not paths, progress bars, loggers, ...) as key-value joined by '+'
(e.g. `trainer.max_steps-2000+data.batch_size-8`), or 'defaults' when there are none; it holds no '=' or
',' so that a run directory can be passed back on the command line (ckpt_path=..., source_checkpoint=...)
unquoted. A suffix longer than 80 characters becomes 'h' + 12 hex of its sha1. Two different jobs never
share a directory and the same job always lands in the same one.

`RunLock` keeps a second process out of a run directory that one is training in; `archive_run` moves a
finished or broken run's files aside for `rerun=true`.
"""
from __future__ import annotations

import csv
import fcntl
import hashlib
import os
import re
import shutil
import sys
import time
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import OmegaConf

from da_bench.errors import RunDirBusy, RunDirError

# overrides that do not change what a run measures, or that are already part of its directory
NEUTRAL_PREFIXES = ("method=", "data=", "seed=", "table=", "paths.", "callbacks.progress_bar", "logger", "rerun=",
                    "download=", "ckpt_path=", "hydra.", "trainer.accelerator=",
                    "trainer.enable_progress_bar=", "launcher=", "gpu_slots=", "jobs_per_gpu=", "table_name=",
                    "dry_run=", "cpus_per_job=", "grid_id=", "optimized_metric=", "hparams_search=")


def measured_overrides(overrides) -> list[str]:
    """The overrides that change what a run measures, sorted; a deletion keeps its '~' (the run without a
    callback, e.g. ~callbacks.channels_last, is not the run with it)."""
    kept = (o.lstrip("+") for o in overrides)
    return sorted(o for o in kept if not o.lstrip("~").startswith(NEUTRAL_PREFIXES))


def run_suffix(overrides) -> str:
    """The run directory's last part. Not Hydra's override_dirname: that excludes keys only by exact name (here
    whole prefixes such as `paths.` and `hydra.` do not change what is measured), keeps `=` and `,` (which a
    path passed back on the command line cannot hold) and has no bound on the length."""
    joined = ",".join(measured_overrides(overrides or []))
    if not joined:
        return "defaults"
    safe = re.sub(r"[^A-Za-z0-9_.+-]", "_", joined.replace("=", "-").replace(",", "+"))
    if len(safe) <= 80:
        return safe
    return "h" + hashlib.sha1(joined.encode()).hexdigest()[:12]


def run_hash(output_dir: str) -> str:
    """A stable id for the run in `output_dir` (its W&B run id: a resumed run continues the same one). Each
    `rerun=true` archives the earlier attempt (archive_run), and the next attempt gets an id of its own."""
    attempts = len(list((Path(str(output_dir)) / "archive").glob("*")))
    key = str(output_dir) + (f"#{attempts}" if attempts else "")
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def steps_per_snapshot(max_steps: int, snapshots: int, updates_per_step: int = 1) -> int:
    """trainer.val_check_interval: `snapshots` validations spread over the run, at a multiple of
    updates_per_step (Lightning validates between training_steps)."""
    k = max(1, int(updates_per_step))
    return max(k, int(max_steps) // max(1, int(snapshots)) // k * k)


def register_resolvers() -> None:
    from da_bench.grid import new_grid_id

    for name, fn in (("run_suffix", run_suffix), ("run_hash", run_hash), ("steps_per_snapshot", steps_per_snapshot),
                     ("product", lambda a, b: int(a) * int(b)), ("cpu_share", cpu_share),
                     ("if_null", lambda value, default: default if value is None else value)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
    if not OmegaConf.has_resolver("grid_id"):  # cached: one value per grid, copied into every job's config
        OmegaConf.register_new_resolver("grid_id", new_grid_id, use_cache=True)


def cpu_share(jobs) -> int:
    """The cores each of `jobs` parallel jobs on this machine gets (at least 1)."""
    return max(1, (os.cpu_count() or 1) // max(1, int(jobs)))


class OutputDirCheck(Callback):
    """Hydra creates the run (or sweep) directory before da_bench's code runs, so a read-only or full log dir
    would be a Hydra traceback: this Hydra callback checks it first and stops with one line and exit 4."""

    def on_run_start(self, config, **kwargs) -> None:
        from hydra.core.hydra_config import HydraConfig

        HydraConfig.instance().set_config(config)  # the run dir reads ${hydra:runtime.choices...}; run_job sets it again
        self._check(config.hydra.run.dir)

    def on_multirun_start(self, config, **kwargs) -> None:
        self._check(config.hydra.sweep.dir)

    @staticmethod
    def _check(directory) -> None:
        try:
            writable_run_dir(Path(str(directory)))
        except RunDirError as err:
            print(f"da_bench: run directory error: {err}", file=sys.stderr)
            sys.exit(4)


def writable_run_dir(out_dir: Path) -> Path:
    """out_dir, created if needed, after a test write (a read-only or full disk is named now, not at the
    first checkpoint)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".write_test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise RunDirError(f"cannot write the run directory {out_dir}: {err.strerror}") from None
    return out_dir


def launched_by_ddp() -> bool:
    """A process that Lightning's DDP launcher started for rank > 0 (it re-runs the script): the run
    directory's lock and files belong to the rank-0 process that launched it."""
    return int(os.environ.get("LOCAL_RANK", "0")) > 0 or int(os.environ.get("NODE_RANK", "0")) > 0


class RunLock:
    """An exclusive, non-blocking lock on <run dir>/.lock holding the owner's pid and host. The OS drops it
    when the process ends (a kill -9 too), so a stale file never blocks a relaunch."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / ".lock"
        self.handle = None

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise RunDirBusy(f"run directory {self.path.parent} is in use by {owner}; wait for it or stop it") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {os.uname().nodename}\n")
        handle.flush()
        self.handle = handle
        return self

    def __exit__(self, *exc):
        # unlock explicitly: a process forked meanwhile (a DataLoader worker) shares the file and would keep
        # the lock past close(); the file stays (unlinking could race a waiting process)
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def archive_run(run_dir: Path) -> Path | None:
    """Move everything in run_dir but the lock into run_dir/archive/<time>/ (rerun=true starts afresh)."""
    run_dir = Path(run_dir)
    entries = [p for p in run_dir.iterdir() if p.name not in (".lock", "archive", ".hydra")] if run_dir.is_dir() else []
    if not entries:
        return None
    target = run_dir / "archive" / time.strftime("%Y%m%d-%H%M%S")
    target.mkdir(parents=True, exist_ok=True)
    for p in entries:
        shutil.move(str(p), target / p.name)
    return target


FAILED_MARK = "failed.txt"  # a run that failed after it started: its one-line reason (removed by a finished run)


def mark_failed(run_dir: Path, message: str) -> None:
    run_dir = Path(run_dir)
    if run_dir.is_dir():
        (run_dir / FAILED_MARK).write_text(message + "\n")


def curve_last_step(curve: Path) -> int | None:
    if not curve.exists():
        return None
    with open(curve, newline="") as f:
        return max((int(float(row["step"])) for row in csv.DictReader(f) if row.get("step")), default=None)


def run_state(run_dir: Path) -> tuple[str, str]:
    """(state, detail) of a grid cell, read from its files without torch: done, failed, partial or missing."""
    run_dir = Path(run_dir)
    if (run_dir / "metrics.json").exists():
        return "done", ""
    if (run_dir / FAILED_MARK).exists():
        return "failed", (run_dir / FAILED_MARK).read_text().strip()
    if (run_dir / "checkpoints" / "last.ckpt").exists():
        reached = curve_last_step(run_dir / "csv" / "metrics.csv")
        return "partial", "a checkpoint" + (f", curve to step {reached}" if reached is not None else "")
    return "missing", ""


LAUNCH_ONLY = {".hydra", "train.log"}  # what Hydra writes into a run directory before the task runs


def discard_unstarted_run(run_dir: Path, log_dir: Path) -> None:
    """Remove a run directory that holds only what Hydra wrote at launch, and the folders above it that this
    leaves empty (up to log_dir): a run refused for its config leaves nothing to mistake for a run. A directory
    with anything else in it (a checkpoint, metrics, a lock) is left as it is."""
    run_dir, log_dir = Path(run_dir).resolve(), Path(log_dir).resolve()
    if not run_dir.is_dir() or not {p.name for p in run_dir.iterdir()} <= LAUNCH_ONLY:
        return
    shutil.rmtree(run_dir)
    for parent in run_dir.parents:
        if log_dir not in parent.parents or any(parent.iterdir()):  # log_dir itself stops it too
            break
        parent.rmdir()
