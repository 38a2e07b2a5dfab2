#!/usr/bin/env python
"""Run a table preset's grid as K runs at a time on this machine, without a Hydra launcher plugin.

    python scripts/run_packed.py mnistm --jobs 8 seed=0,1,2,3,4 trainer=gpu      # 15 runs, 8 at a time, one GPU
    python scripts/run_packed.py selection --jobs 2                              # the 2-core CPU: two at a time
    python scripts/run_packed.py mnistm --jobs 10 seed=0,1,2,3,4 --also "method=dann ~callbacks.channels_last"

The grid is the preset's `hydra.sweeper.params` (da_bench/conf/table/<table>.yaml) with any `key=a,b` given
here replacing the preset's values; every other `key=value` is passed to each run. Each run is its own
`python -m da_bench.train` process (finished runs are skipped, interrupted ones resume), its output in
<run>.log under --log-dir. `--also "OVERRIDES"` packs a second grid with the first: the same preset and
overrides plus these (above: DANN with NCHW weights at the same seeds). Prints each run's end and the grid's wall time; exits 1 if any run failed.
Use it where hydra-joblib-launcher is missing (e.g. the lent GPU machines); `launcher=per_gpu jobs_per_gpu=K`
does the same through Hydra.
"""
import argparse
import itertools
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[1]


def grid(table: str, overrides: list[str]) -> list[list[str]]:
    """Every run of the preset's sweep as a list of overrides (table_name set, the sweep keys first)."""
    path = REPO / "da_bench" / "conf" / "table" / f"{table}.yaml"
    if not path.exists():
        sys.exit(f"run_packed: no preset {path}")
    preset = OmegaConf.load(path)
    params = {k: str(v) for k, v in (OmegaConf.select(preset, "hydra.sweeper.params") or {}).items()}
    fixed = []
    for o in overrides:
        key, _, value = o.partition("=")
        if "," in value or key in params:
            params[key] = value
        else:
            fixed.append(o)
    keys = list(params)
    values = [params[k].split(",") for k in keys]
    name = OmegaConf.select(preset, "table_name") or table
    return [[f"{k}={v}" for k, v in zip(keys, combo)] + [f"table_name={name}", *fixed]
            for combo in itertools.product(*values)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", help="a preset in da_bench/conf/table/")
    parser.add_argument("overrides", nargs="*", help="key=a,b replaces a swept key's values; key=value goes to every run")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (default 2)")
    parser.add_argument("--log-dir", default="logs/packed", help="where each run's stdout/stderr goes")
    parser.add_argument("--also", action="append", default=[], metavar="OVERRIDES",
                        help="a second grid packed with the first: the preset and overrides plus these (space-separated)")
    args = parser.parse_intermixed_args(argv)
    runs = grid(args.table, args.overrides)
    for extra in args.also:
        runs += grid(args.table, [*args.overrides, *extra.split()])
    log_dir = Path(args.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"{len(runs)} runs of table={args.table}, {args.jobs} at a time", flush=True)
    start = time.monotonic()

    def launch(i_run):
        i, run = i_run
        t = time.monotonic()
        with open(log_dir / f"{args.table}_{i:03d}.log", "w") as out:
            code = subprocess.run([sys.executable, "-m", "da_bench.train", *run],
                                  cwd=REPO, stdout=out, stderr=subprocess.STDOUT).returncode
        print(f"[{time.monotonic() - start:7.1f} s] rc={code} {time.monotonic() - t:6.1f} s  {' '.join(run)}", flush=True)
        return code

    with ThreadPoolExecutor(args.jobs) as pool:
        codes = list(pool.map(launch, enumerate(runs)))
    failed = sum(c != 0 for c in codes)
    print(f"table={args.table}: {len(runs)} runs, {failed} failed, {time.monotonic() - start:.1f} s wall", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
