"""The failures a user can act on, and how each is reported: one line on stderr and its exit code.

Exit codes: 2 a config, data or checkpoint problem; 3 NaN / inf in training; 4 the run directory is busy
or cannot be written (disk full, read-only); 130 Ctrl-C; 143 SIGTERM. Anything else is a bug and keeps its
traceback.
"""
from __future__ import annotations

import errno

from hydra.errors import InstantiationException

from da_bench.checks import ConfigError
from da_bench.run_dir import RunDirBusy, RunDirError


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


# error -> (label printed before the one line, exit code)
EXPECTED_ERRORS = ((ConfigError, "config error", 2), (DataError, "data error", 2),
                   (CheckpointError, "checkpoint error", 2), (NonFiniteError, "training diverged", 3),
                   (RunDirBusy, "run directory busy", 4), (RunDirError, "run directory error", 4))
DISK_ERRNOS = (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT)


def one_line(err: BaseException) -> tuple[str, int] | None:
    """(message, exit code) for the errors a user can fix, None for the rest."""
    if isinstance(err, InstantiationException) and isinstance(err.__cause__, ValueError):
        err = err.__cause__  # e.g. a method that does not fit the data, a bad option value
    for kind, label, code in EXPECTED_ERRORS:
        if isinstance(err, kind):
            return f"{label}: {err}", code
    if isinstance(err, (ValueError, InstantiationException)):
        return f"config error: {err}".splitlines()[0], 2
    if isinstance(err, OSError) and err.errno in DISK_ERRNOS:
        return f"disk error: {err.strerror}: {err.filename or 'while writing the run'}", 4
    return None
