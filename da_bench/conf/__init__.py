"""Hydra configs of da_bench (a package so that `da-bench-train` finds them wherever it runs)."""
