"""Test helpers: the real configs composed in-process (make_cfg), the command line in a subprocess (run_cli),
checkpoints, and callbacks that interrupt a run."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
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
            *([f"debug={debug}"] if debug else []), *overrides])
    HydraConfig.instance().set_config(cfg)
    return cfg


def run_cli(args, command=TRAIN, cwd=REPO, timeout=600) -> subprocess.CompletedProcess:
    """The command line in its own process, as a user runs it: without HYDRA_FULL_ERROR, so an error is the
    one line a user sees. `command`: e.g. ("da-bench-train",), the console script."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.run([*command, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


def run_cli_interrupted(args, signum: int, after: int | None = None, when: bytes | None = None,
                        timeout=600) -> subprocess.CompletedProcess:
    """The command line, sent `signum` from outside (Ctrl-C: SIGINT; a scheduler: SIGTERM) once its progress
    bar shows `after` updates or more (or its output matches `when`), as a user or SLURM interrupts it; then
    waited for. The child starts with SIGINT at its default, as in a terminal (a background shell's children
    inherit it ignored)."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    proc = subprocess.Popen([*TRAIN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    err = []
    reader = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)
    reader.start()
    seen, sent, deadline = b"", False, time.monotonic() + timeout
    while not sent and time.monotonic() < deadline:
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            break
        seen += chunk
        reached = after is not None and any(int(n) >= after for n in re.findall(rb"\| (\d+)/\d+ \[", seen[-2000:]))
        if reached or (when is not None and re.search(when, seen)):
            proc.send_signal(signum)
            sent = True
    out = seen + proc.stdout.read()
    proc.wait(timeout=max(1, deadline - time.monotonic()))
    reader.join()
    assert sent, f"the run never reached {after or when}: {out[-1500:]!r}"
    return subprocess.CompletedProcess(proc.args, proc.returncode, out.decode(errors="replace"),
                                       b"".join(err).decode(errors="replace"))


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
    """Sends this process `signum` (default SIGTERM, as SLURM preemption and `timeout` do) at `step`, or with
    `phase="test"` when the test after training starts (Lightning would let that test finish)."""

    def __init__(self, step: int = -1, signum: int = 15, phase: str = "fit"):
        self.step, self.signum, self.phase = step, signum, phase

    def on_train_batch_end(self, trainer, *args):
        if self.phase == "fit" and trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)

    def on_test_start(self, trainer, *args):
        if self.phase == "test":
            os.kill(os.getpid(), self.signum)


class WaitAt(pl.Callback):
    """Holds the run at `step` (sleeps up to `seconds`) until a signal ends it: a time limit's signal then always
    lands in training, however fast the machine. A resumed run is past `step` and does not wait."""

    def __init__(self, step: int, seconds: float = 300):
        self.step, self.seconds = step, seconds

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.step:
            time.sleep(self.seconds)


class RaiseAt(pl.Callback):
    """A bug at `step`: an exception da_bench does not know."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.step:
            raise RuntimeError(f"a bug at step {self.step}")
