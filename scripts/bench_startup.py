"""Whole-process wall times of the command line: a run is a process, and its start counts (issue #12).

    DA_BENCH_DATA=../shared/data python scripts/bench_startup.py [--repo DIR] [--repeats 3] [--pair mnist_mnistm]

Each row is the median over --repeats fresh processes of `python -m da_bench.train` run in --repo (a checkout;
`-m` imports the da_bench found there, so two commits can be compared with one script):
- `--help`;
- a config error (`seed=-1`, exit code 2);
- relaunching a finished run (skipped: its metrics.json exists);
- a 2-step DANN run on --pair: the imports, the pair from the decode cache, the input statistics, two steps,
  then the final evaluation on the val and test splits and metrics.json.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(repo: Path, args: list[str], expect: int) -> float:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "da_bench.train", *args], cwd=repo, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != expect:
        sys.exit(f"bench_startup: {' '.join(args)} exited {result.returncode}, expected {expect}:\n{result.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pair", default="mnist_mnistm")
    args = parser.parse_args()
    rows: dict[str, list[float]] = {"--help": [], "config error (seed=-1)": [], "finished run, skipped": [],
                                    f"dann, 2 steps, {args.pair}": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            run = ["method=dann", f"data={args.pair}", "trainer.max_steps=2", f"paths.log_dir={tmp}/{i}"]
            rows["--help"].append(timed(args.repo, ["--help"], 0))
            rows["config error (seed=-1)"].append(timed(args.repo, ["seed=-1", f"paths.log_dir={tmp}/bad"], 2))
            rows[f"dann, 2 steps, {args.pair}"].append(timed(args.repo, run, 0))
            rows["finished run, skipped"].append(timed(args.repo, run, 0))
    print(f"repo {args.repo}, median of {args.repeats} processes")
    print("| command | wall s (median) | all |\n|---|---|---|")
    for name, seconds in rows.items():
        print(f"| {name} | {statistics.median(seconds):.2f} | {', '.join(f'{s:.2f}' for s in seconds)} |")


if __name__ == "__main__":
    main()
