"""Pick a hyperparameter by source validation accuracy alone, and write the record.

    python -m da_bench.train -m table=wdgrl_weight                       # the sweep (weight 0 = no WDGRL loss)
    da-bench-choose-weight logs/runs --table wdgrl_weight --out results/validators

Rule (da_bench/selection.py): per pair, the largest value whose val/src_acc is within --tolerance of the
value-0 run's; the default is the smallest pick over the pairs. Target test accuracy is printed beside each
value for the reader; the rule never reads it.
"""
import argparse
from pathlib import Path

from da_bench.selection import SCORE, largest_within_source_tolerance, override_value
from da_bench.tables import describe, find_runs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", nargs="+")
    parser.add_argument("--table", default="wdgrl_weight", help="keep runs launched by this preset")
    parser.add_argument("--method", default=None, help="keep this method's runs (needed when the table swept several)")
    parser.add_argument("--name", default=None, help="output file name (default: the table's)")
    parser.add_argument("--key", default="method.weight")
    parser.add_argument("--tolerance", type=float, default=0.02)
    parser.add_argument("--out", default=None, help="write <out>/<table>.md")
    parser.add_argument("--header", default="", help="text put under the title (e.g. the command, the hardware)")
    args = parser.parse_args(argv)
    runs = [r for r in find_runs(args.run_dirs) if r.get("table") == args.table]
    if args.method:
        runs = [r for r in runs if r.get("method") == args.method]
    if not runs:
        parser.error(f"no metrics.json of table {args.table}{' and method ' + args.method if args.method else ''} "
                     f"under {args.run_dirs}")
    if len(methods := sorted({r.get("method") for r in runs})) > 1:
        parser.error(f"table {args.table} swept several methods ({', '.join(methods)}): choose one with --method")
    choice = largest_within_source_tolerance(runs, args.key, args.tolerance)
    lines = [f"# {args.name or args.table}: {runs[0].get('method')}'s {args.key} chosen without target labels\n", *([args.header.strip() + "\n"] if args.header.strip() else []),
             f"Rule: per pair, the largest {args.key} whose {SCORE} (source validation accuracy, last step) is within "
             f"{args.tolerance:.2f} of the {args.key}=0 run's (the same recipe without the adaptation loss); the "
             f"default is the smallest pick over the pairs. Target test accuracy is shown for the reader; the rule "
             f"does not read it.\n", describe(runs), ""]
    for data, pick in choice["per_pair"].items():
        lines += [f"## {data}: pick {args.key}={pick['pick']:g}\n", f"| {args.key} | {SCORE} | test/tgt_acc (not used) |",
                  "|---|---|---|"]
        for value, score in pick["scores"].items():
            target = [r["test/tgt_acc"] for r in runs if r["data"] == data and override_value(r, args.key) == value]
            mark = " (pick)" if value == pick["pick"] else ""
            lines.append(f"| {value:g}{mark} | {score:.4f} | {sum(target) / len(target):.4f} |")
        lines.append("")
    lines.append(f"**Default: {args.key}={choice['default']:g}**\n")
    text = "\n".join(lines)
    print(text)
    if args.out:
        path = Path(args.out) / f"{args.name or args.table}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
