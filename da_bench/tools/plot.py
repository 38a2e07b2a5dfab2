"""da-bench-plot KIND [arguments]: one picture command per kind, each writing a PNG.

    table       a make_tables CSV against the paper's numbers          (plot_table.py)
    curves      learning curves of runs or grid cells, mean ± std       (plot_curves.py)
    confusion   the target test confusion matrix of runs                 (plot_confusion.py)
    features    a 2-D view of source vs target features, proxy A-distance (plot_features.py)
    validators  each validator's score against target accuracy         (plot_validators.py)

`da-bench-plot KIND --help` explains each. Needs matplotlib (pip install "da_bench[plots]").
"""
from __future__ import annotations

import importlib
import sys

KINDS = ("table", "curves", "confusion", "features", "validators")


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return
    kind, rest = argv[0], argv[1:]
    if kind not in KINDS:
        sys.exit(f"da-bench-plot: unknown kind {kind!r}; one of {', '.join(KINDS)}")
    sys.argv[0] = f"da-bench-plot {kind}"  # argparse's usage line names the command a user typed
    importlib.import_module(f"da_bench.tools.plot_{kind}").main(rest)


if __name__ == "__main__":
    main()
