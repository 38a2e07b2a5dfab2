"""hydra-submitit-launcher's launchers with what a grid of long runs needs (`launcher=slurm`, `launcher=slurm_local`).

- A job that ends without a result (killed, out of memory, timed out more than `max_num_timeout` times) is
  recorded in its grid's status file as lost, with submitit's reason and the job's log, and the grid goes on
  to its summary (da_bench/grid.py); the plugin's own launch re-raises there and the summary never comes.
- `LocalLauncher` takes the SLURM preset's keys: the ones only SLURM knows (partition, array_parallelism,
  mem_gb, ...) are named once and ignored, so `launcher=slurm_local` rehearses `launcher=slurm` on one
  machine, with its `signal_delay_s` and `max_num_timeout`, which the plugin's local config cannot set.
- Requeue after a time limit or preemption is the plugin's: submitit signals the job `signal_delay_s` before its
  limit, the plugin's `checkpoint` resubmits the same job, and submitit's requeue exit leaves the process
  (da_bench's recipe checkpoints and lets it through); the requeued job resumes from its last.ckpt.
Scanned by Hydra at every start, so it imports only the plugin (submitit itself when a grid launches).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides

try:
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher
except ImportError:  # the launchers extra is not installed: no submitit launcher, nothing to define
    BaseSubmititLauncher = None

log = logging.getLogger(__name__)
LOCAL_KEYS = {"timeout_min", "gpus_per_node", "tasks_per_node", "nodes", "signal_delay_s", "stderr_to_stdout",
              "visible_gpus", "setup"}  # what submitit's LocalExecutor reads


def last_status(status_path: Path, job: int) -> str | None:
    rows = [json.loads(line) for line in status_path.read_text().splitlines() if line.strip()] \
        if status_path.exists() else []
    return next((r["status"] for r in reversed(rows) if r.get("job") == job), None)


if BaseSubmititLauncher is not None:
    class GridLauncher(BaseSubmititLauncher):
        """The plugin's launcher with each job's end recorded in the grid, whatever it was (see module)."""

        def executor(self, params: dict) -> Any:
            raise NotImplementedError

        def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
            from da_bench import grid

            sweep_dir = Path(str(self.config.hydra.sweep.dir))
            sweep_dir.mkdir(parents=True, exist_ok=True)
            executor = self.executor(dict(self.params))
            job_params = []
            for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
                log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
                job_params.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
            jobs = executor.map_array(self, *zip(*job_params))
            status = grid.status_file(sweep_dir, self.config.grid_id)
            returns = []
            for job, (overrides, _, idx, _, _) in zip(jobs, job_params):
                try:
                    returns.append(job.results()[0])
                except Exception as err:  # no result: the job's process died, or gave up requeueing
                    if last_status(status, idx) not in ("failed", "interrupted"):  # else the job said why itself
                        reason = (str(err).strip().splitlines() or [""])[0]
                        grid.append(status, idx, "lost", " ".join(filter_overrides(overrides)),
                                    f"{type(err).__name__}: {reason}; log: {job.paths.stderr}")
                    returns.append(JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED))
            return returns

    class SlurmLauncher(GridLauncher):
        _EXECUTOR = "slurm"

        def executor(self, params: dict) -> Any:
            import submitit

            executor = submitit.AutoExecutor(folder=params.pop("submitit_folder"), cluster="slurm",
                                             slurm_max_num_timeout=params.pop("max_num_timeout"))
            shared = set(BaseQueueConf.__dataclass_fields__)
            executor.update_parameters(**{k if k in shared else f"slurm_{k}": v for k, v in params.items()})
            return executor

    class LocalLauncher(GridLauncher):
        """One machine, the SLURM preset's keys: what SLURM alone reads is named and ignored."""
        _EXECUTOR = "local"

        def executor(self, params: dict) -> Any:
            import submitit

            executor = submitit.LocalExecutor(folder=params.pop("submitit_folder"),
                                              max_num_timeout=params.pop("max_num_timeout", 3))
            ignored = sorted(k for k, v in params.items() if k not in LOCAL_KEYS and k != "name" and v not in (None, {}))
            if ignored:
                log.info("launcher=slurm_local: SLURM-only keys not used on this machine: %s", ", ".join(ignored))
            executor.update_parameters(**{k: v for k, v in params.items() if k in LOCAL_KEYS and v is not None})
            return executor
