"""What a multirun grid did, job by job, and an exit code that says it.

Every multirun has its own id, `grid_id` (made once by the launching process: time, host and pid; Hydra copies
the resolved value into each job's config, so every job of the grid reads the same one in any worker process
or cluster node), and its own status file, <sweep dir>/grids/<grid_id>.jsonl. Each job appends one line per
event (done / skipped / failed / interrupted / requeued, with its job number and run directory); the last
line of a job is its state. Two grids launched at once under one log dir each report only their own jobs.
`GridReport`, a Hydra callback, prints the summary when the grid ends and exits 1 if any job failed or was
interrupted; if the launching process ends without reaching that point, the summary so far is printed at exit.

An interrupted job (SIGTERM from SLURM or `timeout`, Ctrl-C) under the default launcher stops the grid at
once: the job prints the summary so far and exits 143 / 130; the jobs not yet started run when the same
command is launched again (finished ones are skipped, the interrupted one resumes).

`dry_run=true` lists the grid's cells without training: done (metrics.json), partial (a checkpoint, with the
last step of its curve), failed (the run's failed.txt, written when a run fails after it started) or missing.
"""
from __future__ import annotations

import atexit
import json
import os
import socket
import sys
import time
from collections import Counter
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode

GRIDS_DIR = "grids"
PROBLEMS = ("failed", "interrupted", "lost")


def new_grid_id() -> str:
    """The `${grid_id:}` resolver (cached: resolved once in the launching process, copied into every job)."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{socket.gethostname()}-{os.getpid()}"


def status_file(sweep_dir, grid_id: str) -> Path:
    return Path(str(sweep_dir)) / GRIDS_DIR / f"{grid_id}.jsonl"


def _job_status_file(cfg) -> Path | None:
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return status_file(HydraConfig.get().sweep.dir, cfg.grid_id)


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def append(path: Path, job, status: str, run_dir, message: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"job": job, "status": status, "run_dir": str(run_dir), "message": message}) + "\n"
    with open(path, "a") as f:  # one short write per line: appends from several processes do not interleave
        f.write(line)


def record(cfg, status: str, message: str = "") -> None:
    """This job's event in its grid's status file (nothing outside a multirun)."""
    path = _job_status_file(cfg)
    if path is not None:
        append(path, HydraConfig.get().job.num, status, cfg.paths.output_dir, message)


def summary(path: Path, dry_run: bool = False) -> tuple[str, Counter]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    last = {}
    for row in rows:
        last[row.get("job", len(last))] = row
    counts = Counter(r["status"] for r in last.values())
    title = "da_bench grid (dry run)" if dry_run else "da_bench grid"
    lines = [f"{title}: " + (", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no job reported")]
    shown = ("done", "skipped", "requeued") if not dry_run else ("done",)
    lines += [f"  {r['status']}: {r['run_dir']}" + (f" ({r['message']})" if r["message"] else "")
              for r in last.values() if r["status"] not in shown]
    return "\n".join(lines), counts


def report_interrupted(cfg) -> None:
    path = _job_status_file(cfg)
    if path is not None:
        text, _ = summary(path)
        print(text + "\n  the jobs after it did not start: launch the same command again to continue",
              file=sys.stderr)


class GridReport(Callback):
    def __init__(self):
        self.path, self.reported, self.dry_run, self.reads_labels = None, False, False, False

    def on_multirun_start(self, config, **kwargs) -> None:
        self.path = status_file(config.hydra.sweep.dir, config.grid_id)  # resolves (and caches) the grid's id
        self.dry_run = bool(config.get("dry_run"))
        self.reads_labels = config.get("optimized_metric") == "oracle"
        atexit.register(self._report_if_cut_short)

    def on_multirun_end(self, config, **kwargs) -> None:
        self.reported = True
        text, counts = summary(self.path, self.dry_run)
        print(text, file=sys.stderr)
        if self.reads_labels:
            print("da_bench grid: optimized_metric=oracle: the values the jobs returned to the sweeper read target "
                  "val labels", file=sys.stderr)
        if not self.dry_run and any(counts[s] for s in PROBLEMS):
            sys.exit(1)

    def _report_if_cut_short(self) -> None:
        """The launching process is ending before the grid's end (the launcher raised): the summary so far."""
        if not self.reported and self.path is not None:
            text, _ = summary(self.path, self.dry_run)
            print(text + "\n  the grid stopped before its end: launch the same command again to continue",
                  file=sys.stderr)
