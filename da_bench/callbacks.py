"""Lightning callbacks of the training recipe."""
from __future__ import annotations

import math
import signal
import threading
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint, TQDMProgressBar
from pytorch_lightning.utilities.exceptions import SIGTERMException

from da_bench.compat import logs_this_step
from da_bench.errors import NonFiniteError


def nonfinite_parameters(module: torch.nn.Module) -> list[str]:
    return [name for name, p in module.named_parameters() if not torch.isfinite(p).all()]


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
    at one thread, whole training steps of the real methods (results/bench/bench.md): 1.06-1.25x the NCHW steps/s
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


class LastCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint for checkpoints/last.ckpt (every `every_n_train_steps` updates, with
    `save_last`), which also saves it when training ends unless it saved at that step already: the evaluation
    after training starts from the finished state on disk, written once. (Lightning's own end-of-training save
    runs only in a run that never saved before, so the recipe used to write the final state a second time.)"""

    def on_train_end(self, trainer, pl_module):
        if self.save_last and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


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


class SigtermFlag:
    """Notes a SIGTERM wherever in the run it lands. Lightning acts on one only inside its training loop (in
    evaluation only between batches, and each trainer call forgets an earlier one), so a SIGTERM during start-up,
    the evaluation after training or the picks' tests would otherwise be lost, or end the process silently.
    While the block runs, SIGTERM sets the flag (and calls the handler it replaced, e.g. submitit's); Lightning
    keeps calling it beside its own. `check()` raises Lightning's SIGTERMException once one came: the recipe
    asks between phases. Off the main thread (where signals cannot be handled) it does nothing."""

    def __init__(self):
        self.received, self.previous = False, None

    def _note(self, signum, frame) -> None:
        self.received = True
        if callable(self.previous):
            self.previous(signum, frame)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._note)
        return self

    def __exit__(self, *exc) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.previous if self.previous is not None else signal.SIG_DFL)

    def check(self) -> None:
        if self.received:
            raise SIGTERMException


class RunIdentity(pl.Callback):
    """Writes which run a checkpoint belongs to (method, data, net, seed, max_steps) into it, so a resume or
    `ckpt_path` can refuse another run's (checkpoints.check_checkpoint_belongs)."""

    def __init__(self, identity: dict):
        self.identity = dict(identity)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        checkpoint["da_bench_run"] = self.identity


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
    with K updates per call it would stop at 1/K. Set up at the start of training as well as of the epoch:
    a resumed run restarts mid-epoch (every da_bench run is one long epoch), and Lightning then skips
    on_train_epoch_start."""

    shown = 0

    def _count_updates(self, trainer) -> None:
        bar = self.train_progress_bar
        if bar is not None:
            bar.total, bar.initial, bar.n = trainer.max_steps, trainer.global_step, trainer.global_step
            bar.refresh()
        self.shown = trainer.global_step

    def on_train_start(self, trainer, *args):
        super().on_train_start(trainer, *args)
        self._count_updates(trainer)

    def on_train_epoch_start(self, trainer, *args):
        super().on_train_epoch_start(trainer, *args)
        self._count_updates(trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        bar, step = self.train_progress_bar, trainer.global_step
        if bar is None or bar.disable or not (step - self.shown >= self.refresh_rate or step == bar.total):
            return
        bar.n, self.shown = step, step
        bar.set_postfix(self.get_metrics(trainer, pl_module))  # refreshes the bar
