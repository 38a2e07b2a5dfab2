"""What a multirun grid did, job by job, and an exit code that says it.

Each job appends one line to <sweep dir>/grid_status.jsonl (done / skipped / failed / interrupted, with its
run directory); it works across launcher worker processes. `GridReport`, a Hydra callback, prints the
summary when the grid ends and exits 1 if any job failed. An interrupted job (SIGTERM from SLURM or
`timeout`, Ctrl-C) stops the grid at once: the job prints the summary so far and exits 143 / 130; the jobs
not yet started run when the same command is launched again (finished ones are skipped, the interrupted
one resumes).
"""
from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode

STATUS_FILE = "grid_status.jsonl"


def _status_file() -> Path | None:
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return Path(HydraConfig.get().sweep.dir) / STATUS_FILE


def in_multirun() -> bool:
    return _status_file() is not None


def record(status: str, run_dir, message: str = "") -> None:
    path = _status_file()
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps({"status": status, "run_dir": str(run_dir), "message": message}) + "\n")


def summary(path: Path) -> tuple[str, Counter]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    counts = Counter(r["status"] for r in rows)
    lines = ["da_bench grid: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))]
    lines += [f"  {r['status']}: {r['run_dir']}" + (f" ({r['message']})" if r["message"] else "")
              for r in rows if r["status"] in ("failed", "interrupted")]
    return "\n".join(lines), counts


def report_interrupted() -> None:
    path = _status_file()
    if path is not None:
        text, _ = summary(path)
        print(text + "\n  the jobs after it did not start: launch the same command again to continue",
              file=sys.stderr)


class GridReport(Callback):
    def on_multirun_start(self, config, **kwargs) -> None:
        (Path(config.hydra.sweep.dir) / STATUS_FILE).unlink(missing_ok=True)

    def on_multirun_end(self, config, **kwargs) -> None:
        text, counts = summary(Path(config.hydra.sweep.dir) / STATUS_FILE)
        print(text, file=sys.stderr)
        if counts["failed"] or counts["interrupted"]:
            sys.exit(1)
