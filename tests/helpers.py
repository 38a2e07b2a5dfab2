"""Composing the real configs in-process (no subprocess) for fast end-to-end tests."""
from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
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


def last_checkpoint(run_dir) -> dict:
    """A run's checkpoints/last.ckpt, loaded as a resume loads it (weights only: no pickled objects)."""
    return torch.load(Path(run_dir) / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def assert_same_weights(run_dir, other_run_dir) -> None:
    """The two runs ended with bit-identical weights."""
    ours, theirs = last_checkpoint(run_dir)["state_dict"], last_checkpoint(other_run_dir)["state_dict"]
    assert ours.keys() == theirs.keys()
    for name in theirs:
        torch.testing.assert_close(ours[name], theirs[name], rtol=0, atol=0, msg=name)


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
