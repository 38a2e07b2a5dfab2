"""A CSV logger whose curves survive resumes, and a run's results handed to W&B.

Lightning's CSVLogger deletes an existing metrics.csv when a run is re-launched in the same directory, so a
resumed run would lose its curve before the interruption. `ResumableCSVLogger` appends to it instead;
`drop_rows_after` removes the rows of steps that the resumed checkpoint had not reached yet (logged
after the last checkpoint by a process that was then killed), so no step appears twice.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment

from da_bench.rules import reported


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


def wandb_summary(metrics: dict, paper: float | None) -> dict:
    """The W&B summary of a finished run: what its tables show, not only its curves' last values. Per rule,
    `selections/<rule>/{step,score,<test metrics>}`; the reported number, `collapsed`, and the paper's number for
    the cell (`paper/<target metric>`, when the paper reports one)."""
    summary = {f"selections/{rule}/{key}": value for rule, pick in metrics.get("selections", {}).items()
               for key, value in pick.items() if value is not None and key != "uses_target_labels"}
    summary.update({key: metrics[key] for key in ("collapsed", "steps", "wall_s", "selection") if key in metrics})
    summary["reported"] = reported(metrics)
    if paper is not None:
        summary[f"paper/{metrics['target_metric']}"] = paper
    return summary


def publish_to_wandb(loggers, metrics: dict, out_dir: Path, paper: float | None) -> None:
    """For a W&B logger: the summary above, metrics.json as an artifact, and the run directory's PNGs as images."""
    for logger in loggers:
        if type(logger).__name__ != "WandbLogger":
            continue
        import wandb

        run = logger.experiment
        run.summary.update(wandb_summary(metrics, paper))
        artifact = wandb.Artifact(f"metrics-{run.id}", type="metrics")
        artifact.add_file(str(out_dir / "metrics.json"))
        run.log_artifact(artifact)
        images = {f"images/{png.stem}": wandb.Image(str(png)) for png in sorted(Path(out_dir).glob("*.png"))}
        if images:
            run.log(images)
