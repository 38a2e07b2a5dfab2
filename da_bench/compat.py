"""The two places da_bench reads Lightning's internals, kept here so that a Lightning upgrade breaks one file.
Lightning offers no public hook for either (checked against pytorch-lightning 2.6)."""
from __future__ import annotations

import pytorch_lightning as pl


def logs_this_step(trainer: pl.Trainer) -> bool:
    """Whether Lightning writes this training step's logged values to the loggers (every
    trainer.log_every_n_steps): the test its own LearningRateMonitor and DeviceStatsMonitor use."""
    return trainer._logger_connector.should_update_logs


def count_manual_update(trainer: pl.Trainer) -> None:
    """One more global step, as Lightning's optimiser wrapper counts it under manual optimisation (a CUDA-graph
    replay does not run the wrapper)."""
    progress = trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress
    progress.increment_ready()
    progress.increment_completed()
