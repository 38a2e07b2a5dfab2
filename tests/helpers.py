"""Test helpers: the real configs composed in-process (make_cfg), the command line in a subprocess (run_cli),
checkpoints, and callbacks that interrupt a run."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "da_bench" / "conf"
TRAIN = (sys.executable, "-m", "da_bench.train")


def make_cfg(data_root, out_dir, overrides=(), debug="fast"):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", return_hydra_config=True, overrides=[
            f"paths.data_dir={data_root}", f"paths.output_dir={out_dir}", f"paths.log_dir={out_dir}",
            "callbacks.progress_bar.refresh_rate=0", *([f"debug={debug}"] if debug else []), *overrides])
    HydraConfig.instance().set_config(cfg)
    return cfg


def run_cli(args, command=TRAIN, cwd=REPO, timeout=600) -> subprocess.CompletedProcess:
    """The command line in its own process, as a user runs it: without HYDRA_FULL_ERROR, so an error is the
    one line a user sees. `command`: e.g. ("da-bench-train",), the console script."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.run([*command, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


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
