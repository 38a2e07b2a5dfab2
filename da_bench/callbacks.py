"""Lightning callbacks of the training recipe."""
from __future__ import annotations

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
