"""Run directories derived from a run's overrides, so a relaunched grid finds its finished runs.

<log_dir>/runs/<data>/<method>/seed<seed>/<suffix>, where the suffix lists the run's other overrides
(those that change what is measured: not paths, progress bars, loggers, ...), or 'defaults' when there
are none. A suffix longer than 80 characters becomes 'h' + 12 hex of its sha1. Two different jobs never
share a directory and the same job always lands in the same one.
"""
from __future__ import annotations

import hashlib
import re

from omegaconf import OmegaConf

# overrides that do not change what a run measures, or that are already part of its directory
NEUTRAL_PREFIXES = ("method=", "data=", "seed=", "table=", "paths.", "callbacks.progress_bar", "logger", "rerun=",
                    "download=", "ckpt_path=", "hydra.", "trainer.devices=", "trainer.accelerator=",
                    "trainer.enable_progress_bar=", "launcher=", "gpu_slots=", "table_name=")


def measured_overrides(overrides) -> list[str]:
    return sorted(o.lstrip("+~") for o in overrides if not o.lstrip("+~").startswith(NEUTRAL_PREFIXES))


def run_suffix(overrides) -> str:
    joined = ",".join(measured_overrides(overrides or []))
    if not joined:
        return "defaults"
    safe = re.sub(r"[^A-Za-z0-9_.,=+-]", "_", joined)
    if len(safe) <= 80:
        return safe
    return "h" + hashlib.sha1(joined.encode()).hexdigest()[:12]


def run_hash(output_dir: str) -> str:
    """A stable id for the run in `output_dir` (its W&B run id: a resumed run continues the same one)."""
    return hashlib.sha1(str(output_dir).encode()).hexdigest()[:16]


def register_resolvers() -> None:
    for name, fn in (("run_suffix", run_suffix), ("run_hash", run_hash)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
