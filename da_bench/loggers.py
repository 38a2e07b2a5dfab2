"""A CSV logger whose curves survive resumes.

Lightning's CSVLogger deletes an existing metrics.csv when a run is re-launched in the same directory, so a
resumed run would lose its curve before the interruption. `ResumableCSVLogger` appends to it instead;
`drop_rows_after` removes the rows of steps that the resumed checkpoint had not reached yet (logged
after the last checkpoint by a process that was then killed), so no step appears twice.
"""
from __future__ import annotations

import csv
import os

from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment


class AppendingWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        if os.path.isfile(self.metrics_file_path):  # keep the rows, learn the header
            with open(self.metrics_file_path, newline="") as f:
                self.metrics_keys = sorted(next(csv.reader(f), []))


class ResumableCSVLogger(CSVLogger):
    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AppendingWriter(log_dir=self.log_dir)
        return self._experiment


def drop_rows_after(metrics_file, step: int) -> None:
    """Keep the rows of metrics_file (a CSVLogger metrics.csv) whose step is <= `step`."""
    if not os.path.isfile(metrics_file):
        return
    with open(metrics_file, newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames or [], [r for r in reader if not r.get("step") or int(r["step"]) <= step]
    tmp = f"{metrics_file}.tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, metrics_file)
