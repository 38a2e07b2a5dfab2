"""Run a table preset's grid and write its result table, with the command, commit and hardware.

    da-bench-reproduce mnistm                     # source_only, dann, target_only on MNIST -> MNIST-M, seeds 0-2
    da-bench-reproduce usps seed=0                # ADDA's MNIST <-> USPS protocol, one seed
    da-bench-reproduce dann trainer=gpu           # DANN's Table 2 (needs SVHN, SYN NUMBERS, SYN SIGNS, GTSRB)

Extra arguments are Hydra overrides for every run of the grid. Runs land in $DA_BENCH_LOGS/runs (default
logs/runs); finished ones are skipped, so an interrupted reproduction continues where it stopped. The
table goes to results/<table>/table.md (.csv, .tex; --out sets results/). A shortened schedule (trainer.max_steps=...) is written
into the table's header: nothing is shortened silently.
"""
import argparse
import os
import subprocess
import sys
from pathlib import Path

from da_bench.provenance import cpu_name
from da_bench.selection import validator_sections
from da_bench.tables import find_runs, write_tables

# tables that also report how the validators fare: (validator table?, the swept key whose value each rule picks)
VALIDATOR_REPORTS = {"selection": (True, None), "validators": (True, "method.weight")}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", help="a preset in da_bench/conf/table/: dann, adda, mnistm, usps, survey, clan, "
                                      "selection, validators, wdgrl_weight, smoke")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run (e.g. seed=0,1,2,3,4)")
    parser.add_argument("--out", default="results")
    parser.add_argument("--paper-table", default=None, help="paper numbers to show (default: dann for mnistm, adda for usps)")
    args = parser.parse_args(argv)
    command = [sys.executable, "-m", "da_bench.train", "-m", f"table={args.table}", *args.overrides]
    print("running:", " ".join(command[1:]), flush=True)
    if subprocess.run(command).returncode != 0:
        sys.exit("the grid failed; finished runs are kept, re-run the same command to continue")
    named = [o.split("=", 1)[1] for o in args.overrides if o.startswith("paths.log_dir=")]
    log_dir = Path(named[-1] if named else os.environ.get("DA_BENCH_LOGS", "logs"))
    runs = [r for r in find_runs([log_dir / "runs"]) if r.get("table") == args.table]
    paper = args.paper_table or {"mnistm": "dann", "usps": "adda"}.get(args.table, args.table)
    steps = sorted({r["steps"] for r in runs})
    header = (f"Command: `da-bench-reproduce {args.table} {' '.join(args.overrides)}`\n"
              f"Hardware: {cpu_name()}; torch threads per run as launched (see each run's metrics.json).\n"
              f"Steps per run: {steps} (the preset's schedule unless overridden above).\n")
    path = write_tables(runs, Path(args.out) / args.table, "table", paper, header)
    if args.table in VALIDATOR_REPORTS:
        path.write_text(path.read_text() + validator_sections(runs, *VALIDATOR_REPORTS[args.table]))
    print(path.read_text())


if __name__ == "__main__":
    main()
