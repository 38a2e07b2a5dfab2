"""Composing the real configs in-process (no subprocess) for fast end-to-end tests."""
from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig

CONF = Path(__file__).resolve().parents[1] / "da_bench" / "conf"


def make_cfg(data_root, out_dir, overrides=(), debug="fast"):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", return_hydra_config=True, overrides=[
            f"paths.data_dir={data_root}", f"paths.output_dir={out_dir}", f"paths.log_dir={out_dir}",
            "callbacks.progress_bar.refresh_rate=0", *([f"debug={debug}"] if debug else []), *overrides])
    HydraConfig.instance().set_config(cfg)
    return cfg


class InterruptAt(pl.Callback):
    """Raises KeyboardInterrupt once the global step reaches `step` (Lightning treats it as Ctrl-C)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step >= self.step:
            raise KeyboardInterrupt


class SignalAt(pl.Callback):
    """Sends this process `signum` (default SIGTERM, as SLURM preemption and `timeout` do) at `step`."""

    def __init__(self, step: int, signum: int = 15):
        self.step, self.signum = step, signum

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.step:
            import os

            os.kill(os.getpid(), self.signum)
