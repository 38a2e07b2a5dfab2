"""Where a number came from: the git commit and the CPU, recorded by runs, tables and benchmarks."""
from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path


PACKAGE_DIR = Path(__file__).resolve().parent


def git_commit(package_dir: Path = PACKAGE_DIR) -> str:
    """The short commit of this project's own checkout ('-dirty' with uncommitted changes to tracked files),
    or 'unknown (da_bench <version>)' when the code is not the checkout's: installed from a wheel, or a
    copy that sits inside some other git repository (whose commit would say nothing about this code)."""
    def git(*args):
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=package_dir, timeout=10)

    unknown = f"unknown (da_bench {_version()})"
    try:
        top = git("rev-parse", "--show-toplevel")
        if top.returncode != 0 or Path(top.stdout.strip()).resolve() != package_dir.parent:
            return unknown
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
        return head.stdout.strip() + ("-dirty" if dirty else "") if head.returncode == 0 else unknown
    except (OSError, subprocess.TimeoutExpired):
        return unknown


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("da_bench")
    except PackageNotFoundError:
        return "not installed"


def cpu_name() -> str:
    """'<model name>, <n> cores' from /proc/cpuinfo (platform.processor() elsewhere)."""
    info = Path("/proc/cpuinfo")
    if info.exists():
        for line in info.read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    return platform.processor() or "unknown CPU"
