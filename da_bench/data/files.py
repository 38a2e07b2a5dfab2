"""Finding, checking, downloading and caching the public data files.

Every reader goes through `fetch`: a file that is present is checked against its published md5 before
it is decoded; a missing file is downloaded only when `download=True`, otherwise `DataMissingError`
names the expected path and how to obtain it. Decoded arrays are cached as `.npz` so the slow decode
(JPEG/PPM/xz/bz2) happens once.
"""
from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import socket
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from torchvision.datasets.utils import calculate_md5, download_url

from da_bench.errors import DataError

EXTRA_CHECKSUMS_ENV = "DA_BENCH_EXTRA_CHECKSUMS"
log = logging.getLogger(__name__)


class DataMissingError(DataError):
    pass


class DataCorruptError(DataError):
    pass


def _extra_checksums() -> dict[str, set[str]]:
    """md5s accepted in addition to the official ones, from a JSON file {filename: md5 | [md5, ...]}.

    For verified local mirrors and the test fixtures: a file matching neither is still rejected.
    """
    path = os.environ.get(EXTRA_CHECKSUMS_ENV)
    if not path:
        return {}
    table = json.loads(Path(path).read_text())
    return {name: {v} if isinstance(v, str) else set(v) for name, v in table.items()}


def verify_md5(path: Path, md5: str | None) -> None:
    """Raise DataCorruptError unless `path` has the published md5 (or a trusted extra one)."""
    if md5 is None:
        return
    actual = calculate_md5(str(path))
    accepted = {md5} | _extra_checksums().get(path.name, set())
    if actual not in accepted:
        raise DataCorruptError(
            f"{path} failed its checksum: md5 {actual}, expected {md5}.\n"
            f"The file is truncated or corrupt; delete it and download it again."
        )


def fetch(
    path: Path,
    md5: str | None,
    urls: Sequence[str] = (),
    download: bool = False,
    how_to_get: str = "",
) -> Path:
    """Return `path` after checking its md5; download it first when allowed and missing."""
    path = Path(path)
    if not path.exists():
        if download and urls:
            errors = []
            for url in urls:
                try:
                    download_url(url, str(path.parent), path.name, md5)
                    break
                except Exception as err:  # try the next mirror
                    errors.append(f"{url}: {err}")
            else:
                raise DataMissingError(
                    f"could not download {path.name}:\n  " + "\n  ".join(errors) + f"\n{how_to_get}"
                )
        else:
            hint = "pass download=true to fetch it" if urls else "it has no public download URL"
            raise DataMissingError(
                f"missing data file: {path}\n{how_to_get}\n(or {hint}; the data root is paths.data_dir / "
                f"$DA_BENCH_DATA)"
            )
    verify_md5(path, md5)
    return path


def require_any(paths: Sequence[Path], how_to_get: str) -> Path:
    """The first existing path of several accepted layouts, or a DataMissingError listing all of them."""
    for p in paths:
        if Path(p).exists():
            return Path(p)
    listed = "\n  ".join(str(p) for p in paths)
    raise DataMissingError(f"missing data; expected one of:\n  {listed}\n{how_to_get}")


def default_cache_dir() -> Path:
    return Path(os.environ.get("DA_BENCH_CACHE", Path.home() / ".cache" / "da_bench"))


def cached_arrays(cache_file: Path, build: Callable[[], tuple[np.ndarray, np.ndarray]]):
    """(images, labels) from `cache_file` (.npz), building and writing it atomically on a miss.

    A cache file that does not load (a copy cut short, a disk error) is named in the log, deleted and
    rebuilt. The write goes to `.<name>.<host>.<pid>.tmp` beside it, removed if the write fails; temporary
    files of this host's writers that are no longer alive (killed mid-write) are removed on the next call (a
    cache on a shared file system: another node's writer is never touched, its pid means nothing here)."""
    cache_file = Path(cache_file)
    if cache_file.exists():
        try:
            with np.load(cache_file) as z:
                return z["images"], z["labels"]
        except Exception as err:
            log.warning("cache file %s is unreadable (%s): rebuilding it", cache_file, type(err).__name__)
            cache_file.unlink()
    images, labels = build()
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(cache_file)
    tmp = cache_file.with_name(f".{cache_file.name}.{socket.gethostname()}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, images=images, labels=labels)
        os.replace(tmp, cache_file)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return images, labels


def remove_stale_temporaries(cache_file: Path) -> None:
    """Delete `.<name>.<host>.<pid>.tmp` files beside cache_file written on this host by a process that ended."""
    host = socket.gethostname()
    for tmp in cache_file.parent.glob(f".{cache_file.name}.{glob.escape(host)}.*.tmp"):
        pid = tmp.name[len(f".{cache_file.name}.{host}.") : -len(".tmp")]
        if pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cache_key(*paths: Path) -> str:
    """A short key that changes when any of the source files is replaced (path, size, mtime)."""
    h = hashlib.sha1()
    for p in paths:
        st = Path(p).stat()
        h.update(f"{Path(p).resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:12]
