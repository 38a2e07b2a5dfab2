"""Every failure a user can act on, as an exception class; this module imports nothing, so any module may
raise them without pulling in Hydra, torch or Lightning. How each is reported (one line on stderr, an exit code)
is da_bench/report.py's job.

Exit codes: 2 a config, data or checkpoint problem; 3 NaN / inf in training; 4 the run directory is busy
or cannot be written (disk full, read-only); 130 Ctrl-C; 143 SIGTERM. Anything else is a bug and keeps its
traceback.
"""
from __future__ import annotations


class ConfigError(ValueError):
    """A config value is out of range or of the wrong type (printed as one line, exit code 2)."""


class DataError(RuntimeError):
    """A data problem the user must fix (missing or corrupt file); printed without a traceback."""


class CheckpointError(RuntimeError):
    """A checkpoint the user named is missing, unreadable or of another method (printed as one line)."""


class NonFiniteError(RuntimeError):
    """A loss or weight became NaN / inf: the run is broken, not a result (no metrics.json, no checkpoint)."""


class RunInterrupted(RuntimeError):
    """Training stopped before max_steps (Ctrl-C, SIGTERM): no metrics are written, last.ckpt is."""

    def __init__(self, message: str, exit_code: int = 130):
        super().__init__(message)
        self.exit_code = exit_code


class RunDirBusy(RuntimeError):
    """Another live process holds the run directory's lock."""


class RunDirError(RuntimeError):
    """The run directory cannot be written."""
