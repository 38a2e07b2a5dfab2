"""The commands that read finished runs (installed as console scripts by pyproject.toml):

    da-bench-tables         result tables from metrics.json files (make_tables.py)
    da-bench-reproduce      a table preset's grid, then its table (reproduce.py)
    da-bench-choose-weight  a hyperparameter chosen by source validation accuracy alone (choose_weight.py)
    da-bench-plot KIND      table | curves | confusion | features | validators (plot_<kind>.py)

Nothing in the rest of da_bench imports this package.
"""
