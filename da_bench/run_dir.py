"""Run directories derived from a run's overrides, so a relaunched grid finds its finished runs.

logs/runs/<data>/<method>/seed<seed>/<the other overrides, or 'defaults'>; names longer than 80
characters become a 12-hex sha1, so two different jobs never share a directory and the same job
always lands in the same one.
"""
from __future__ import annotations

import hashlib
import re

from omegaconf import OmegaConf


def run_suffix(override_dirname: str) -> str:
    if not override_dirname:
        return "defaults"
    safe = re.sub(r"[^A-Za-z0-9_.,=+-]", "_", override_dirname)
    if len(safe) <= 80:
        return safe
    return "h" + hashlib.sha1(override_dirname.encode()).hexdigest()[:12]


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("run_suffix"):
        OmegaConf.register_new_resolver("run_suffix", run_suffix)
