"""Lightning callbacks of the training recipe."""
from __future__ import annotations

import time
from pathlib import Path

import pytorch_lightning as pl


class CheckpointOnInterrupt(pl.Callback):
    """Writes `path` when training stops on an exception (Ctrl-C, SIGTERM, a crash), so re-launching the
    same run resumes at the step reached. Unlike Lightning's OnExceptionCheckpoint it never deletes the
    file afterwards: it is the run's last.ckpt."""

    def __init__(self, path: str):
        self.path = Path(path)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if trainer.state.fn == "fit" and trainer.global_step > 0:
            trainer.save_checkpoint(self.path)


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
