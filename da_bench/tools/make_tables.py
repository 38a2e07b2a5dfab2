"""Turn finished runs into result tables.

    da-bench-tables logs/runs --table dann --name table --out results/dann

Reads every metrics.json under RUN_DIRS, writes OUT/NAME.md (+ .csv, .tex): target test accuracy as
mean ± std over seeds with n, the paper's number beside each cell, one table per model-selection rule
(last_step, then each validator's pick: da_bench/snapshots.py), and the commits / devices / seeds the runs came
from. Cells without runs are printed as missing.

    da-bench-tables logs/runs --table selection --only-table --validators       (validator table)
    da-bench-tables logs/runs --table validators --only-table --sweep method.weight
"""
import argparse
import csv
import os
import time
from pathlib import Path

from da_bench.rules import SELECTION_RULES
from da_bench.selection import validator_sections
from da_bench.tables import find_runs, write_tables

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", nargs="+", help="directories searched for metrics.json (or the files)")
    parser.add_argument("--out", default="results", help="output directory (default: results)")
    parser.add_argument("--name", default=None, help="table file name (default: the runs' table name)")
    parser.add_argument("--table", default=None, help="paper table for the reference numbers: dann, adda, ...")
    parser.add_argument("--only-table", action="store_true", help="keep only runs launched by --table's preset")
    parser.add_argument("--header", default="", help="text put under the title (e.g. the command)")
    parser.add_argument("--metric", default=None,
                        help="a metrics.json key to tabulate instead of each run's target metric "
                             "(e.g. test/tgt_pixel_acc, test/tgt_iou_bg)")
    parser.add_argument("--rules", default=None,
                        help="comma-separated selection rules to tabulate (default: every rule in the runs), "
                             "e.g. last_step,src_acc,snd,oracle")
    parser.add_argument("--validators", action="store_true",
                        help="add the table of each validator's gap to the oracle's pick and to the last step")
    parser.add_argument("--plot", action="store_true",
                        help="also draw each table written against the paper's numbers: <name>[_<rule>].png "
                             "(da-bench-plot table)")
    parser.add_argument("--wandb", action="store_true",
                        help="also log each table (and its picture with --plot) to a W&B run of job type 'table', "
                             "offline unless WANDB_MODE=online (pip install -e \".[wandb]\")")
    parser.add_argument("--sweep", default=None, metavar="KEY",
                        help="add the table of the value of KEY (e.g. method.weight) each rule picks in a sweep")
    args = parser.parse_args(argv)
    runs = find_runs(args.run_dirs)
    if args.only_table:
        runs = [r for r in runs if r.get("table") == args.table]
    if not runs:
        parser.error(f"no metrics.json found under {args.run_dirs}")
    name = args.name or args.table or "table"
    rules = args.rules.split(",") if args.rules else None
    started = time.time()
    path = write_tables(runs, Path(args.out), name, args.table, args.header, args.metric, rules)
    try:
        extra = validator_sections(runs, args.validators, args.sweep)
    except ValueError as err:
        parser.error(str(err))
    if extra:
        path.write_text(path.read_text() + extra)
    print(path.read_text())
    print(f"wrote {path}")
    candidates = [path.with_suffix(".csv"), *(path.with_name(f"{name}_{r}.csv") for r in SELECTION_RULES)]
    written = [c for c in candidates if c.exists() and c.stat().st_mtime >= started - 1]  # not an older table's
    if args.plot:
        from da_bench.tools.plot_table import main as plot_table

        for csv_path in written:
            plot_table([str(csv_path)])
    if args.wandb:
        log_to_wandb(path, written, args.table)


def log_to_wandb(md_path: Path, csv_paths: list[Path], table: str | None) -> None:
    """One W&B run per call: each rule's table as a wandb.Table (`tables/<csv name>`), its PNG when drawn
    (`images/<csv name>`) and the markdown table as an artifact; grouped by the table preset (adhoc without)."""
    import wandb

    run = wandb.init(project=os.environ.get("WANDB_PROJECT", "da_bench"), mode=os.environ.get("WANDB_MODE", "offline"),
                     job_type="table", name=md_path.stem, group=table or "adhoc", dir=str(md_path.parent))
    for csv_path in csv_paths:
        with open(csv_path, newline="") as f:
            reader = csv.reader(f)
            columns = next(reader)
            run.log({f"tables/{csv_path.stem}": wandb.Table(columns=columns, data=list(reader))})
        if csv_path.with_suffix(".png").exists():
            run.log({f"images/{csv_path.stem}": wandb.Image(str(csv_path.with_suffix(".png")))})
    artifact = wandb.Artifact(f"table-{md_path.stem}", type="table")
    artifact.add_file(str(md_path))
    run.log_artifact(artifact)
    run.finish()
    print(f"W&B: {run.name} ({run.settings.mode}), in {md_path.parent / 'wandb'}")

if __name__ == "__main__":
    main()
