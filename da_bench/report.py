"""How a failure reaches the user: one line on stderr and its exit code (the codes: da_bench/errors.py)."""
from __future__ import annotations

import errno
import re

from hydra.errors import InstantiationException

from da_bench.errors import (CheckpointError, ConfigError, DataError, NonFiniteError, RunDirBusy,
                             RunDirError)

# error -> (label printed before the one line, exit code)
EXPECTED_ERRORS = ((ConfigError, "config error", 2), (DataError, "data error", 2),
                   (CheckpointError, "checkpoint error", 2), (NonFiniteError, "training diverged", 3),
                   (RunDirBusy, "run directory busy", 4), (RunDirError, "run directory error", 4))
EXPECTED_KINDS = tuple(kind for kind, _, _ in EXPECTED_ERRORS)
DISK_ERRNOS = (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT)


DISK_MESSAGES = ("No space left on device", "file write failed", "unexpected pos")  # torch.save to a full disk


def _instantiation_message(err: InstantiationException) -> str:
    """"<key>: <target> failed: <cause>": the config key, what it builds and why it could not (Hydra's own
    message puts the cause on a second line, which a one-line report would drop)."""
    target = re.search(r"target '([^']+)'", str(err))
    key = re.search(r"full_key: (\S+)", str(err))
    cause = err.__cause__
    why = f"{type(cause).__name__}: {str(cause).strip().splitlines()[0] if str(cause).strip() else ''}" if cause else ""
    where = f"{key.group(1)}: " if key else ""
    return f"{where}{target.group(1) if target else 'instantiation'} failed: {why or str(err).splitlines()[0]}"


def one_line(err: BaseException) -> tuple[str, int] | None:
    """(message, exit code) for the errors a user can fix, None for the rest."""
    if isinstance(err, InstantiationException) and isinstance(err.__cause__, (ValueError, *EXPECTED_KINDS)):
        err = err.__cause__  # e.g. a method that does not fit the data, a bad option value
    for kind, label, code in EXPECTED_ERRORS:
        if isinstance(err, kind):
            return f"{label}: {err}", code
    if isinstance(err, InstantiationException):
        return f"config error: {_instantiation_message(err)}", 2
    if isinstance(err, ValueError):
        return f"config error: {err}".splitlines()[0], 2
    if isinstance(err, OSError) and err.errno in DISK_ERRNOS:
        return f"disk error: {err.strerror}: {err.filename or 'while writing the run'}", 4
    if isinstance(err, RuntimeError) and any(text in str(err) for text in DISK_MESSAGES):
        return "disk error: a file could not be written (disk full?): " + str(err).strip().splitlines()[0], 4
    if type(err).__name__ == "UsageError" and type(err).__module__.startswith("wandb"):
        return f"W&B: {str(err).strip().splitlines()[0]} (logger=csv needs no account; WANDB_MODE=offline " \
               "logs without one)", 2
    return None
