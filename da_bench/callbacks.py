"""Lightning callbacks of the training recipe."""
from __future__ import annotations

import math
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import TQDMProgressBar

from da_bench.errors import NonFiniteError


def nonfinite_parameters(module: torch.nn.Module) -> list[str]:
    return [name for name, p in module.named_parameters() if not torch.isfinite(p).all()]


def logs_this_step(trainer: pl.Trainer) -> bool:
    """Whether Lightning writes this training step's logged values to the loggers (every
    trainer.log_every_n_steps): the test its own LearningRateMonitor and DeviceStatsMonitor use."""
    return trainer._logger_connector.should_update_logs


class FiniteGuard(pl.Callback):
    """Stops training when a train/* value the method logged (every loss) is NaN or inf for more than
    `patience` consecutive checks. Methods log on the steps Lightning writes to the loggers (every
    trainer.log_every_n_steps: Method.log_train), so the check runs on those steps, on fresh values (a host
    sync each; NaN weights stay NaN, so a sparse check still catches them). Weights are checked before every
    checkpoint, so a broken state is never written as one."""

    def __init__(self, patience: int = 0):
        self.patience, self.strikes = patience, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if not logs_this_step(trainer):
            return
        bad = sorted(k for k, v in trainer.callback_metrics.items()
                     if k.startswith("train/") and not math.isfinite(float(v)))
        self.strikes = self.strikes + 1 if bad else 0
        if self.strikes > self.patience:
            raise NonFiniteError(f"non-finite {', '.join(bad)} at step {trainer.global_step}")

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        bad = nonfinite_parameters(pl_module)
        if bad:
            raise NonFiniteError(f"non-finite weights ({', '.join(bad[:3])}) at step {trainer.global_step}")


class ChannelsLast(pl.Callback):
    """Keeps the method's 4-d weights (convolutions) in channels-last (NHWC) memory from the start of fit,
    validation and test; every convolution then computes in that layout whatever the input's. The same
    model and the same batches: only the float rounding differs (tested per net). Measured on the 2-core CPU
    at one thread, whole training steps of the real methods (results/bench.md): 1.06-1.25x the NCHW steps/s
    on MNIST -> MNIST-M (DANN's net), 1.17-1.38x on MNIST -> USPS (LeNet). Parameters are converted in
    place (`param.data`), so optimisers built before keep them. `~callbacks.channels_last` trains in NCHW."""

    def _convert(self, pl_module: pl.LightningModule) -> None:
        pl_module.to(memory_format=torch.channels_last)

    def on_fit_start(self, trainer, pl_module):
        self._convert(pl_module)

    def on_validation_start(self, trainer, pl_module):
        self._convert(pl_module)

    def on_test_start(self, trainer, pl_module):
        self._convert(pl_module)


class CheckpointOnInterrupt(pl.Callback):
    """Writes `path` when training stops on an exception (Ctrl-C, SIGTERM, a crash), so re-launching the
    same run resumes at the step reached. Unlike Lightning's OnExceptionCheckpoint it never deletes the
    file afterwards: it is the run's last.ckpt."""

    def __init__(self, path: str):
        self.path = Path(path)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, NonFiniteError) or nonfinite_parameters(pl_module):
            return  # a relaunch resumes from the last good checkpoint instead
        if trainer.state.fn == "fit" and trainer.global_step > 0:
            trainer.save_checkpoint(self.path, weights_only=False)


class TrainingClock(pl.Callback):
    """Seconds spent in training (validation included) summed over every segment of a resumed run: the
    total travels in the checkpoint, so metrics.json's wall_s is the run's, not its last segment's."""

    def __init__(self):
        self.previous, self.start = 0.0, None

    @property
    def seconds(self) -> float:
        return self.previous + (time.monotonic() - self.start if self.start is not None else 0.0)

    def on_train_start(self, trainer, pl_module):
        self.start = time.monotonic()

    def on_train_end(self, trainer, pl_module):
        self.previous, self.start = self.seconds, None

    def on_exception(self, trainer, pl_module, exception):
        self.on_train_end(trainer, pl_module)

    def state_dict(self) -> dict:
        return {"seconds": self.seconds}

    def load_state_dict(self, state_dict: dict) -> None:
        self.previous = float(state_dict["seconds"])


class RandomState(pl.Callback):
    """torch's random state (CPU and CUDA) in every checkpoint, put back when a resumed run starts training:
    dropout and the methods' own draws continue as in an uninterrupted run (the batches already do, see
    data/pair.py's StepIndices). Applied at on_train_start, after anything that draws while Lightning sets up."""

    def __init__(self):
        self.restored: dict | None = None

    def state_dict(self) -> dict:
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
        return {"cpu": torch.get_rng_state(), "cuda": cuda}

    def load_state_dict(self, state_dict: dict) -> None:
        self.restored = state_dict

    def on_train_start(self, trainer, pl_module):
        if self.restored is not None:
            torch.set_rng_state(self.restored["cpu"])
            if self.restored["cuda"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(self.restored["cuda"])
            self.restored = None


class UpdateProgressBar(TQDMProgressBar):
    """Lightning's progress bar, counting updates: the global step of max_steps (a resumed run's bar starts
    where it stopped), the same whatever `updates_per_step`. Lightning's own counts training_step calls, so
    with K updates per call it would stop at 1/K."""

    def on_train_epoch_start(self, trainer, *args):
        super().on_train_epoch_start(trainer, *args)
        bar = self.train_progress_bar
        bar.total, bar.initial, bar.n = trainer.max_steps, trainer.global_step, trainer.global_step
        self.shown = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        bar, step = self.train_progress_bar, trainer.global_step
        if bar is None or bar.disable or not (step - self.shown >= self.refresh_rate or step == bar.total):
            return
        bar.n, self.shown = step, step
        bar.set_postfix(self.get_metrics(trainer, pl_module))  # refreshes the bar
