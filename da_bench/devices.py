"""One GPU per worker process when a grid runs its jobs in parallel on one machine (launcher=per_gpu).

There are gpus x jobs_per_gpu slots. Each worker process claims the first free slot by taking an exclusive
lock on a file in the machine's temp directory, keeps it for its lifetime (the OS drops the lock when the
process ends) and sets CUDA_VISIBLE_DEVICES to the slot's GPU (slot mod gpus) before CUDA starts, so every job
it runs sees only its GPU, and jobs_per_gpu small runs share each GPU (one small run leaves a GPU mostly idle).
"""
from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

_claimed: tuple[int, object] | None = None


def host_has_gpus() -> bool:
    """Whether the NVIDIA driver lists a GPU on this host (read without starting CUDA, which must wait until
    CUDA_VISIBLE_DEVICES is set)."""
    listed = Path("/proc/driver/nvidia/gpus")
    return (listed.is_dir() and any(listed.iterdir())) or Path("/dev/nvidia0").exists()


def claim_gpu_slot(gpus: int, lock_dir: str | Path | None = None, jobs_per_gpu: int = 1) -> int | None:
    """The GPU this process's slot maps to (claiming a slot on the first call); CUDA_VISIBLE_DEVICES is set to it.
    None on a host without GPUs: nothing is claimed and the job runs on the CPU."""
    global _claimed
    if _claimed is not None:
        return _claimed[0]
    if not host_has_gpus():
        return None
    lock_dir = Path(lock_dir or Path(tempfile.gettempdir()) / "da_bench_gpu_slots")
    lock_dir.mkdir(parents=True, exist_ok=True)
    slots = gpus * max(1, jobs_per_gpu)
    for slot in range(slots):
        handle = open(lock_dir / f"gpu{slot}.lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        _claimed = (slot % gpus, handle)
        os.environ["CUDA_VISIBLE_DEVICES"] = str(slot % gpus)
        return slot % gpus
    raise RuntimeError(f"all {slots} GPU slots in {lock_dir} are taken: more parallel jobs than "
                       "gpu_slots x jobs_per_gpu")
