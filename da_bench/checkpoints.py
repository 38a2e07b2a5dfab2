"""Checkpoints that are never half-written and never silently reused when broken.

- `AtomicCheckpointIO`: Lightning's torch checkpoint IO, but each file is written to a temporary file in
  the same directory and renamed over the target only when complete (a full disk or a kill mid-write
  leaves the previous checkpoint intact); the previous `last.ckpt` is kept as `last.prev.ckpt`.
- `resume_checkpoint(run_dir)`: the newest loadable checkpoint of a run directory; a corrupt one is named
  in the log and moved aside (`*.corrupt-<time>`), and the previous good one is used instead.
- `checkpoint_file(path)`: a checkpoint given by the user as a file or as a run directory, checked.

Checks load a checkpoint as Lightning's resume does, `torch.load(weights_only=True)`: one that stores a
pickled object (a method that keeps a callable in its hyperparameters) is named in one line and left in
place, not taken for corrupt.
"""
from __future__ import annotations

import logging
import os
import pickle
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from da_bench.errors import CheckpointError

log = logging.getLogger(__name__)
REQUIRED_KEYS = ("state_dict", "global_step")


class PickledObjectError(CheckpointError):
    """An intact checkpoint that a weights-only load refuses: it stores a pickled object."""


def previous_of(path: Path) -> Path:
    return path.with_name(path.stem + ".prev" + path.suffix)


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            if path.exists():
                os.replace(path, previous_of(path))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def read_checkpoint(path: Path) -> dict:
    """The checkpoint at `path`, or CheckpointError saying why it cannot be used."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, random bytes, a pickle of something else
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        if isinstance(err, pickle.UnpicklingError) and refused:
            raise PickledObjectError(
                f"checkpoint {path} stores a pickled {refused.group(1)}, which a resume's weights-only load refuses "
                "(keep callables out of the method's hyperparameters): rerun=true starts the run again") from None
        raise CheckpointError(f"checkpoint {path} is unreadable (truncated or corrupt: {type(err).__name__})") from None
    if not isinstance(state, dict) or any(k not in state for k in REQUIRED_KEYS):
        raise CheckpointError(f"checkpoint {path} is not a Lightning checkpoint (no state_dict / global_step)")
    return state


def checkpoint_file(path: str | Path) -> Path:
    """A user-given checkpoint: a .ckpt file, or a run directory (its checkpoints/last.ckpt) that has one."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt"
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    return path


def check_checkpoint_fits(path: Path, state: dict, module: torch.nn.Module) -> None:
    """A checkpoint of another method (or net) would fail deep inside Lightning: say so in one line."""
    theirs, ours = set(state["state_dict"]), set(module.state_dict())
    if theirs != ours:
        missing, extra = sorted(ours - theirs)[:2], sorted(theirs - ours)[:2]
        raise CheckpointError(f"checkpoint {path} does not fit {type(module).__name__} on this net "
                              f"(missing {missing}, unexpected {extra}): a run of another method, net or pair?")


def check_checkpoint_belongs(path: Path, state: dict, identity: dict) -> None:
    """A checkpoint resumed (or named by ckpt_path) must be this run's: the same method, data, net, seed and
    max_steps (the lr and GRL schedules are functions of step / max_steps), at a step <= max_steps. Its
    identity is what RunIdentity wrote; a checkpoint without one is held to the step alone."""
    step, theirs = state["global_step"], state.get("da_bench_run") or {}
    if step > identity["max_steps"]:
        raise CheckpointError(f"checkpoint {path} is at step {step}, past this run's trainer.max_steps="
                              f"{identity['max_steps']}: a checkpoint of a longer run")
    other = [f"{key}={theirs[key]} (this run: {identity[key]})" for key in identity
             if key in theirs and theirs[key] != identity[key]]
    if other:
        raise CheckpointError(f"checkpoint {path} belongs to another run: {', '.join(other)}")


def resume_checkpoint(checkpoint_dir: Path) -> Path | None:
    """last.ckpt if it loads, else last.prev.ckpt if that loads, else None (train from scratch); every
    unreadable file is moved aside with a log line naming it."""
    for path in (checkpoint_dir / "last.ckpt", previous_of(checkpoint_dir / "last.ckpt")):
        if _loadable_step(path) is not None:
            return path
    return None


def _loadable_step(path: Path) -> int | None:
    """The global step of the checkpoint at `path`; None if there is none or it does not load (moved aside)."""
    if not path.exists():
        return None
    try:
        return int(read_checkpoint(path)["global_step"])
    except PickledObjectError:
        raise  # intact: moving it aside would throw the run's progress away
    except CheckpointError as err:
        aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(path, aside)
        log.warning("%s; moved aside to %s", err, aside)
        return None


def rebuild_finished_run(run_dir: Path):
    """(config, datamodule after prepare_data, method with the weights of checkpoints/last.ckpt, that checkpoint)
    of a finished run directory, for the tools that look at its model again (plot_features, scripts/dev_weights.py).
    Needs .hydra/config.yaml, checkpoints/last.ckpt and the run's data."""
    from hydra.utils import instantiate  # the training path reads checkpoints without building anything
    from omegaconf import OmegaConf

    from da_bench.run_dir import register_resolvers

    register_resolvers()
    cfg = OmegaConf.load(Path(run_dir) / ".hydra" / "config.yaml")
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    method = instantiate(cfg.method, net=instantiate(cfg.net), _convert_="all")
    checkpoint = read_checkpoint(Path(run_dir) / "checkpoints" / "last.ckpt")
    method.load_state_dict(checkpoint["state_dict"])
    return cfg, datamodule, method, checkpoint
